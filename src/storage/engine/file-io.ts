// Positioned file I/O for the hot path, plus the atomic-replace idiom for small metadata files.
// The callback forms of fs.read/fs.write/fs.fdatasync are wrapped by hand rather than using
// FileHandle: measured with bench/engine.ts on the 2-vCPU test machine, 4 KiB random reads ran at
// 39k/55k ops/s (QD1/QD32) against 34k/40k for FileHandle, writes within noise of each other. A
// plain descriptor is also shared by every volume stacked on a layer without FileHandle's
// close-on-GC warnings, and short reads and writes are handled here, in one place.
import fs from 'node:fs';
import path from 'node:path';
import { ContinuumError } from '../../core/errors.js';

export function openFile(filePath: string, flags: string): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.open(filePath, flags, 0o600, (error, fd) => (error ? reject(error) : resolve(fd)));
  });
}

export function closeFile(fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    fs.close(fd, (error) => (error ? reject(error) : resolve()));
  });
}

/**
 * Reads exactly `length` bytes unless the file ends first; returns the bytes read. Positional
 * arguments in fs.read's order, deliberately: this is pread(2) and reads best next to it.
 */
export function readAt(
  fd: number,
  buffer: Buffer,
  offset: number,
  length: number,
  position: number,
): Promise<number> {
  return new Promise((resolve, reject) => {
    let done = 0;
    const step = (error: NodeJS.ErrnoException | null, bytesRead: number): void => {
      if (error) return reject(error);
      done += bytesRead;
      if (bytesRead === 0 || done === length) return resolve(done);
      fs.read(fd, buffer, offset + done, length - done, position + done, step);
    };
    fs.read(fd, buffer, offset, length, position, step);
  });
}

/**
 * Writes of at most this many bytes are made on the event loop. A pwrite into the page cache takes
 * a few microseconds, while handing it to a pool thread and getting the callback back costs 60 to
 * 90 us on the 2-vCPU test VM, the largest single part of a 4 KiB write's latency, and about as
 * much CPU again (docs/replication-bench.md). Larger writes are dominated by copying and go to the
 * pool, which overlaps them with the socket work of other requests. Reads stay in the pool: a read
 * may miss the cache and wait for the disk, which would stall every connection of the server.
 */
export const loopWriteBytesMax = 65_536;

/**
 * Larger writes go to the pool in pieces of at most this many bytes, each ending on a multiple of
 * it in the file. The kernel sizes the page-cache folios a write creates by the write's length
 * (ext4 with large folios, Linux 6.x), and a later 4 KiB write into a folio made by a 1 MiB write
 * walks all of that folio's 256 buffer heads: after an fsync, random 4 KiB writes cost 8-11 us
 * in a file written in 1 MiB writes against 3.8-3.9 us in 64 KiB writes, and a volume server
 * filled in 1 MiB writes ran at half its IOPS (docs/replication-bench.md, fifth session).
 */
export const poolWritePieceBytes = 65_536;
/**
 * The pieces of one large write that are in the pool at once. The pool (4 threads by default) is
 * shared with every read and fdatasync of the process and takes tasks in order, so a large write
 * queued whole would hold them all back; two at a time keep one write's copies overlapped and let
 * other requests in between.
 */
export const poolWritePiecesInFlightMax = 2;

/**
 * Writes all `length` bytes; a short write (rare, e.g. on a signal) continues where it stopped.
 * Up to loopWriteBytesMax on the event loop, larger ones in libuv's pool in pieces of
 * poolWritePieceBytes. A failure rejects once no piece is in the pool any more, so the caller
 * may reuse the buffer as soon as the promise settles either way.
 */
export function writeAt(
  fd: number,
  buffer: Buffer,
  offset: number,
  length: number,
  position: number,
): Promise<void> {
  if (length <= loopWriteBytesMax) return writeOnLoop(fd, buffer, offset, length, position);
  return new Promise((resolve, reject) => {
    let next = 0; // Bytes of the write handed to a piece so far.
    let running = 0;
    let failure: NodeJS.ErrnoException | undefined;
    const pieceDone = (error: NodeJS.ErrnoException | null): void => {
      running--;
      if (error) failure ??= error;
      if (failure === undefined && next < length) return startPiece();
      if (running > 0) return;
      if (failure === undefined) resolve();
      else reject(failure);
    };
    const startPiece = (): void => {
      const from = next;
      next = Math.min(length, pieceEnd(position + from) - position);
      running++;
      writeFully(fd, buffer, offset + from, next - from, position + from, pieceDone);
    };
    while (running < poolWritePiecesInFlightMax && next < length) startPiece();
  });
}

/** fs.write in the pool until all `length` bytes are written (a short write goes on), then done. */
function writeFully(
  fd: number,
  buffer: Buffer,
  offset: number,
  length: number,
  position: number,
  done: (error: NodeJS.ErrnoException | null) => void,
): void {
  let written = 0;
  const step = (error: NodeJS.ErrnoException | null, bytes: number): void => {
    if (error) return done(error);
    written += bytes;
    if (written === length) return done(null);
    fs.write(fd, buffer, offset + written, length - written, position + written, step);
  };
  fs.write(fd, buffer, offset, length, position, step);
}

/** The end of the piece of a large write that starts at file position `position`. */
function pieceEnd(position: number): number {
  return (Math.floor(position / poolWritePieceBytes) + 1) * poolWritePieceBytes;
}

/** pwrite on the event loop: done when this returns; an async function, so a failure rejects. */
// eslint-disable-next-line @typescript-eslint/require-await -- async only to turn a throw into a rejection
const writeOnLoop: typeof writeAt = async (fd, buffer, offset, length, position) => {
  let done = 0;
  while (done < length)
    done += fs.writeSync(fd, buffer, offset + done, length - done, position + done);
};

export function syncData(fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    fs.fdatasync(fd, (error) => (error ? reject(error) : resolve()));
  });
}

export function fileSize(fd: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.fstat(fd, (error, stats) => (error ? reject(error) : resolve(stats.size)));
  });
}

export function truncateFile(fd: number, lengthBytes: number): Promise<void> {
  return new Promise((resolve, reject) => {
    fs.ftruncate(fd, lengthBytes, (error) => (error ? reject(error) : resolve()));
  });
}

/** Makes a rename or a new file in `dir` durable (the directory entry itself is metadata). */
export async function syncDirectory(dir: string): Promise<void> {
  const fd = await openFile(dir, 'r');
  try {
    await new Promise<void>((resolve, reject) => {
      fs.fsync(fd, (error) => (error ? reject(error) : resolve()));
    });
  } finally {
    await closeFile(fd);
  }
}

/**
 * Replaces `filePath` with `contents` so that a crash leaves either the old or the new file:
 * write a temporary sibling, sync it, rename it over, sync the directory.
 */
export async function replaceFileAtomically(filePath: string, contents: Buffer): Promise<void> {
  const temporary = `${filePath}.tmp`;
  const fd = await openFile(temporary, 'w');
  try {
    await writeAt(fd, contents, 0, contents.length, 0);
    await syncData(fd);
  } finally {
    await closeFile(fd);
  }
  await fs.promises.rename(temporary, filePath);
  await syncDirectory(path.dirname(filePath));
}

/**
 * The JSON value in a small state file (catalog, replica meta), or undefined when there is no file
 * (a file holding `null` is not mistaken for a missing one). A
 * file that is not JSON is VOLUME_CORRUPT, named `what` (like "catalog /x/catalog.json").
 */
export async function readJsonFile(filePath: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await fs.promises.readFile(filePath, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new ContinuumError(
      'CONTINUUM_ERR_VOLUME_CORRUPT',
      `${what} is not JSON (${(error as Error).message})`,
      { details: { path: filePath }, cause: error },
    );
  }
}
