// One Clock timer per live lease, for the local backends. The timer only triggers a check: the
// store compares the lease's expiry with clock.now() when it fires, so a keepAlive that raced the
// timer, or a clock whose timers run a little early, never expires a lease too soon.
import type { Clock, TimerHandle } from '../core/ports.js';

export class LeaseTimers {
  private readonly timers = new Map<string, TimerHandle>();

  constructor(
    private readonly clock: Clock,
    private readonly onDue: (id: string) => void,
  ) {}

  /** (Re)arms the lease's timer for its expiry time in Clock milliseconds. */
  schedule(id: string, expiresAtMs: number): void {
    this.cancel(id);
    const delayMs = Math.max(0, expiresAtMs - this.clock.now());
    const handle = this.clock.setTimeout(() => {
      this.timers.delete(id);
      this.onDue(id);
    }, delayMs);
    this.timers.set(id, handle);
  }

  cancel(id: string): void {
    const handle = this.timers.get(id);
    if (handle === undefined) return;
    this.clock.clearTimeout(handle);
    this.timers.delete(id);
  }

  cancelAll(): void {
    for (const handle of this.timers.values()) this.clock.clearTimeout(handle);
    this.timers.clear();
  }
}
