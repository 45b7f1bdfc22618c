// A node's view of simulated time: its own clock drift (an offset that grows at a drift rate), and
// hangs. While a node hangs (SIGSTOP, a stalled VM), none of its timers fire; they fire, late, when
// it resumes, exactly as a frozen process catches up on its timers.
import type { Clock, TimerHandle } from '../core/ports.js';
import type { FakeClock } from './fake-clock.js';

export class NodeClock implements Clock {
  private hungUntil = -Infinity;
  private readonly deferred: (() => void)[] = [];
  private readonly handles = new Map<object, TimerHandle>();

  constructor(
    private readonly base: FakeClock,
    /** Drift in parts per million: a positive value makes this node's clock run fast. */
    private readonly driftPpm = 0,
    private readonly offsetMs = 0,
  ) {}

  now(): number {
    const t = this.base.now();
    return Math.round(t + this.offsetMs + (t * this.driftPpm) / 1_000_000);
  }

  get hung(): boolean {
    return this.base.now() < this.hungUntil;
  }

  /** Freezes the node until `untilMs` of simulated (real) time. */
  hang(untilMs: number): void {
    this.hungUntil = Math.max(this.hungUntil, untilMs);
    this.base.setTimeout(() => this.resume(), untilMs - this.base.now());
  }

  private resume(): void {
    if (this.hung) return;
    for (const callback of this.deferred.splice(0)) callback();
  }

  /** Runs callback now, or when the node resumes if it is hung. */
  run(callback: () => void): void {
    if (this.hung) this.deferred.push(callback);
    else callback();
  }

  setTimeout(callback: () => void, delayMs: number): TimerHandle {
    const key = {};
    const handle = this.base.setTimeout(() => {
      this.handles.delete(key);
      this.run(callback);
    }, delayMs);
    this.handles.set(key, handle);
    return key;
  }

  clearTimeout(key: TimerHandle): void {
    const handle = this.handles.get(key);
    if (handle !== undefined) this.base.clearTimeout(handle);
    this.handles.delete(key);
  }

  /** Drops every timer and deferred callback (the node crashed: its processes are gone). */
  reset(): void {
    for (const handle of this.handles.values()) this.base.clearTimeout(handle);
    this.handles.clear();
    this.deferred.length = 0;
  }
}
