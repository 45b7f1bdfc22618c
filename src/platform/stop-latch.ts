// Waits that end early when their owner stops. The obvious form, Promise.race([wait, stopped])
// against one long-lived `stopped` promise, leaves a reaction on `stopped` for every call, and
// nothing releases them until `stopped` settles: a replication primary kept two per client write
// for as long as it served (a heap snapshot after about 80,000 writes held 83,000 reactions and
// 207,000 promises). A latch holds only the waits still pending, and forgets each one as it
// settles. The pending waits are a SlotSet: a Set here, which a primary adds to and deletes from
// twice per client write, left old-generation garbage at every turn of its table.

import { SlotSet } from './slot-set.js';

export class StopLatch {
  private stopError: Error | undefined;
  /** Settled (rejected) once stopped; racing a settled promise leaves nothing behind. */
  private stopped: Promise<never> | undefined;
  private readonly pending = new SlotSet<(error: Error) => void>();

  /** The error stop() was given, if it was called. */
  get error(): Error | undefined {
    return this.stopError;
  }

  /** Guarded waits not yet settled. */
  get pendingCount(): number {
    return this.pending.size;
  }

  /**
   * Settles as `promise` does, or rejects with the stop error once stop() is called, whichever
   * comes first. After stop(), a promise that has already settled still wins, as in a race.
   */
  guard<T>(promise: Promise<T>): Promise<T> {
    if (this.stopped !== undefined) return Promise.race([promise, this.stopped]);
    return new Promise<T>((resolve, reject) => {
      const slot = this.pending.add(reject);
      promise.then(
        (value) => {
          this.pending.delete(slot, reject);
          resolve(value);
        },
        // Whatever the promise rejects with is passed on as it is, as a race would.
        (error: Error) => {
          this.pending.delete(slot, reject);
          reject(error);
        },
      );
    });
  }

  /** Rejects every pending guarded wait, and every later one that is not already settled. */
  stop(error: Error): void {
    if (this.stopError !== undefined) return;
    this.stopError = error;
    this.stopped = Promise.reject(error);
    this.stopped.catch(() => undefined);
    for (const reject of this.pending) reject(error);
    this.pending.clear();
  }
}
