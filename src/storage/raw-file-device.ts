// A plain BlockDevice over one raw file: positioned reads and writes, fdatasync for flush and FUA.
// For tests, and for benchmarking the NBD server against qemu-nbd and nbdkit on the same file.
//
// I/O modes. 'auto' (the default) does requests up to syncIoBytesMax (64 KiB) as pread/pwrite on
// the event loop and larger ones through libuv's thread pool. A small request on page-cached data
// takes a few microseconds on the loop, while a trip through the pool costs 15-30 us on a small VM;
// a large one is dominated by copying, which the pool overlaps with the socket work of other
// requests. The price of the loop path is that a cache miss stalls every connection for one disk
// access: right for this device's uses, wrong for files much larger than memory, which should use
// 'threadpool'. 'sync' puts everything on the loop. fdatasync always goes to the pool.
//
// Limits of a raw file in Node: there is no fallocate, so trim is a no-op (allowed: NBD trim is a
// hint) and writeZeroes writes zero bytes; there is no SEEK_HOLE, so blockStatus reports one
// allocated extent for the whole range. All connections share one descriptor and one page cache,
// so a flush on any connection covers writes made through all of them.
import {
  close,
  fdatasync,
  fstatSync,
  openSync,
  read,
  readSync,
  write,
  writeSync,
  writev,
  writevSync,
} from 'node:fs';
import {
  type BlockDevice,
  BlockDeviceError,
  type BlockErrorKind,
  type Extent,
  type WriteOptions,
  type WriteZeroesOptions,
} from './block-device.js';

export interface RawFileDeviceOptions {
  readonly readOnly?: boolean;
  /** Unit of allocation reported to clients; the file size must be a multiple. Default 4096. */
  readonly blockSizeBytes?: number;
  readonly io?: 'auto' | 'sync' | 'threadpool';
  /** In 'auto' mode, the largest request done on the event loop. Default 64 KiB. */
  readonly syncIoBytesMax?: number;
}

/** Small read buffers are cut from shared slabs: one allocation serves many requests. */
const SLAB_BYTES = 256 * 1024;
const SLAB_PIECE_BYTES_MAX = 16 * 1024;

const ZERO_CHUNK_BYTES = 1024 * 1024;
let zeroChunk: Buffer | undefined;

function kindOf(error: NodeJS.ErrnoException): BlockErrorKind {
  if (error.code === 'ENOSPC' || error.code === 'EDQUOT' || error.code === 'EFBIG')
    return 'no-space';
  if (error.code === 'EROFS' || error.code === 'EBADF') return 'read-only';
  return 'io';
}

function deviceError(error: unknown, what: string): BlockDeviceError {
  if (error instanceof BlockDeviceError) return error;
  const errno = error as NodeJS.ErrnoException;
  return new BlockDeviceError(kindOf(errno), `${what}: ${errno.message}`, { cause: error });
}

/** The parts that remain after the first `bytes` bytes (a short pwritev). */
export function afterBytes(parts: readonly Buffer[], bytes: number): readonly Buffer[] {
  let skip = bytes;
  let index = 0;
  while (index < parts.length && skip >= parts[index]!.length) skip -= parts[index++]!.length;
  if (index === parts.length) return [];
  return [parts[index]!.subarray(skip), ...parts.slice(index + 1)];
}

export class RawFileDevice implements BlockDevice {
  readonly path: string;
  readonly sizeBytes: number;
  readonly blockSizeBytes: number;
  readonly readOnly: boolean;
  readonly consistentAcrossConnections = true;
  private readonly fd: number;
  private readonly syncIoBytesMax: number;
  private slab: Buffer | undefined;
  private slabUsed = 0;
  private active = 0;
  private closing: Promise<void> | undefined;
  private idle: (() => void) | undefined;

  private constructor(path: string, fd: number, sizeBytes: number, options: RawFileDeviceOptions) {
    this.path = path;
    this.fd = fd;
    this.sizeBytes = sizeBytes;
    this.blockSizeBytes = options.blockSizeBytes ?? 4096;
    this.readOnly = options.readOnly ?? false;
    const io = options.io ?? 'auto';
    this.syncIoBytesMax =
      io === 'sync' ? Infinity : io === 'threadpool' ? -1 : (options.syncIoBytesMax ?? 65536);
  }

  /** Opens an existing file; its size becomes the device size. */
  static open(path: string, options: RawFileDeviceOptions = {}): RawFileDevice {
    const blockSizeBytes = options.blockSizeBytes ?? 4096;
    if (!Number.isInteger(blockSizeBytes) || blockSizeBytes < 1) {
      throw new RangeError(
        `blockSizeBytes: expected a positive whole number, got ${blockSizeBytes}`,
      );
    }
    const fd = openSync(path, options.readOnly === true ? 'r' : 'r+');
    const { size } = fstatSync(fd);
    if (size % blockSizeBytes !== 0) {
      close(fd, () => {});
      throw new RangeError(
        `${path}: size ${size} is not a multiple of blockSizeBytes ${blockSizeBytes}`,
      );
    }
    return new RawFileDevice(path, fd, size, options);
  }

  async read(offsetBytes: number, lengthBytes: number): Promise<Buffer> {
    const buffer = this.allocate(lengthBytes);
    await this.readInto(offsetBytes, buffer);
    return buffer;
  }

  /** Reads into the caller's buffer (the NBD server's pooled buffers; see nbd/read-into.ts). */
  async readInto(offsetBytes: number, target: Buffer): Promise<void> {
    const lengthBytes = target.length;
    this.begin('read', offsetBytes, lengthBytes, false);
    try {
      const sync = lengthBytes <= this.syncIoBytesMax;
      let done = 0;
      while (done < lengthBytes) {
        const position = offsetBytes + done;
        const n = sync
          ? readSync(this.fd, target, done, lengthBytes - done, position)
          : await new Promise<number>((resolve, reject) =>
              read(this.fd, target, done, lengthBytes - done, position, (e, bytes) =>
                e ? reject(e) : resolve(bytes),
              ),
            );
        // A file cut short behind our back reads as zeroes rather than looping forever.
        if (n === 0) target.fill(0, done);
        done = n === 0 ? lengthBytes : done + n;
      }
    } catch (error) {
      throw deviceError(error, `read at ${offsetBytes}`);
    } finally {
      this.end();
    }
  }

  async write(offsetBytes: number, data: Buffer, options?: WriteOptions): Promise<void> {
    this.begin('write', offsetBytes, data.length, true);
    try {
      await this.writeAt(offsetBytes, data);
      if (options?.fua === true) await this.datasync();
    } catch (error) {
      throw deviceError(error, `write at ${offsetBytes}`);
    } finally {
      this.end();
    }
  }

  /** Writes `parts` back to back with one pwritev (the NBD server's unsplit socket chunks). */
  async writev(
    offsetBytes: number,
    parts: readonly Buffer[],
    options?: WriteOptions,
  ): Promise<void> {
    let lengthBytes = 0;
    for (const part of parts) lengthBytes += part.length;
    this.begin('write', offsetBytes, lengthBytes, true);
    try {
      let rest = parts;
      let position = offsetBytes;
      const sync = lengthBytes <= this.syncIoBytesMax;
      while (rest.length > 0) {
        const n = sync
          ? writevSync(this.fd, rest, position)
          : await new Promise<number>((resolve, reject) =>
              writev(this.fd, rest, position, (e, bytes) => (e ? reject(e) : resolve(bytes))),
            );
        position += n;
        rest = afterBytes(rest, n);
      }
      if (options?.fua === true) await this.datasync();
    } catch (error) {
      throw deviceError(error, `write at ${offsetBytes}`);
    } finally {
      this.end();
    }
  }

  async flush(): Promise<void> {
    this.begin('flush', 0, 0, false);
    try {
      if (!this.readOnly) await this.datasync();
    } catch (error) {
      throw deviceError(error, 'flush');
    } finally {
      this.end();
    }
  }

  /** A no-op: Node cannot punch holes, and NBD lets a server ignore trim. */
  trim(offsetBytes: number, lengthBytes: number, _options?: WriteOptions): Promise<void> {
    return this.immediate('trim', offsetBytes, lengthBytes, true, undefined);
  }

  async writeZeroes(
    offsetBytes: number,
    lengthBytes: number,
    options?: WriteZeroesOptions,
  ): Promise<void> {
    this.begin('writeZeroes', offsetBytes, lengthBytes, true);
    try {
      zeroChunk ??= Buffer.alloc(ZERO_CHUNK_BYTES);
      for (let done = 0; done < lengthBytes; done += ZERO_CHUNK_BYTES) {
        const n = Math.min(ZERO_CHUNK_BYTES, lengthBytes - done);
        await this.writeAt(offsetBytes + done, zeroChunk.subarray(0, n));
      }
      if (options?.fua === true) await this.datasync();
    } catch (error) {
      throw deviceError(error, `write zeroes at ${offsetBytes}`);
    } finally {
      this.end();
    }
  }

  /** Everything reads as allocated data: Node offers no SEEK_DATA/SEEK_HOLE to learn better. */
  blockStatus(offsetBytes: number, lengthBytes: number): Promise<readonly Extent[]> {
    const extents: readonly Extent[] = [{ lengthBytes, hole: false, zero: false }];
    return this.immediate('blockStatus', offsetBytes, lengthBytes, false, extents);
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.active > 0) await new Promise<void>((resolve) => (this.idle = resolve));
      try {
        if (!this.readOnly) await this.datasync();
      } finally {
        await new Promise<void>((resolve) => close(this.fd, () => resolve()));
      }
    })();
    return this.closing;
  }

  private begin(what: string, offsetBytes: number, lengthBytes: number, writes: boolean): void {
    if (this.closing !== undefined) throw new BlockDeviceError('closed', `${what} after close()`);
    if (writes && this.readOnly)
      throw new BlockDeviceError('read-only', `${what} on read-only ${this.path}`);
    const valid =
      Number.isSafeInteger(offsetBytes) &&
      Number.isSafeInteger(lengthBytes) &&
      offsetBytes >= 0 &&
      lengthBytes >= 0;
    if (!valid || offsetBytes + lengthBytes > this.sizeBytes) {
      const message = `${what} at ${offsetBytes} for ${lengthBytes} bytes outside ${this.sizeBytes}`;
      throw new BlockDeviceError('range', message);
    }
    this.active++;
  }

  /** An operation with nothing to do but its checks; they still reject like the others. */
  private immediate<T>(
    what: string,
    offsetBytes: number,
    lengthBytes: number,
    writes: boolean,
    value: T,
  ): Promise<T> {
    try {
      this.begin(what, offsetBytes, lengthBytes, writes);
    } catch (error) {
      return Promise.reject(deviceError(error, what));
    }
    this.end();
    return Promise.resolve(value);
  }

  private end(): void {
    this.active--;
    if (this.active === 0 && this.idle !== undefined) this.idle();
  }

  /** A read buffer: a piece of the current slab when small, its own allocation when large. */
  private allocate(lengthBytes: number): Buffer {
    if (lengthBytes > SLAB_PIECE_BYTES_MAX) return Buffer.allocUnsafe(lengthBytes);
    if (this.slab === undefined || this.slabUsed + lengthBytes > SLAB_BYTES) {
      this.slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
      this.slabUsed = 0;
    }
    const piece = this.slab.subarray(this.slabUsed, this.slabUsed + lengthBytes);
    // Keep pieces 8-byte aligned, as Buffer's own pool does.
    this.slabUsed += (lengthBytes + 7) & ~7;
    return piece;
  }

  private async writeAt(offsetBytes: number, data: Buffer): Promise<void> {
    const sync = data.length <= this.syncIoBytesMax;
    let done = 0;
    while (done < data.length) {
      done += sync
        ? writeSync(this.fd, data, done, data.length - done, offsetBytes + done)
        : await new Promise<number>((resolve, reject) =>
            write(this.fd, data, done, data.length - done, offsetBytes + done, (e, n) =>
              e ? reject(e) : resolve(n),
            ),
          );
    }
  }

  private datasync(): Promise<void> {
    return new Promise((resolve, reject) => fdatasync(this.fd, (e) => (e ? reject(e) : resolve())));
  }
}
