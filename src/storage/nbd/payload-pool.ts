// Reusable buffers for large write payloads. A payload that spans socket chunks must be gathered
// into one Buffer for BlockDevice.write; a fresh 1 MiB allocation costs about as much in page
// faults as the copy itself, so buffers of 64 KiB and more are kept and reused.
//
// This relies on the BlockDevice contract that a device does not keep `data` after write()
// settles (as with POSIX write, the caller owns the buffer again); docs/nbd-server.md says so.

/** Smaller payloads come from Buffer.allocUnsafe, which is cheap at that size. */
const POOLED_BYTES_MIN = 64 * 1024;
/** Bytes kept in the pool across all sizes; buffers beyond it are left to the garbage collector. */
const POOL_BYTES_MAX = 64 * 1024 * 1024;

const free = new Map<number, Buffer[]>();
let pooledBytes = 0;

function sizeClass(length: number): number {
  return 2 ** Math.ceil(Math.log2(length));
}

/** A buffer of exactly `length` bytes, reused when one of its size class is free. */
export function takePayloadBuffer(length: number): Buffer {
  if (length < POOLED_BYTES_MIN) return Buffer.allocUnsafe(length);
  const size = sizeClass(length);
  const reused = free.get(size)?.pop();
  if (reused !== undefined) pooledBytes -= size;
  return (reused ?? Buffer.allocUnsafeSlow(size)).subarray(0, length);
}

/** Returns a buffer from takePayloadBuffer once nothing refers to it any more. */
export function givePayloadBuffer(buffer: Buffer): void {
  if (buffer.length < POOLED_BYTES_MIN) return;
  const size = sizeClass(buffer.length);
  // Only whole buffers this pool made: offset 0 and exactly one size class long.
  if (buffer.byteOffset !== 0 || buffer.buffer.byteLength !== size) return;
  if (pooledBytes + size > POOL_BYTES_MAX) return;
  const list = free.get(size) ?? [];
  list.push(Buffer.from(buffer.buffer, 0, size));
  free.set(size, list);
  pooledBytes += size;
}

/** Bytes held for reuse now (for tests). */
export function payloadPoolBytes(): number {
  return pooledBytes;
}
