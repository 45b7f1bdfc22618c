// An open volume: the BlockDevice that the NBD server (and later the replication primary) serves.
// Reads fall through the chain of layers; writes, trims and write-zeroes change only the top
// layer. Every request is checked at the boundary, ordered against overlapping requests
// (io-lane.ts) and applied to the map at once; durability is the top layer's business
// (layer.ts). Change listeners hear of every applied change with its block range, which is what
// dirty tracking for an absent replica needs.
import {
  BlockDeviceError,
  type BlockDevice,
  type Extent,
  type WriteOptions,
  type WriteZeroesOptions,
} from '../block-device.js';
import { entryAbsent, entryZero } from './block-map.js';
import { readChain } from './chain-read.js';
import {
  chainChecksums,
  chainChunkIsEmpty,
  chainExtents,
  type BlockChecksums,
} from './chain-status.js';
import { IoLane } from './io-lane.js';
import type { Layer } from './layer.js';
import { requestBytesMax } from './limits.js';

export interface BlockChange {
  readonly kind: 'write' | 'trim' | 'zero';
  readonly startBlock: number;
  readonly blockCount: number;
}

export type ChangeListener = (change: BlockChange) => void;

/** Blocks one `readChecksums` call may cover. */
export const checksumBlocksMax = 2 ** 20;

export class VolumeDevice implements BlockDevice {
  readonly blockSizeBytes: number;
  readonly consistentAcrossConnections = true;
  private chainLayers: readonly Layer[];
  private size: number;
  private readonly lane = new IoLane();
  private readonly listeners = new Set<ChangeListener>();
  private closed = false;

  constructor(
    /** What messages call it: "vol", "vol@snap" or "image:name". */
    readonly name: string,
    chain: readonly Layer[],
    sizeBytes: number,
    readonly readOnly: boolean,
  ) {
    this.chainLayers = chain;
    this.size = sizeBytes;
    this.blockSizeBytes = chain[0]!.blockSizeBytes;
  }

  get sizeBytes(): number {
    return this.size;
  }

  /** Flushes that changed the volume, counted across its snapshots; durable, never goes back. */
  get dataGeneration(): number {
    return this.chainLayers[0]!.generation;
  }

  get chain(): readonly Layer[] {
    return this.chainLayers;
  }

  async read(offsetBytes: number, lengthBytes: number): Promise<Buffer> {
    this.checkRequest(offsetBytes, lengthBytes);
    if (lengthBytes === 0) return Buffer.alloc(0);
    const size = this.blockSizeBytes;
    const start = Math.floor(offsetBytes / size);
    const end = Math.ceil((offsetBytes + lengthBytes) / size);
    return this.lane.run(start, end, false, async () => {
      const aligned = offsetBytes % size === 0 && lengthBytes % size === 0;
      const target = Buffer.allocUnsafe(aligned ? lengthBytes : (end - start) * size);
      await readChain(this.chainLayers, { ...this.span(start, end), target, targetOffset: 0 });
      if (aligned) return target;
      const skip = offsetBytes - start * size;
      return target.subarray(skip, skip + lengthBytes);
    });
  }

  /**
   * Fills `target` with the `target.length` bytes at `offsetBytes` (the NBD server's pooled-buffer
   * read, src/storage/nbd/device-capabilities.ts); same errors as read().
   */
  async readInto(offsetBytes: number, target: Buffer): Promise<void> {
    this.checkRequest(offsetBytes, target.length);
    const size = this.blockSizeBytes;
    if (offsetBytes % size !== 0 || target.length % size !== 0) {
      (await this.read(offsetBytes, target.length)).copy(target);
      return;
    }
    const start = offsetBytes / size;
    const end = start + target.length / size;
    if (end > start) {
      await this.lane.run(start, end, false, () =>
        readChain(this.chainLayers, { ...this.span(start, end), target, targetOffset: 0 }),
      );
    }
  }

  /** Keeps a reference to `data` until the promise settles; the caller must not reuse it before. */
  async write(offsetBytes: number, data: Buffer, options?: WriteOptions): Promise<void> {
    this.checkWritable();
    if (!Buffer.isBuffer(data)) throw new BlockDeviceError('range', 'write data must be a Buffer');
    this.checkRequest(offsetBytes, data.length);
    if (data.length > 0) {
      const size = this.blockSizeBytes;
      const start = Math.floor(offsetBytes / size);
      const end = Math.ceil((offsetBytes + data.length) / size);
      await this.lane.run(start, end, true, () =>
        offsetBytes % size === 0 && data.length % size === 0
          ? this.applyWrite(start, data)
          : this.applyPartialWrite(offsetBytes, data),
      );
    }
    if (options?.fua === true) await this.flush();
  }

  async flush(): Promise<void> {
    this.checkOpen();
    const top = this.chainLayers[0]!;
    if (!top.frozen) await top.flush();
  }

  /** Whole blocks inside the range read as zeroes afterwards; partial blocks are left alone. */
  async trim(offsetBytes: number, lengthBytes: number, options?: WriteOptions): Promise<void> {
    this.checkWritable();
    this.checkRequest(offsetBytes, lengthBytes, this.size);
    const size = this.blockSizeBytes;
    const first = Math.ceil(offsetBytes / size);
    const last = Math.floor((offsetBytes + lengthBytes) / size);
    if (first < last) {
      await this.lane.run(first, last, true, () => {
        this.unmap(first, last, 'trim');
        return Promise.resolve();
      });
    }
    if (options?.fua === true) await this.flush();
  }

  /** Zeroes are recorded as map entries, never written; `mayTrim` makes no difference. */
  async writeZeroes(
    offsetBytes: number,
    lengthBytes: number,
    options?: WriteZeroesOptions,
  ): Promise<void> {
    this.checkWritable();
    this.checkRequest(offsetBytes, lengthBytes, this.size);
    const size = this.blockSizeBytes;
    const endBytes = offsetBytes + lengthBytes;
    const start = Math.floor(offsetBytes / size);
    const end = Math.ceil(endBytes / size);
    const first = Math.ceil(offsetBytes / size);
    const last = Math.floor(endBytes / size);
    if (lengthBytes > 0) {
      await this.lane.run(start, end, true, async () => {
        if (first >= last) {
          return this.applyPartialWrite(offsetBytes, Buffer.alloc(lengthBytes), 'zero');
        }
        const edges: Promise<unknown>[] = [];
        if (offsetBytes < first * size) {
          const head = Buffer.alloc(first * size - offsetBytes);
          edges.push(this.applyPartialWrite(offsetBytes, head, 'zero'));
        }
        if (last * size < endBytes) {
          const tail = Buffer.alloc(endBytes - last * size);
          edges.push(this.applyPartialWrite(last * size, tail, 'zero'));
        }
        this.unmap(first, last, 'zero');
        await Promise.all(edges);
      });
    }
    if (options?.fua === true) await this.flush();
  }

  blockStatus(offsetBytes: number, lengthBytes: number): Promise<readonly Extent[]> {
    // Metadata only: answered at once; a throw in the executor becomes the rejection.
    return new Promise((resolve) => {
      this.checkRequest(offsetBytes, lengthBytes, this.size);
      if (lengthBytes === 0 || offsetBytes === this.size) {
        throw new BlockDeviceError('range', 'block status needs at least one byte of the device');
      }
      resolve(chainExtents(this.chainLayers, { offsetBytes, lengthBytes }));
    });
  }

  /** Effective CRC-32 of blocks [startBlock, startBlock + blockCount), for a resync to compare. */
  async readChecksums(startBlock: number, blockCount: number): Promise<BlockChecksums> {
    this.checkOpen();
    const blocks = this.size / this.blockSizeBytes;
    const valid = Number.isSafeInteger(startBlock) && Number.isSafeInteger(blockCount);
    if (!valid || startBlock < 0 || blockCount < 0 || startBlock + blockCount > blocks) {
      throw new BlockDeviceError(
        'range',
        `blocks ${startBlock}+${blockCount} outside 0..${blocks}`,
      );
    }
    if (blockCount > checksumBlocksMax) {
      throw new BlockDeviceError('range', `at most ${checksumBlocksMax} checksums per call`);
    }
    return this.lane.run(startBlock, startBlock + blockCount, false, () =>
      Promise.resolve(chainChecksums(this.chainLayers, { startBlock, blockCount })),
    );
  }

  /** Hears every change once it is applied (before it is durable); returns the unsubscribe. */
  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Runs `task` with no request in flight; the store swaps layers or resizes in there. */
  async exclusive<T>(task: () => Promise<T>): Promise<T> {
    this.checkOpen();
    return this.lane.barrier(task);
  }

  /** Runs `task` ordered like a request on [startBlock, endBlock) (a scrub reading a layer). */
  withBlocks<T>(
    startBlock: number,
    endBlock: number,
    exclusive: boolean,
    task: () => Promise<T>,
  ): Promise<T> {
    return this.lane.run(startBlock, endBlock, exclusive, task);
  }

  replaceChain(chain: readonly Layer[]): void {
    this.chainLayers = chain;
  }

  setSize(sizeBytes: number): void {
    this.size = sizeBytes;
  }

  /** Drains requests in flight and makes everything durable; the layers stay with the store. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.lane.barrier(() => this.flush());
    this.closed = true;
  }

  private applyWrite(startBlock: number, data: Buffer, kind: 'write' | 'zero' = 'write') {
    const done = this.chainLayers[0]!.stageWrite(startBlock, data);
    this.emit(kind, startBlock, data.length / this.blockSizeBytes);
    return done;
  }

  /** Read-modify-write of the blocks a request covers only in part. Runs inside the lane. */
  private async applyPartialWrite(
    offsetBytes: number,
    data: Buffer,
    kind: 'write' | 'zero' = 'write',
  ): Promise<unknown> {
    const size = this.blockSizeBytes;
    const start = Math.floor(offsetBytes / size);
    const end = Math.ceil((offsetBytes + data.length) / size);
    const merged = Buffer.allocUnsafe((end - start) * size);
    const head = offsetBytes - start * size;
    const tailEnd = head + data.length;
    if (head !== 0) {
      await readChain(this.chainLayers, {
        ...this.span(start, start + 1),
        target: merged,
        targetOffset: 0,
      });
    }
    const tailRead = head !== 0 && end - 1 === start;
    if (tailEnd % size !== 0 && !tailRead) {
      const targetOffset = (end - 1 - start) * size;
      await readChain(this.chainLayers, {
        ...this.span(end - 1, end),
        target: merged,
        targetOffset,
      });
    }
    data.copy(merged, head);
    return this.applyWrite(start, merged, kind);
  }

  private span(startBlock: number, endBlock: number) {
    return { volumeName: this.name, startBlock, endBlock };
  }

  private unmap(first: number, last: number, kind: 'trim' | 'zero'): void {
    const below = this.chainLayers.slice(1);
    const entryFor = (block: number): number => {
      for (const layer of below) if (layer.map.entry(block) !== entryAbsent) return entryZero;
      return entryAbsent;
    };
    const skip = (block: number): boolean => chainChunkIsEmpty(this.chainLayers, block);
    this.chainLayers[0]!.stageUnmap(first, last - first, entryFor, skip);
    this.emit(kind, first, last - first);
  }

  private emit(kind: BlockChange['kind'], startBlock: number, blockCount: number): void {
    if (this.listeners.size === 0) return;
    const change: BlockChange = { kind, startBlock, blockCount };
    for (const listener of this.listeners) {
      try {
        listener(change);
      } catch (error) {
        // A listener that throws is a bug in its owner: crash loudly, but not inside this request.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new BlockDeviceError('closed', `volume ${this.name} is closed`);
  }

  private checkWritable(): void {
    this.checkOpen();
    // Only the device's own flag: while a snapshot swaps layers the old top is briefly frozen,
    // and a write arriving then waits in the lane for the new top rather than fail.
    if (this.readOnly) {
      throw new BlockDeviceError('read-only', `volume ${this.name} is read-only`);
    }
  }

  private checkRequest(offsetBytes: number, lengthBytes: number, lengthMax = requestBytesMax) {
    this.checkOpen();
    if (!Number.isSafeInteger(offsetBytes) || !Number.isSafeInteger(lengthBytes)) {
      throw new BlockDeviceError('range', 'offset and length must be whole numbers of bytes');
    }
    if (offsetBytes < 0 || lengthBytes < 0 || offsetBytes + lengthBytes > this.size) {
      throw new BlockDeviceError(
        'range',
        `${lengthBytes} bytes at ${offsetBytes} are outside volume ${this.name} ` +
          `(${this.size} bytes)`,
      );
    }
    if (lengthBytes > lengthMax) {
      throw new BlockDeviceError('range', `request of ${lengthBytes} bytes exceeds ${lengthMax}`);
    }
  }
}
