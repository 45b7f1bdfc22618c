// Several controllers in the simulator, electing a leader over the shared memory store as real
// ones do over etcd (controller/leadership.ts). Each runs on a clock of its own that can hang
// (SIGSTOP, a long GC pause) and reaches the store through a gate that holds every call and every
// watch delivery while it hangs, so a hung leader resumes mid-decision with what it read before:
// exactly the case the leader compare exists for. A crash drops the controller's timers and
// leaves its store calls unanswered for ever, so its lease runs out instead of being revoked.
import { Controller, type ControllerOptions } from '../controller/controller.js';
import type { JournalEvent, NewEvent } from '../core/model.js';
import type {
  EventQuery,
  Lease,
  StateStore,
  StoreEntry,
  TxnRequest,
  TxnResult,
  WatchBatch,
  WatchHandle,
  WatchOptions,
} from '../store/port.js';
import type { FakeClock } from './fake-clock.js';
import { NodeClock } from './node-clock.js';

/** The leader lease in the simulator: etcd's smallest (2 s), as deployed. */
export const simLeaderLeaseTtlMs = 2000;

/** One controller process of the simulated cluster (absent while crashed). */
export class SimControllerSlot {
  readonly clock: NodeClock;
  controller: Controller | undefined;
  /** Writes refused for want of leadership by this slot's earlier (crashed) controllers. */
  private refusedBefore = 0;
  private gate: GatedStore | undefined;
  private incarnation = 0;

  constructor(
    readonly address: string,
    private readonly base: FakeClock,
  ) {
    this.clock = new NodeClock(base);
  }

  get hung(): boolean {
    return this.clock.hung;
  }

  /** Starts a controller process here; with `elect`, one of several that elect a leader. */
  async start(
    store: StateStore,
    options: Omit<ControllerOptions, 'store' | 'clock' | 'controllerId'>,
    elect: boolean,
  ): Promise<Controller> {
    // The only controller runs as it always has: on the world's clock, straight on the store.
    this.gate = elect ? new GatedStore(store, this.clock, this.base) : undefined;
    const controller = new Controller({
      ...options,
      store: this.gate ?? store,
      clock: elect ? this.clock : this.base,
      controllerId: elect
        ? `${this.address}#${++this.incarnation}`
        : `controller-${++this.incarnation}`,
      ...(elect
        ? { leadership: { url: `sim://${this.address}`, leaseTtlMs: simLeaderLeaseTtlMs } }
        : {}),
    });
    this.controller = controller;
    await controller.start();
    return controller;
  }

  /**
   * The process dies: nothing of it runs again. One of several leaves its lease to expire; the
   * only controller's in-flight work is awaited, as before there were several.
   */
  async crash(): Promise<void> {
    const controller = this.controller;
    this.controller = undefined;
    this.refusedBefore += controller?.writesRefusedNotLeader ?? 0;
    if (this.gate === undefined) {
      await controller?.stop();
      return;
    }
    this.gate.kill();
    this.clock.reset();
  }

  /** The process freezes for durationMs of simulated time, then carries on where it was. */
  hang(durationMs: number): void {
    this.clock.hang(this.base.now() + durationMs);
  }

  /**
   * The process freezes for durationMs just as its next write leaves, and that write reaches the
   * store only at the end of the freeze (held in the network), before the process runs again: if
   * another controller was elected meanwhile, the leader compare must refuse it.
   */
  hangAtNextWrite(durationMs: number): void {
    if (this.gate === undefined) this.hang(durationMs);
    else this.gate.hangAtNextWrite = durationMs;
  }

  /**
   * The store takes durationMs to answer this controller's writes (etcd's log on a slow disk, a
   * member catching up), while reads, watches and leader lease renewals still answer: the process
   * runs on, and whatever awaits a write waits. Only with several controllers (the gated store).
   */
  stallWrites(durationMs: number): void {
    if (this.gate === undefined)
      throw new Error('stallWrites: expected a world with several controllers (a gated store)');
    this.gate.writesStalledUntil = this.base.now() + durationMs;
  }

  /** Writes the store (or the guard) refused because a controller here no longer led. */
  get writesRefusedNotLeader(): number {
    return this.refusedBefore + (this.controller?.writesRefusedNotLeader ?? 0);
  }
}

/** A store seen from a controller process that may hang or die (see the file comment). */
class GatedStore implements StateStore {
  readonly backend: StateStore['backend'];
  private dead = false;
  /** Set: the next txn freezes the process this long and reaches the store late (see above). */
  hangAtNextWrite: number | undefined;
  /** Writes made before this time (on the world's clock) are answered only then. */
  writesStalledUntil = 0;

  constructor(
    private readonly inner: StateStore,
    private readonly clock: NodeClock,
    private readonly base: FakeClock,
  ) {
    this.backend = inner.backend;
  }

  kill(): void {
    this.dead = true;
  }

  /** Resolves when the process runs (at once, or when it resumes); never once it is dead. */
  private running(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.dead) this.clock.run(() => (this.dead ? undefined : resolve()));
    });
  }

  private async call<T>(fn: () => Promise<T>): Promise<T> {
    await this.running();
    const result = await fn();
    await this.running();
    return result;
  }

  /** A write: held while writes stall, then made as any call. */
  private async write<T>(fn: () => Promise<T>): Promise<T> {
    const stalledMs = this.writesStalledUntil - this.base.now();
    if (stalledMs > 0)
      await new Promise<void>((resolve) => this.base.setTimeout(resolve, stalledMs));
    return this.call(fn);
  }

  get<T>(key: string): Promise<StoreEntry<T> | undefined> {
    return this.call(() => this.inner.get<T>(key));
  }

  range<T>(prefix: string): Promise<{ entries: StoreEntry<T>[]; revision: number }> {
    return this.call(() => this.inner.range<T>(prefix));
  }

  txn(request: TxnRequest): Promise<TxnResult> {
    const durationMs = this.hangAtNextWrite;
    if (durationMs === undefined) return this.write(() => this.inner.txn(request));
    this.hangAtNextWrite = undefined;
    return new Promise<TxnResult>((resolve, reject) => {
      // Set before the hang, so it fires before the process resumes at the same instant.
      this.base.setTimeout(() => {
        if (this.dead) return;
        this.inner.txn(request).then((result) => {
          void this.running().then(() => resolve(result));
        }, reject);
      }, durationMs);
      this.clock.hang(this.base.now() + durationMs);
    });
  }

  appendEvents(events: NewEvent[]): Promise<JournalEvent[]> {
    return this.write(() => this.inner.appendEvents(events));
  }

  readEvents(query: EventQuery): Promise<JournalEvent[]> {
    return this.call(() => this.inner.readEvents(query));
  }

  watch(prefix: string, options: WatchOptions, listener: (batch: WatchBatch) => void): WatchHandle {
    return this.inner.watch(prefix, options, (batch) => {
      if (!this.dead) this.clock.run(() => (this.dead ? undefined : listener(batch)));
    });
  }

  grantLease(ttlMs: number): Promise<Lease> {
    return this.call(() => this.inner.grantLease(ttlMs));
  }

  keepAliveLease(id: string): Promise<void> {
    return this.call(() => this.inner.keepAliveLease(id));
  }

  revokeLease(id: string): Promise<void> {
    return this.call(() => this.inner.revokeLease(id));
  }

  async close(): Promise<void> {
    // The shared store is closed by the world, once.
  }
}
