// The simulator's disk for replicated volumes (docs/replication.md, "What the simulator will
// check"): a sparse block store that keeps the BlockDevice durability contract and no more, so
// that code relying on more is caught. Writes land in a volatile layer (the drive's cache); a
// flush moves what completed before it to the durable layer, and a FUA write goes there at once.
// A crash (power loss) keeps each unflushed block or loses it by a seeded draw, independently, so
// a multi-block write can come back torn; flushed blocks always survive. Operations complete
// after a delay drawn from the seed on the node's clock, so concurrent I/O interleaves, and
// reorders, the same way on every run of a seed.
//
// Assumption, as real drives promise for their atomic write unit: a block is written atomically.
// A crash never leaves half of one block new and half old; tearing happens between blocks only.
import type { Clock, Rng, TimerHandle } from '../core/ports.js';
import {
  BlockDeviceError,
  type Extent,
  type WriteOptions,
  type WriteZeroesOptions,
} from '../storage/block-device.js';
import type { BlockChecksums } from '../storage/engine/chain-status.js';
import { checksumBlocksMax } from '../storage/engine/volume-device.js';
import type { ReplicableDevice } from '../storage/replication/types.js';
import { crc32 } from './crc32.js';

export interface SimDiskOptions {
  readonly sizeBytes: number;
  /** Default 4096. */
  readonly blockSizeBytes?: number;
  /** The node's clock: completions wait on it, so a hung node's disk answers late. */
  readonly clock: Clock;
  /** Draws completion delays (and crash outcomes when crash() is given no rng of its own). */
  readonly rng: Rng;
  /** Completion delay range; when both are 0, operations complete on a microtask, with no timer. */
  readonly delayMsMin?: number;
  /** Default 2. */
  readonly delayMsMax?: number;
  /** Chance that one unflushed block is on the medium after a crash; default 0.5. */
  readonly crashSurvivalProbability?: number;
}

/** Unflushed versions kept per block; older ones are forgotten (only narrows crash outcomes). */
export const simDiskVersionsPerBlockMax = 8;

/** One unflushed state of a block: its whole contents, or null for a hole (trimmed). */
interface Version {
  readonly content: Buffer | null;
  /** Completion order, compared with a flush's watermark. */
  readonly order: number;
}

/** New contents per block that one mutation produces. */
type Mutation = () => [block: number, content: Buffer | null, whole: boolean][];

interface Pending {
  timer?: TimerHandle;
  readonly fail: (error: BlockDeviceError) => void;
  /** For a write, trim or write-zeroes: its effect, applied to the cache if a crash catches it. */
  readonly mutation?: Mutation;
}

export class SimDisk implements ReplicableDevice {
  readonly sizeBytes: number;
  readonly blockSizeBytes: number;
  readonly readOnly = false;
  readonly consistentAcrossConnections = true;
  private readonly clock: Clock;
  private readonly rng: Rng;
  private readonly delayMsMin: number;
  private readonly delayMsMax: number;
  private readonly survivalProbability: number;
  private readonly durable = new Map<number, Buffer>();
  private readonly volatile = new Map<number, Version[]>();
  private readonly corrupted = new Set<number>();
  private readonly pending = new Set<Pending>();
  private drainWaiters: (() => void)[] = [];
  private nextOrder = 0;
  private state: 'open' | 'closing' | 'off' = 'open';

  constructor(options: SimDiskOptions) {
    this.blockSizeBytes = options.blockSizeBytes ?? 4096;
    const { sizeBytes } = options;
    if (!Number.isSafeInteger(this.blockSizeBytes) || this.blockSizeBytes <= 0) {
      throw new RangeError(`blockSizeBytes must be a positive integer, got ${this.blockSizeBytes}`);
    }
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes % this.blockSizeBytes) {
      throw new RangeError(`sizeBytes ${sizeBytes} is not a positive multiple of the block size`);
    }
    this.sizeBytes = sizeBytes;
    this.clock = options.clock;
    this.rng = options.rng;
    this.delayMsMin = options.delayMsMin ?? 0;
    this.delayMsMax = options.delayMsMax ?? 2;
    if (!(this.delayMsMin >= 0 && this.delayMsMax >= this.delayMsMin)) {
      throw new RangeError(`delay range ${this.delayMsMin}..${this.delayMsMax} ms is not valid`);
    }
    this.survivalProbability = options.crashSurvivalProbability ?? 0.5;
    if (!(this.survivalProbability >= 0 && this.survivalProbability <= 1)) {
      throw new RangeError(`crashSurvivalProbability ${this.survivalProbability} is not in [0, 1]`);
    }
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  /** Operations submitted and not yet completed. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** Blocks whose newest contents a crash may still lose. */
  get unflushedBlocks(): number {
    return this.volatile.size;
  }

  read(offsetBytes: number, lengthBytes: number): Promise<Buffer> {
    return this.submit('read', offsetBytes, lengthBytes, () => {
      const out = Buffer.alloc(lengthBytes);
      this.eachBlock(offsetBytes, lengthBytes, (block, from, to, at) => {
        if (this.corrupted.has(block)) {
          throw new BlockDeviceError('corrupt', `block ${block} fails its checksum`);
        }
        this.visible(block)?.copy(out, at, from, to);
      });
      return out;
    });
  }

  write(offsetBytes: number, data: Buffer, options?: WriteOptions): Promise<void> {
    // A copy now: the caller may reuse `data` once the write settles, and a crash may land it later.
    const copy = Buffer.from(data);
    const mutation: Mutation = () =>
      this.mapBlocks(offsetBytes, copy.length, (base, from, to, at) => {
        const content = base ?? Buffer.alloc(this.blockSizeBytes);
        copy.copy(content, from, at, at + (to - from));
        return content;
      });
    return this.submitMutation('write', offsetBytes, copy.length, mutation, options?.fua === true);
  }

  trim(offsetBytes: number, lengthBytes: number, options?: WriteOptions): Promise<void> {
    return this.writeZeroes(offsetBytes, lengthBytes, { fua: options?.fua ?? false });
  }

  writeZeroes(
    offsetBytes: number,
    lengthBytes: number,
    options?: WriteZeroesOptions,
  ): Promise<void> {
    const mayTrim = options?.mayTrim !== false;
    const mutation: Mutation = () =>
      this.mapBlocks(offsetBytes, lengthBytes, (base, from, to) => {
        // A hole already reads as zeroes; whole blocks become holes unless NO_HOLE was asked.
        if (mayTrim && (base === null || (from === 0 && to === this.blockSizeBytes))) return null;
        return (base ?? Buffer.alloc(this.blockSizeBytes)).fill(0, from, to);
      });
    const fua = options?.fua === true;
    return this.submitMutation('writeZeroes', offsetBytes, lengthBytes, mutation, fua);
  }

  flush(): Promise<void> {
    // Only what completed before the flush was issued is promised durable by it.
    const watermark = this.nextOrder;
    return this.submit('flush', 0, 0, () => this.makeDurable(watermark));
  }

  blockStatus(offsetBytes: number, lengthBytes: number): Promise<readonly Extent[]> {
    return this.submit('blockStatus', offsetBytes, lengthBytes, () => {
      const extents: Extent[] = [];
      this.eachBlock(offsetBytes, lengthBytes, (block, from, to) => {
        const hole = this.visible(block) === null;
        const last = extents.at(-1);
        if (last !== undefined && last.hole === hole) {
          extents[extents.length - 1] = { ...last, lengthBytes: last.lengthBytes + (to - from) };
        } else extents.push({ lengthBytes: to - from, hole, zero: hole });
      });
      return extents;
    });
  }

  readChecksums(startBlock: number, blockCount: number): Promise<BlockChecksums> {
    const blocks = this.sizeBytes / this.blockSizeBytes;
    const whole = (value: number): boolean => Number.isSafeInteger(value) && value >= 0;
    if (!whole(startBlock) || !whole(blockCount) || startBlock + blockCount > blocks) {
      return Promise.reject(
        new BlockDeviceError('range', `checksums of ${blockCount} blocks from ${startBlock}`),
      );
    }
    if (blockCount > checksumBlocksMax) {
      return Promise.reject(
        new BlockDeviceError('range', `at most ${checksumBlocksMax} checksums per call`),
      );
    }
    return this.submit('readChecksums', 0, 0, () => {
      const zero = this.zeroBlock();
      const checksums = new Uint32Array(blockCount);
      const allocated = new Uint8Array(blockCount);
      for (let index = 0; index < blockCount; index++) {
        const block = startBlock + index;
        const content = this.visible(block);
        allocated[index] = content === null ? 0 : 1;
        checksums[index] = this.corrupted.has(block)
          ? damagedChecksum(content ?? zero)
          : checksumOf(content ?? zero);
      }
      return { checksums, allocated };
    });
  }

  /** Drain: waits for operations in flight, makes everything durable; then every call fails. */
  async close(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'closing';
    while (this.pending.size > 0) await new Promise<void>((r) => this.drainWaiters.push(r));
    this.makeDurable(Infinity);
    this.state = 'off';
  }

  /** The next process opens the disk, after close() or crash(). */
  open(): void {
    if (this.state !== 'off') throw new Error(`SimDisk.open() on a disk that is ${this.state}`);
    this.state = 'open';
  }

  /**
   * Power loss. Operations in flight fail with 'io' (their mutations may or may not have reached
   * the medium: they join the unflushed ones); each block with unflushed contents then keeps one
   * of its unflushed versions or its durable contents, drawn independently per block. Corruption
   * stays, it is on the medium. The disk is off until open().
   */
  crash(rng: Rng = this.rng): void {
    for (const operation of this.pending) {
      if (operation.mutation !== undefined) this.applyMutation(operation.mutation, false);
      if (operation.timer !== undefined) this.clock.clearTimeout(operation.timer);
    }
    const failed = [...this.pending];
    this.pending.clear();
    for (const operation of failed) {
      operation.fail(new BlockDeviceError('io', 'power lost with the operation in flight'));
    }
    const blocks = [...this.volatile.keys()].sort((a, b) => a - b);
    for (const block of blocks) {
      const versions = this.volatile.get(block)!;
      if (rng.next() >= this.survivalProbability) continue;
      const kept = versions[Math.floor(rng.next() * versions.length)]!;
      this.setDurable(block, kept.content);
    }
    this.volatile.clear();
    this.state = 'off';
    this.wakeDrainWaiters();
  }

  /**
   * Silent corruption of one block on the medium: reads touching it fail with 'corrupt', and its
   * checksum no longer matches the data that was written, until the whole block is rewritten.
   */
  corrupt(block: number): void {
    if (
      !Number.isSafeInteger(block) ||
      block < 0 ||
      block >= this.sizeBytes / this.blockSizeBytes
    ) {
      throw new RangeError(`block ${block} is outside the disk`);
    }
    this.corrupted.add(block);
  }

  private submitMutation(
    name: string,
    offsetBytes: number,
    lengthBytes: number,
    mutation: Mutation,
    fua: boolean,
  ): Promise<void> {
    return this.submit(
      name,
      offsetBytes,
      lengthBytes,
      () => this.applyMutation(mutation, fua),
      mutation,
    );
  }

  /** Checks a call, then completes it after the drawn delay (or fails it on a crash). */
  private submit<T>(
    name: string,
    offsetBytes: number,
    lengthBytes: number,
    complete: () => T,
    mutation?: Mutation,
  ): Promise<T> {
    if (this.state !== 'open') {
      return Promise.reject(new BlockDeviceError('closed', `${name} on a closed disk`));
    }
    const whole = (value: number): boolean => Number.isSafeInteger(value) && value >= 0;
    if (!whole(offsetBytes) || !whole(lengthBytes) || offsetBytes + lengthBytes > this.sizeBytes) {
      return Promise.reject(
        new BlockDeviceError('range', `${name} at ${offsetBytes} for ${lengthBytes} bytes`),
      );
    }
    return new Promise<T>((resolve, reject) => {
      const operation: Pending = { fail: reject, ...(mutation === undefined ? {} : { mutation }) };
      this.pending.add(operation);
      const finish = (): void => {
        if (!this.pending.delete(operation)) return; // A crash failed it first.
        try {
          resolve(complete());
        } catch (error) {
          reject(error instanceof Error ? error : new Error(String(error)));
        } finally {
          if (this.pending.size === 0) this.wakeDrainWaiters();
        }
      };
      const span = this.delayMsMax - this.delayMsMin;
      if (this.delayMsMax === 0) void Promise.resolve().then(finish);
      else {
        const delayMs = this.delayMsMin + Math.floor(this.rng.next() * (span + 1));
        operation.timer = this.clock.setTimeout(finish, delayMs);
      }
    });
  }

  private applyMutation(mutation: Mutation, fua: boolean): void {
    for (const [block, content, whole] of mutation()) {
      if (whole) this.corrupted.delete(block);
      if (fua) {
        this.volatile.delete(block);
        this.setDurable(block, content);
        continue;
      }
      let versions = this.volatile.get(block);
      if (versions === undefined) this.volatile.set(block, (versions = []));
      versions.push({ content, order: this.nextOrder++ });
      if (versions.length > simDiskVersionsPerBlockMax) versions.shift();
    }
  }

  /** Moves every version completed before `watermark` to the durable layer. */
  private makeDurable(watermark: number): void {
    for (const [block, versions] of this.volatile) {
      let last = -1;
      while (last + 1 < versions.length && versions[last + 1]!.order < watermark) last++;
      if (last < 0) continue;
      this.setDurable(block, versions[last]!.content);
      versions.splice(0, last + 1);
      if (versions.length === 0) this.volatile.delete(block);
    }
  }

  private setDurable(block: number, content: Buffer | null): void {
    if (content === null) this.durable.delete(block);
    else this.durable.set(block, content);
  }

  /** What a read of the block returns now (the newest version), or null for a hole. */
  private visible(block: number): Buffer | null {
    const versions = this.volatile.get(block);
    if (versions !== undefined && versions.length > 0) return versions.at(-1)!.content;
    return this.durable.get(block) ?? null;
  }

  /** New contents for each block the range touches, from a copy of what it holds now. */
  private mapBlocks(
    offsetBytes: number,
    lengthBytes: number,
    change: (base: Buffer | null, from: number, to: number, at: number) => Buffer | null,
  ): [number, Buffer | null, boolean][] {
    const out: [number, Buffer | null, boolean][] = [];
    this.eachBlock(offsetBytes, lengthBytes, (block, from, to, at) => {
      const current = this.visible(block);
      const base = current === null ? null : Buffer.from(current);
      out.push([block, change(base, from, to, at), from === 0 && to === this.blockSizeBytes]);
    });
    return out;
  }

  /** Calls `visit(block, fromInBlock, toInBlock, offsetInRange)` for each block the range touches. */
  private eachBlock(
    offsetBytes: number,
    lengthBytes: number,
    visit: (block: number, from: number, to: number, at: number) => void,
  ): void {
    const size = this.blockSizeBytes;
    for (let at = 0; at < lengthBytes;) {
      const position = offsetBytes + at;
      const block = Math.floor(position / size);
      const from = position - block * size;
      const to = Math.min(size, from + (lengthBytes - at));
      visit(block, from, to, at);
      at += to - from;
    }
  }

  private zeroContents: Buffer | undefined;

  /** One block of zeroes, shared (never written to). */
  private zeroBlock(): Buffer {
    return (this.zeroContents ??= Buffer.alloc(this.blockSizeBytes));
  }

  private wakeDrainWaiters(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const wake of waiters) wake();
  }
}

/**
 * Checksums of stored contents, computed once: a stored block's Buffer is never changed (every
 * mutation stores a fresh copy), and resync passes ask for the same blocks again and again.
 */
const checksums = new WeakMap<Buffer, number>();

function checksumOf(content: Buffer): number {
  let sum = checksums.get(content);
  if (sum === undefined) checksums.set(content, (sum = crc32(content)));
  return sum;
}

/** The checksum of the block with its first bit flipped: CRC-32 catches every single-bit error. */
function damagedChecksum(content: Buffer): number {
  const damaged = Buffer.from(content);
  damaged[0] = damaged[0]! ^ 1;
  return crc32(damaged);
}
