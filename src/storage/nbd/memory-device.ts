// A sparse in-memory BlockDevice for tests: blocks are allocated on first write, trim and
// write-zeroes (unless NO_HOLE) free whole blocks, so block status has real holes to report. Tests
// can count calls, hold operations at a gate (to fill the in-flight limits), and make the next call
// of an operation fail with a chosen error kind.
import {
  type BlockDevice,
  BlockDeviceError,
  type BlockErrorKind,
  type Extent,
  type WriteOptions,
  type WriteZeroesOptions,
} from '../block-device.js';

export interface MemoryBlockDeviceOptions {
  readonly sizeBytes: number;
  readonly blockSizeBytes?: number;
  readonly readOnly?: boolean;
  readonly consistentAcrossConnections?: boolean;
}

type Operation = 'read' | 'write' | 'flush' | 'trim' | 'writeZeroes' | 'blockStatus';

export class MemoryBlockDevice implements BlockDevice {
  readonly sizeBytes: number;
  readonly blockSizeBytes: number;
  readonly readOnly: boolean;
  readonly consistentAcrossConnections: boolean;
  /** How often each operation ran, and how many of the writes asked for FUA. */
  readonly calls: Record<Operation | 'fua', number> = {
    read: 0,
    write: 0,
    flush: 0,
    trim: 0,
    writeZeroes: 0,
    blockStatus: 0,
    fua: 0,
  };
  private readonly blocks = new Map<number, Buffer>();
  private readonly failures = new Map<Operation, BlockErrorKind>();
  private gate: Promise<void> | undefined;
  private openGate: (() => void) | undefined;
  private waiting = 0;
  private closed = false;

  constructor(options: MemoryBlockDeviceOptions) {
    this.blockSizeBytes = options.blockSizeBytes ?? 4096;
    if (options.sizeBytes % this.blockSizeBytes !== 0) {
      throw new RangeError(`sizeBytes ${options.sizeBytes} is not a multiple of the block size`);
    }
    this.sizeBytes = options.sizeBytes;
    this.readOnly = options.readOnly ?? false;
    this.consistentAcrossConnections = options.consistentAcrossConnections ?? true;
  }

  /** Operations wait until release() from now on. */
  hold(): void {
    this.gate ??= new Promise((resolve) => (this.openGate = resolve));
  }

  release(): void {
    this.openGate?.();
    this.gate = undefined;
    this.openGate = undefined;
  }

  /** Operations waiting at the gate now. */
  get held(): number {
    return this.waiting;
  }

  /** The next call of `operation` fails with a BlockDeviceError of `kind`. */
  failNext(operation: Operation, kind: BlockErrorKind): void {
    this.failures.set(operation, kind);
  }

  /** Blocks holding data (for tests of trim and write-zeroes). */
  get allocatedBlocks(): number {
    return this.blocks.size;
  }

  async read(offsetBytes: number, lengthBytes: number): Promise<Buffer> {
    await this.enter('read', offsetBytes, lengthBytes, false);
    const out = Buffer.alloc(lengthBytes);
    this.eachBlock(offsetBytes, lengthBytes, (index, from, to, at) => {
      this.blocks.get(index)?.copy(out, at, from, to);
    });
    return out;
  }

  async write(offsetBytes: number, data: Buffer, options?: WriteOptions): Promise<void> {
    await this.enter('write', offsetBytes, data.length, true);
    if (options?.fua === true) this.calls.fua++;
    this.eachBlock(offsetBytes, data.length, (index, from, to, at) => {
      data.copy(this.block(index), from, at, at + (to - from));
    });
  }

  async flush(): Promise<void> {
    await this.enter('flush', 0, 0, false);
  }

  async trim(offsetBytes: number, lengthBytes: number, _options?: WriteOptions): Promise<void> {
    await this.enter('trim', offsetBytes, lengthBytes, true);
    this.zero(offsetBytes, lengthBytes, true);
  }

  async writeZeroes(
    offsetBytes: number,
    lengthBytes: number,
    options?: WriteZeroesOptions,
  ): Promise<void> {
    await this.enter('writeZeroes', offsetBytes, lengthBytes, true);
    if (options?.fua === true) this.calls.fua++;
    this.zero(offsetBytes, lengthBytes, options?.mayTrim !== false);
  }

  async blockStatus(offsetBytes: number, lengthBytes: number): Promise<readonly Extent[]> {
    await this.enter('blockStatus', offsetBytes, lengthBytes, false);
    const extents: Extent[] = [];
    this.eachBlock(offsetBytes, lengthBytes, (index, from, to) => {
      const hole = !this.blocks.has(index);
      const last = extents.at(-1);
      if (last !== undefined && last.hole === hole) {
        extents[extents.length - 1] = { ...last, lengthBytes: last.lengthBytes + (to - from) };
      } else extents.push({ lengthBytes: to - from, hole, zero: hole });
    });
    return extents;
  }

  async close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }

  private async enter(
    operation: Operation,
    offset: number,
    length: number,
    writes: boolean,
  ): Promise<void> {
    if (this.gate !== undefined) {
      this.waiting++;
      await this.gate;
      this.waiting--;
    }
    this.calls[operation]++;
    const failure = this.failures.get(operation);
    if (failure !== undefined) {
      this.failures.delete(operation);
      throw new BlockDeviceError(failure, `injected ${failure} failure in ${operation}`);
    }
    if (this.closed) throw new BlockDeviceError('closed', `${operation} after close()`);
    if (writes && this.readOnly)
      throw new BlockDeviceError('read-only', `${operation} on a read-only device`);
    if (offset < 0 || length < 0 || offset + length > this.sizeBytes) {
      throw new BlockDeviceError('range', `${operation} at ${offset} for ${length} bytes`);
    }
  }

  private block(index: number): Buffer {
    let block = this.blocks.get(index);
    if (block === undefined) {
      block = Buffer.alloc(this.blockSizeBytes);
      this.blocks.set(index, block);
    }
    return block;
  }

  /** Zeroes a range; whole blocks are freed when `mayFree`, partial ones are zeroed in place. */
  private zero(offsetBytes: number, lengthBytes: number, mayFree: boolean): void {
    this.eachBlock(offsetBytes, lengthBytes, (index, from, to) => {
      if (mayFree && from === 0 && to === this.blockSizeBytes) this.blocks.delete(index);
      else if (mayFree) this.blocks.get(index)?.fill(0, from, to);
      else this.block(index).fill(0, from, to);
    });
  }

  /** Calls `visit(block, fromInBlock, toInBlock, offsetInRange)` for each block the range touches. */
  private eachBlock(
    offsetBytes: number,
    lengthBytes: number,
    visit: (index: number, from: number, to: number, at: number) => void,
  ): void {
    const size = this.blockSizeBytes;
    let at = 0;
    while (at < lengthBytes) {
      const position = offsetBytes + at;
      const index = Math.floor(position / size);
      const from = position - index * size;
      const to = Math.min(size, from + (lengthBytes - at));
      visit(index, from, to, at);
      at += to - from;
    }
  }
}

/**
 * The same device with the optional readInto and writev capabilities (device-capabilities.ts), so
 * that tests cover the server's copy-free paths as well as the plain ones.
 */
export class CapableMemoryBlockDevice extends MemoryBlockDevice {
  /** How often the capabilities were used. */
  readonly capabilityCalls = { readInto: 0, writev: 0 };

  async readInto(offsetBytes: number, target: Buffer): Promise<void> {
    this.capabilityCalls.readInto++;
    (await this.read(offsetBytes, target.length)).copy(target);
  }

  async writev(
    offsetBytes: number,
    parts: readonly Buffer[],
    options?: WriteOptions,
  ): Promise<void> {
    this.capabilityCalls.writev++;
    await this.write(offsetBytes, Buffer.concat(parts), options);
  }
}
