// Byte-range locks in arrival order, for the replication cores: the primary holds one over a
// mutation while it takes its sequence number and writes locally, and over a resync step while it
// reads local data and sends it, so a resync copy never interleaves with a write to the same
// blocks; a replica holds one over each mutation it applies, so overlapping mutations land in the
// order they arrived while others run side by side. A request waits for every earlier request
// that overlaps it, held or still waiting, so the order of overlapping requests is the order of
// the acquire() calls (no overtaking, no starvation).

interface Entry {
  readonly start: number;
  readonly end: number;
  readonly released: Promise<void>;
}

export type ReleaseRange = () => void;

export class RangeLock {
  private readonly entries = new Set<Entry>();

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
      if (entry.start < end && start < entry.end) earlier.push(entry.released);
    }
    let resolveReleased!: () => void;
    const released = new Promise<void>((resolve) => (resolveReleased = resolve));
    const entry: Entry = { start, end, released };
    this.entries.add(entry);
    let done = false;
    const release: ReleaseRange = () => {
      if (done) return;
      done = true;
      this.entries.delete(entry);
      resolveReleased();
    };
    return Promise.all(earlier).then(() => release);
  }
}
