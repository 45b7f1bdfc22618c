// Byte-range locks in arrival order, for the replication cores: the primary holds one over a
// mutation while it takes its sequence number and writes locally, and over a resync step while it
// reads local data and sends it, so a resync copy never interleaves with a write to the same
// blocks; a replica holds one over each mutation it applies, so overlapping mutations land in the
// order they arrived while others run side by side. A request waits for every earlier request
// that overlaps it, held or still waiting, so the order of overlapping requests is the order of
// the acquire() calls (no overtaking, no starvation).

import { SlotSet } from '../../platform/slot-set.js';

interface Entry {
  readonly start: number;
  readonly end: number;
  /** Settles when the request releases; made on first use. */
  readonly released: () => Promise<void>;
}

export type ReleaseRange = () => void;

export class RangeLock {
  private readonly entries = new SlotSet<Entry>();

  /** Requests held or waiting. */
  get size(): number {
    return this.entries.size;
  }

  /**
   * Queues a request for [offsetBytes, offsetBytes + lengthBytes) at once (its place is fixed by
   * this call) and resolves with its release once every earlier overlapping request released. An
   * empty range still orders against requests that cover its offset.
   */
  acquire(offsetBytes: number, lengthBytes: number): Promise<ReleaseRange> {
    const { release, earlier } = this.enqueue(offsetBytes, lengthBytes, false)!;
    return Promise.all(earlier).then(() => release);
  }

  /**
   * The lock at once when no earlier request overlaps the range (the common case, with no
   * promise made); otherwise undefined and nothing is queued, and the caller uses acquire().
   */
  tryAcquire(offsetBytes: number, lengthBytes: number): ReleaseRange | undefined {
    return this.enqueue(offsetBytes, lengthBytes, true)?.release;
  }

  /** Takes the request's place; with `onlyIfFree`, only when nothing earlier overlaps it. */
  private enqueue(
    offsetBytes: number,
    lengthBytes: number,
    onlyIfFree: boolean,
  ): { release: ReleaseRange; earlier: Promise<void>[] } | undefined {
    if (!Number.isSafeInteger(offsetBytes) || offsetBytes < 0) {
      throw new RangeError(`range lock offset must be a whole number, got ${String(offsetBytes)}`);
    }
    if (!Number.isSafeInteger(lengthBytes) || lengthBytes < 0) {
      throw new RangeError(`range lock length must be a whole number, got ${String(lengthBytes)}`);
    }
    const start = offsetBytes;
    const end = offsetBytes + Math.max(lengthBytes, 1);
    const earlier: Promise<void>[] = [];
    for (const entry of this.entries) {
      if (entry.start < end && start < entry.end) {
        if (onlyIfFree) return undefined;
        earlier.push(entry.released());
      }
    }
    // The promise a later overlapping request waits on is made only when one asks for it.
    let resolveReleased: (() => void) | undefined;
    let released: Promise<void> | undefined;
    let done = false;
    const entry: Entry = {
      start,
      end,
      // Asked only while the entry is in the set, so before its release.
      released: () => (released ??= new Promise<void>((resolve) => (resolveReleased = resolve))),
    };
    const slot = this.entries.add(entry);
    const release: ReleaseRange = () => {
      if (done) return;
      done = true;
      this.entries.delete(slot, entry);
      resolveReleased?.();
    };
    return { release, earlier };
  }
}
