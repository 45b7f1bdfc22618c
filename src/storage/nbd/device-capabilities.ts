// Optional capabilities beyond BlockDevice that let the server skip a copy or an allocation on
// large requests. Devices without them are served through the plain interface.
//
// - readInto: the server reads large requests into pooled buffers and takes them back once the
//   socket has sent them, instead of faulting in fresh pages for every megabyte (about a third of
//   the cost of a 1 MiB read on the benchmark machine).
// - writev: a write payload that arrives in several socket chunks goes to the device as those
//   chunks, instead of being gathered into one buffer first (the gathering memmove was an eighth
//   of the event loop's time in 1 MiB writes).
//
// Proposed for BlockDevice itself (src/storage/block-device.ts belongs to the engine's owner);
// until then the server detects them by shape. Both follow the write() contract: the device keeps
// no reference to the caller's buffers once the promise settles.
import type { BlockDevice, WriteOptions } from '../block-device.js';

export interface ReadIntoCapable {
  /** Fills `target` with the `target.length` bytes at `offsetBytes`; same errors as read(). */
  readInto(offsetBytes: number, target: Buffer): Promise<void>;
}

export interface WritevCapable {
  /** Writes `parts` back to back from `offsetBytes`; same semantics and errors as write(). */
  writev(offsetBytes: number, parts: readonly Buffer[], options?: WriteOptions): Promise<void>;
}

export function canReadInto(device: BlockDevice): device is BlockDevice & ReadIntoCapable {
  return typeof (device as Partial<ReadIntoCapable>).readInto === 'function';
}

export function canWritev(device: BlockDevice): device is BlockDevice & WritevCapable {
  return typeof (device as Partial<WritevCapable>).writev === 'function';
}
