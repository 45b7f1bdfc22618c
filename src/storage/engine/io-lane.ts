// Orders overlapping requests on one volume. NBD clients keep up to 32 requests in flight and may
// overlap them; the engine must not let two writes to one block race (the map would describe one,
// the file hold the other) nor a read see a slot while it is rewritten (a false checksum error).
// A request waits only for earlier requests on overlapping blocks that conflict with it (a write
// with anything, a read with a write), so requests on distinct blocks run fully in parallel. At a
// queue depth of 32 the scan of requests in flight is 32 comparisons; nothing is allocated for a
// request that waits for nobody beyond its own small record.

import { SlotSet } from '../../platform/slot-set.js';

interface LaneEntry {
  readonly startBlock: number;
  readonly endBlock: number;
  readonly exclusive: boolean;
  waiters: (() => void)[] | null;
}

export class IoLane {
  private readonly active = new SlotSet<LaneEntry>();

  get inFlight(): number {
    return this.active.size;
  }

  /**
   * Runs `task` once every earlier conflicting request on [startBlock, endBlock) has finished.
   * `exclusive` is true for anything that changes blocks.
   */
  run<T>(
    startBlock: number,
    endBlock: number,
    exclusive: boolean,
    task: () => Promise<T>,
  ): Promise<T> {
    let waits: Promise<void>[] | null = null;
    for (const other of this.active) {
      if (!exclusive && !other.exclusive) continue;
      if (other.startBlock >= endBlock || startBlock >= other.endBlock) continue;
      const wait = new Promise<void>((resolve) => (other.waiters ??= []).push(resolve));
      (waits ??= []).push(wait);
    }
    const entry: LaneEntry = { startBlock, endBlock, exclusive, waiters: null };
    const slot = this.active.add(entry);
    const finish = (): void => {
      this.active.delete(slot, entry);
      if (entry.waiters !== null) for (const wake of entry.waiters) wake();
    };
    const started = waits === null ? runTask(task) : Promise.all(waits).then(task);
    return started.finally(finish);
  }

  /** Runs `task` alone: after everything before it, and before everything after it. */
  barrier<T>(task: () => Promise<T>): Promise<T> {
    return this.run(0, Number.MAX_SAFE_INTEGER, true, task);
  }
}

/** Starts the task now; a synchronous throw becomes a rejection like any other failure. */
async function runTask<T>(task: () => Promise<T>): Promise<T> {
  return task();
}
