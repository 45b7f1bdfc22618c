// The in-memory StateStore: the simulator's store and the reference the contract suite holds the
// others to. Everything is synchronous inside each async method, so transactions commit in call
// order; time (lease expiry) comes only from the injected Clock.
// The port is async because etcd is; this backend does its work synchronously, so its methods
// await nothing. They stay `async` so every throw (closed store, bad input) becomes a rejection.
/* eslint-disable @typescript-eslint/require-await */
import type { JournalEvent, NewEvent } from '../core/model.js';
import type { Clock } from '../core/ports.js';
import { LeaseTimers } from './lease-timers.js';
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
} from './port.js';
import {
  compactedError,
  compareKeys,
  eventMatches,
  eventsPageLimit,
  historyRevisionsMaxDefault,
  journalEventsMaxDefault,
  leaseNotFoundError,
  positiveIntegerOption,
  storeClosedError,
  validateFromRevision,
  validateLeaseTtl,
} from './store-support.js';
import { planTxn, type StoreView } from './txn-plan.js';
import { WatchHub } from './watch-hub.js';

export interface MemoryStoreOptions {
  clock: Clock;
  /** The journal keeps this many newest events. */
  journalEventsMax?: number;
  /** How many past revisions watch({ fromRevision }) can replay. */
  historyRevisionsMax?: number;
}

interface LeaseState {
  ttlMs: number;
  expiresAtMs: number;
}

export class MemoryStore implements StateStore {
  readonly backend = 'memory' as const;
  private readonly clock: Clock;
  private readonly journalEventsMax: number;
  private readonly historyRevisionsMax: number;
  private readonly entries = new Map<string, StoreEntry>();
  /** Every key in key order, rebuilt only when a key appears or goes (range is the hot read). */
  private sortedKeys: string[] | undefined;
  /** Oldest first; seqs are consecutive, so an index is seq - journal[0].seq. */
  private readonly journal: JournalEvent[] = [];
  private readonly history: WatchBatch[] = [];
  private readonly leases = new Map<string, LeaseState>();
  private readonly hub = new WatchHub();
  private readonly timers: LeaseTimers;
  private revision = 0;
  private seq = 0;
  private leasesGranted = 0;
  /** Revisions up to this one are gone from history. */
  private compactedRevision = 0;
  private closed = false;

  constructor(options: MemoryStoreOptions) {
    this.clock = options.clock;
    this.journalEventsMax = positiveIntegerOption(
      'journalEventsMax',
      options.journalEventsMax,
      journalEventsMaxDefault,
    );
    this.historyRevisionsMax = positiveIntegerOption(
      'historyRevisionsMax',
      options.historyRevisionsMax,
      historyRevisionsMaxDefault,
    );
    this.timers = new LeaseTimers(this.clock, (id) => this.expireIfDue(id));
  }

  async get<T>(key: string): Promise<StoreEntry<T> | undefined> {
    this.assertOpen();
    const entry = this.entries.get(key);
    // Committed entries are deeply frozen (txn-plan.ts), so they are shared, not copied.
    return entry as StoreEntry<T> | undefined;
  }

  async range<T>(prefix: string): Promise<{ entries: StoreEntry<T>[]; revision: number }> {
    this.assertOpen();
    this.sortedKeys ??= [...this.entries.keys()].sort(compareKeys);
    const keys = this.sortedKeys.filter((key) => key.startsWith(prefix));
    const entries = keys.map((key) => this.entries.get(key) as StoreEntry<T>);
    return { entries, revision: this.revision };
  }

  async txn(request: TxnRequest): Promise<TxnResult> {
    this.assertOpen();
    return this.commit(request);
  }

  watch(prefix: string, options: WatchOptions, listener: (batch: WatchBatch) => void): WatchHandle {
    this.assertOpen();
    const from = options.fromRevision;
    validateFromRevision(from);
    if (from !== undefined && from < this.compactedRevision) {
      throw compactedError(from, this.compactedRevision);
    }
    const replay = from === undefined ? [] : this.history.filter((batch) => batch.revision > from);
    return this.hub.subscribe(prefix, replay, listener);
  }

  async appendEvents(events: NewEvent[]): Promise<JournalEvent[]> {
    this.assertOpen();
    return this.commit({ events }).events;
  }

  async readEvents(query: EventQuery): Promise<JournalEvent[]> {
    this.assertOpen();
    const limit = eventsPageLimit(query.limit);
    const first = this.journal[0];
    if (first === undefined) return [];
    const start = Math.max(0, (query.afterSeq ?? 0) - first.seq + 1);
    const page: JournalEvent[] = [];
    for (let index = start; index < this.journal.length && page.length < limit; index += 1) {
      const event = this.journal[index]!;
      if (eventMatches(event, query)) page.push(event);
    }
    return page;
  }

  async grantLease(ttlMs: number): Promise<Lease> {
    this.assertOpen();
    validateLeaseTtl(ttlMs);
    this.leasesGranted += 1;
    const id = `lease-${this.leasesGranted}`;
    const expiresAtMs = this.clock.now() + ttlMs;
    this.leases.set(id, { ttlMs, expiresAtMs });
    this.timers.schedule(id, expiresAtMs);
    return { id, ttlMs };
  }

  async keepAliveLease(id: string): Promise<void> {
    this.assertOpen();
    this.expireIfDue(id);
    const lease = this.leases.get(id);
    if (lease === undefined) throw leaseNotFoundError(id);
    lease.expiresAtMs = this.clock.now() + lease.ttlMs;
    this.timers.schedule(id, lease.expiresAtMs);
  }

  async revokeLease(id: string): Promise<void> {
    this.assertOpen();
    if (!this.leases.has(id)) throw leaseNotFoundError(id);
    this.endLease(id);
  }

  /** Idempotent: a second close resolves, so shutdown paths need not coordinate. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.timers.cancelAll();
    this.hub.close();
  }

  private commit(request: TxnRequest): TxnResult {
    const plan = planTxn(request, this.view());
    if (!plan.ok) return { ok: false, revision: plan.revision, events: [] };
    const batch = plan.batch;
    if (batch === undefined) return { ok: true, revision: plan.revision, events: [] };
    for (const change of batch.changes) {
      if (change.type === 'put') {
        if (!this.entries.has(change.entry.key)) this.sortedKeys = undefined;
        this.entries.set(change.entry.key, change.entry);
      } else if (this.entries.delete(change.key)) {
        this.sortedKeys = undefined;
      }
    }
    this.journal.push(...batch.events);
    this.journal.splice(0, Math.max(0, this.journal.length - this.journalEventsMax));
    this.history.push(batch);
    const dropped = this.history.splice(
      0,
      Math.max(0, this.history.length - this.historyRevisionsMax),
    );
    this.compactedRevision = dropped.at(-1)?.revision ?? this.compactedRevision;
    this.revision = batch.revision;
    this.seq += batch.events.length;
    this.hub.publish(batch);
    return { ok: true, revision: batch.revision, events: batch.events };
  }

  private view(): StoreView {
    return {
      revision: this.revision,
      seq: this.seq,
      entry: (key) => this.entries.get(key),
      leaseExists: (id) => this.leases.has(id),
    };
  }

  private expireIfDue(id: string): void {
    const lease = this.leases.get(id);
    if (lease === undefined || this.closed) return;
    if (lease.expiresAtMs <= this.clock.now()) this.endLease(id);
    else this.timers.schedule(id, lease.expiresAtMs);
  }

  /** Deletes the lease and its keys as one committed transaction, visible in the change feed. */
  private endLease(id: string): void {
    this.timers.cancel(id);
    this.leases.delete(id);
    const deletes = [...this.entries.values()]
      .filter((entry) => entry.lease === id)
      .map((entry) => entry.key);
    this.commit({ deletes });
  }

  private assertOpen(): void {
    if (this.closed) throw storeClosedError(this.backend);
  }
}
