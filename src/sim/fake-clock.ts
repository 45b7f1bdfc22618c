// The simulator's Clock (CONVENTIONS.md item 5): time moves only when a test or the simulator
// calls advance/advanceTo, and due timers fire in time order, ties in the order they were set.
// Nothing here reads the host's time or arms a real timer, so a run replays exactly.
import type { Clock, TimerHandle } from '../core/ports.js';

class FakeTimer {
  constructor(
    readonly dueAtMs: number,
    /** Scheduling order; breaks ties between timers due at the same time. */
    readonly order: number,
    readonly callback: () => void,
  ) {}
}

export class FakeClock implements Clock {
  private nowMs: number;
  /** Pending timers sorted by (dueAtMs, order); the next to fire is first. */
  private readonly timers: FakeTimer[] = [];
  private timersScheduled = 0;
  private advancing = false;

  constructor(options: { startMs?: number } = {}) {
    const startMs = options.startMs ?? 0;
    if (!Number.isFinite(startMs)) throw new RangeError(`startMs must be finite, got ${startMs}`);
    this.nowMs = startMs;
  }

  now(): number {
    return this.nowMs;
  }

  setTimeout(callback: () => void, delayMs: number): TimerHandle {
    // Like Node, a negative or non-numeric delay means "as soon as possible".
    const delay = Number.isFinite(delayMs) && delayMs > 0 ? delayMs : 0;
    const timer = new FakeTimer(this.nowMs + delay, this.timersScheduled, callback);
    this.timersScheduled += 1;
    this.timers.splice(this.insertionIndex(timer), 0, timer);
    return timer;
  }

  clearTimeout(handle: TimerHandle): void {
    const index = this.timers.indexOf(handle as FakeTimer);
    if (index >= 0) this.timers.splice(index, 1);
  }

  /** Moves time forward by ms, firing every timer that falls due on the way. */
  advance(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) {
      throw new RangeError(`advance ms must be a finite non-negative number, got ${ms}`);
    }
    this.advanceTo(this.nowMs + ms);
  }

  /**
   * Moves time to timeMs, firing due timers one by one with now() set to each one's due time.
   * Timers that callbacks set fire too if they fall due by timeMs.
   */
  advanceTo(timeMs: number): void {
    if (!Number.isFinite(timeMs) || timeMs < this.nowMs) {
      throw new RangeError(`advanceTo ${timeMs} is before now (${this.nowMs}) or not finite`);
    }
    // A callback that advances the clock would fire timers out of order; that is a test bug.
    if (this.advancing) throw new Error('FakeClock.advance called from inside a timer callback');
    this.advancing = true;
    try {
      for (let next = this.timers[0]; next !== undefined && next.dueAtMs <= timeMs;) {
        this.timers.shift();
        this.nowMs = next.dueAtMs;
        next.callback();
        next = this.timers[0];
      }
      this.nowMs = timeMs;
    } finally {
      this.advancing = false;
    }
  }

  /** How many timers are waiting to fire. */
  pendingTimers(): number {
    return this.timers.length;
  }

  /** When the next timer fires, or undefined if none is pending (lets a simulator skip ahead). */
  nextDueAtMs(): number | undefined {
    return this.timers[0]?.dueAtMs;
  }

  /** Binary search for the first timer that sorts after `timer`. */
  private insertionIndex(timer: FakeTimer): number {
    let low = 0;
    let high = this.timers.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      const other = this.timers[middle]!;
      const before =
        other.dueAtMs < timer.dueAtMs ||
        (other.dueAtMs === timer.dueAtMs && other.order < timer.order);
      if (before) low = middle + 1;
      else high = middle;
    }
    return low;
  }
}
