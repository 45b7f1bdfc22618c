// A node's view of simulated time: its own clock drift (an offset that grows at a drift rate), and
// hangs. While a node hangs (SIGSTOP, a stalled VM), none of its timers fire; they fire, late, when
// it resumes, exactly as a frozen process catches up on its timers.
import type { Clock, TimerHandle } from '../core/ports.js';
import type { FakeClock } from './fake-clock.js';

export class NodeClock implements Clock {
  private hungUntil = -Infinity;
  private readonly deferred: (() => void)[] = [];
  private readonly handles = new Map<object, TimerHandle>();
  private readonly scopes = new Set<ScopedClock>();

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
    for (const scope of this.scopes) scope.resume();
  }

  /**
   * The clock of one process on the node that outlives the others' restarts (the volume server
   * survives an agent restart): same time, same hangs, timers of its own, dropped only by its own
   * reset() or the node's.
   */
  scope(): ScopedClock {
    const scope = new ScopedClock(this, this.base);
    this.scopes.add(scope);
    return scope;
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

  /**
   * Drops every timer and deferred callback of the node's own processes; with `scopes`, those of
   * its scoped clocks too (the node crashed: every process is gone).
   */
  reset(options: { scopes: boolean } = { scopes: true }): void {
    for (const handle of this.handles.values()) this.base.clearTimeout(handle);
    this.handles.clear();
    this.deferred.length = 0;
    if (options.scopes) for (const scope of this.scopes) scope.reset();
  }
}

export class ScopedClock implements Clock {
  private readonly deferred: (() => void)[] = [];
  private readonly handles = new Map<object, TimerHandle>();

  constructor(
    private readonly node: NodeClock,
    private readonly base: FakeClock,
  ) {}

  now(): number {
    return this.node.now();
  }

  setTimeout(callback: () => void, delayMs: number): TimerHandle {
    const key = {};
    const handle = this.base.setTimeout(() => {
      this.handles.delete(key);
      if (this.node.hung) this.deferred.push(callback);
      else callback();
    }, delayMs);
    this.handles.set(key, handle);
    return key;
  }

  clearTimeout(key: TimerHandle): void {
    const handle = this.handles.get(key);
    if (handle !== undefined) this.base.clearTimeout(handle);
    this.handles.delete(key);
  }

  /** The node resumed from a hang: late timers fire now. */
  resume(): void {
    for (const callback of this.deferred.splice(0)) callback();
  }

  reset(): void {
    for (const handle of this.handles.values()) this.base.clearTimeout(handle);
    this.handles.clear();
    this.deferred.length = 0;
  }
}
