// The etcd StateStore, for several controllers on several hosts: the store is etcd itself, so
// every controller sees the same revisions, conditional writes serialize their decisions, and
// watches reach every process. docs/store.md ("The etcd backend") has the design; in short:
//   - revisions, modRevision, createRevision and version are etcd's own. etcd's revision counts
//     for the whole etcd cluster, so a store's revisions do not start at 0, and writes of other
//     stores on the same etcd raise them too: they rise with every committed txn of this store,
//     by exactly one only while nobody else writes to that etcd.
//   - a txn is one etcd Txn (etcd-txn.ts), journal events included, with a counter key for seq.
//   - a watch is one etcd watch stream that resumes after reconnects (etcd-watch.ts).
//   - leases are etcd leases on etcd's real time, in whole seconds, 2 s at least (etcd-leases.ts).
//   - calls have one deadline each and retry only when it is safe (etcd-calls.ts).
import { Etcd3, GRPCDeadlineExceededError } from 'etcd3';
import { circuitBreaker, ConsecutiveBreaker, handleWhen, noop } from 'cockatiel';
import { ContinuumError, isContinuumError } from '../core/errors.js';
import type { JournalEvent, NewEvent } from '../core/model.js';
import { EtcdCalls } from './etcd-calls.js';
import {
  EtcdKeyLayout,
  entryFromKeyValue,
  etcdLeaseId,
  journalEventFromKeyValue,
  type EtcdKeyRange,
} from './etcd-keys.js';
import {
  etcdStoreSettings,
  responseBytesMax,
  type EtcdStoreOptions,
  type EtcdStoreSettings,
} from './etcd-options.js';
import {
  buildEtcdTxn,
  changedAnything,
  prepareTxn,
  readFailedTry,
  type JournalCounter,
  type PreparedTxn,
} from './etcd-txn.js';
import { EtcdLeases } from './etcd-leases.js';
import { EtcdWatch } from './etcd-watch.js';
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
  eventMatches,
  eventsPageLimit,
  leaseNotFoundError,
  storeClosedError,
  validateFromRevision,
  validateLeaseTtl,
} from './store-support.js';

export type { EtcdStoreOptions };

/** How long watchesCaughtUp waits unless told otherwise. */
const caughtUpTimeoutMsDefault = 10_000;

export class EtcdStore implements StateStore {
  readonly backend = 'etcd' as const;
  private readonly settings: EtcdStoreSettings;
  private readonly client: Etcd3;
  private readonly layout: EtcdKeyLayout;
  private readonly calls: EtcdCalls;
  private readonly watches = new Set<EtcdWatch>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly leases: EtcdLeases;
  private journalCounter: JournalCounter = { seq: 0, modRevision: 0 };
  /** The txns with events of this store, one after the other (see commit). */
  private journalQueue: Promise<unknown> = Promise.resolve();
  /** The highest etcd revision any answer has shown: where a watch without fromRevision starts. */
  private knownRevision = 0;
  /** The highest revision at which a txn of this store changed something. */
  private committedRevision = 0;
  private closed = false;
  private closing: Promise<void> | undefined;

  /** Opens a store and reads its journal counter: rejects UNAVAILABLE if etcd does not answer. */
  static async open(options: EtcdStoreOptions): Promise<EtcdStore> {
    const store = new EtcdStore(etcdStoreSettings(options));
    try {
      await store.readJournalCounter();
    } catch (error) {
      await store.close();
      throw error;
    }
    return store;
  }

  private constructor(settings: EtcdStoreSettings) {
    this.settings = settings;
    this.layout = new EtcdKeyLayout(settings.prefix);
    this.calls = new EtcdCalls(settings, () => this.closed);
    this.client = new Etcd3({
      hosts: settings.endpoints,
      // No circuit breaker and no blind retries in the client: EtcdCalls retries what is safe,
      // within the call's deadline (see etcd-calls.ts for why).
      // With several members, one breaker per member, open for memberAvoidMs after a try that
      // timed out: the next tries go to the other members at once (a crashed host answers
      // nothing). A lone member is never passed over: there is nowhere else to go.
      faultHandling: {
        host: () =>
          settings.endpoints.length === 1
            ? noop
            : circuitBreaker(handleWhen(memberUnreachable), {
                halfOpenAfter: settings.memberAvoidMs,
                breaker: new ConsecutiveBreaker(1),
              }),
        global: noop,
      },
      grpcOptions: {
        // Reconnect soon after etcd is back rather than after grpc's default backoff (up to 120 s).
        'grpc.initial_reconnect_backoff_ms': 100,
        'grpc.max_reconnect_backoff_ms': 1000,
        // Find a silently dead connection (a partitioned host) under a long-lived watch stream.
        // etcd refuses pings more often than its --grpc-keepalive-min-time (5 s).
        'grpc.keepalive_time_ms': 6000,
        'grpc.keepalive_timeout_ms': 2000,
        'grpc.max_receive_message_length': responseBytesMax,
      },
    });
    this.leases = new EtcdLeases(this.client, this.calls, (revision) => this.observe(revision));
  }

  async get<T>(key: string): Promise<StoreEntry<T> | undefined> {
    this.assertOpen();
    return this.track(async () => {
      const response = await this.calls.run('get', 'repeatable', this.calls.deadline(), (try_) =>
        this.client.kv.range({ key: this.layout.record(key) }, try_.options),
      );
      this.observe(response.header.revision);
      const kv = response.kvs[0];
      return kv === undefined ? undefined : (entryFromKeyValue(key, kv) as StoreEntry<T>);
    });
  }

  async range<T>(prefix: string): Promise<{ entries: StoreEntry<T>[]; revision: number }> {
    this.assertOpen();
    return this.track(async () => {
      const entries: StoreEntry<T>[] = [];
      const revision = await this.pages('range', this.layout.records(prefix), (kv) => {
        entries.push(entryFromKeyValue(this.layout.recordKey(kv.key)!, kv) as StoreEntry<T>);
        return true;
      });
      return { entries, revision };
    });
  }

  async txn(request: TxnRequest): Promise<TxnResult> {
    this.assertOpen();
    const prepared = prepareTxn(request, this.layout, this.settings);
    return this.track(() => this.commit(prepared, 'txn'));
  }

  watch(prefix: string, options: WatchOptions, listener: (batch: WatchBatch) => void): WatchHandle {
    this.assertOpen();
    const from = options.fromRevision;
    validateFromRevision(from);
    // etcd keeps history until someone compacts it; the store still bounds how far back a watch
    // may start, like the local backends, so a controller behaves alike on every backend.
    const windowStart = this.knownRevision - this.settings.historyRevisionsMax;
    if (from !== undefined && from < windowStart) throw compactedError(from, windowStart);
    const context = {
      layout: this.layout,
      openStream: () => this.client.watchClient.watch(),
      watchRetryBackoffMsMax: this.settings.watchRetryBackoffMsMax,
      onStopped: (stopped: EtcdWatch) => this.watches.delete(stopped),
    };
    // Without fromRevision, start after the newest revision this store has seen: every txn it
    // commits later has a higher one, so none is missed while the stream is being set up.
    const start = (from ?? this.knownRevision) + 1;
    const watch = new EtcdWatch(context, prefix, start, listener, options.onError);
    this.watches.add(watch);
    watch.start();
    return { cancel: () => watch.cancel() };
  }

  async appendEvents(events: NewEvent[]): Promise<JournalEvent[]> {
    this.assertOpen();
    const prepared = prepareTxn({ events }, this.layout, this.settings);
    return (await this.track(() => this.commit(prepared, 'appendEvents'))).events;
  }

  async readEvents(query: EventQuery): Promise<JournalEvent[]> {
    this.assertOpen();
    const limit = eventsPageLimit(query.limit);
    const afterSeq = Number.isFinite(query.afterSeq) ? Math.max(0, Math.floor(query.afterSeq!)) : 0;
    // Filters run here, on the pages etcd returns; no kind at all matches nothing.
    if (query.kinds?.length === 0) return [];
    return this.track(async () => {
      const page: JournalEvent[] = [];
      await this.pages('readEvents', this.layout.journalFrom(afterSeq + 1), (kv) => {
        const event = journalEventFromKeyValue(kv);
        if (eventMatches(event, query)) page.push(event);
        return page.length < limit;
      });
      return page;
    });
  }

  async grantLease(ttlMs: number): Promise<Lease> {
    this.assertOpen();
    validateLeaseTtl(ttlMs);
    return this.track(() => this.leases.grant(ttlMs));
  }

  async keepAliveLease(id: string): Promise<void> {
    this.assertOpen();
    const etcdId = etcdLeaseId(id);
    if (etcdId === undefined) throw leaseNotFoundError(id);
    return this.track(() => this.leases.keepAlive(id, etcdId));
  }

  async revokeLease(id: string): Promise<void> {
    this.assertOpen();
    if (etcdLeaseId(id) === undefined) throw leaseNotFoundError(id);
    return this.track(() => this.leases.revoke(id));
  }

  /**
   * Resolves once every open watch has delivered every revision this store has committed so far;
   * rejects with CONTINUUM_ERR_TIMEOUT after timeoutMs. For tests and orderly hand-overs: the
   * change feed is remote, so "delivered" cannot be had by letting the event loop turn.
   */
  async watchesCaughtUp(options: { timeoutMs?: number } = {}): Promise<void> {
    const timeoutMs = options.timeoutMs ?? caughtUpTimeoutMsDefault;
    const target = this.committedRevision;
    const watches = [...this.watches];
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        const behind = [...this.watches].map((watch) => watch.describe()).join(', ');
        const message = `watches did not catch up with revision ${target} within ${timeoutMs} ms: ${behind}`;
        reject(new ContinuumError('CONTINUUM_ERR_TIMEOUT', message));
      }, timeoutMs);
    });
    try {
      await Promise.race([Promise.all(watches.map((watch) => watch.caughtUp(target))), timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops watches, lets calls already made finish, then closes the client. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    this.closed = true;
    for (const watch of [...this.watches]) watch.cancel();
    await Promise.allSettled([...this.inFlight]);
    if (this.settings.revokeLeasesOnClose) {
      await Promise.allSettled([...this.leases.granted].map((id) => this.leases.revoke(id)));
    }
    this.client.close();
  }

  /**
   * Runs one port txn. Txns with events queue behind each other within this store, so they never
   * race for the journal counter among themselves; only other processes can make a try fail on
   * it. The deadline is taken before the queue, so queueing counts against etcdCallTimeoutMs.
   */
  private commit(prepared: PreparedTxn, call: string): Promise<TxnResult> {
    const deadlineMs = this.calls.deadline();
    if (prepared.events.length === 0) return this.commitTries(prepared, call, deadlineMs);
    const result = this.journalQueue.then(() => this.commitTries(prepared, call, deadlineMs));
    this.journalQueue = result.catch(() => undefined);
    return result;
  }

  /** Tries a txn again while only the journal counter moved under it. */
  private async commitTries(
    prepared: PreparedTxn,
    call: string,
    deadlineMs: number,
  ): Promise<TxnResult> {
    const context = { layout: this.layout, journalEventsMax: this.settings.journalEventsMax };
    for (let attempt = 1; ; attempt += 1) {
      const counter = prepared.events.length > 0 ? this.journalCounter : undefined;
      const { request, events } = buildEtcdTxn(prepared, counter, context);
      const response = await this.calls
        .run(call, 'write', deadlineMs, (try_) => this.client.kv.txn(request, try_.options))
        .catch((error: unknown) => {
          throw this.leaseErrorOfTxn(prepared, error);
        });
      this.observe(response.header.revision);
      const revision = Number(response.header.revision);
      if (response.succeeded) {
        if (counter !== undefined) {
          this.learnJournalCounter({ seq: counter.seq + events.length, modRevision: revision });
        }
        if (changedAnything(prepared, response)) {
          this.committedRevision = Math.max(this.committedRevision, revision);
        }
        return { ok: true, revision, events };
      }
      if (counter === undefined) return { ok: false, revision, events: [] };
      const failed = readFailedTry(prepared, response);
      this.learnJournalCounter(failed.counter);
      if (!failed.callerComparesHeld) return { ok: false, revision, events: [] };
      if (attempt >= this.settings.journalAppendAttemptsMax) {
        throw new ContinuumError(
          'CONTINUUM_ERR_CONFLICT',
          `${call}: other writers appended to the journal during each of ${attempt} tries (journalAppendAttemptsMax)`,
        );
      }
    }
  }

  /** etcd says only "requested lease not found"; name the leases and keys of the txn. */
  private leaseErrorOfTxn(prepared: PreparedTxn, error: unknown): unknown {
    if (!isContinuumError(error) || error.code !== 'CONTINUUM_ERR_NOT_FOUND') return error;
    const leased = prepared.puts.filter((put) => put.lease !== '0');
    const names = leased.map((put) => `${put.lease} (key ${JSON.stringify(put.key.toString())})`);
    return new ContinuumError(
      'CONTINUUM_ERR_NOT_FOUND',
      `lease ${names.join(', ')} does not exist or has expired`,
      { cause: error },
    );
  }

  /**
   * Reads a range page by page at one revision (a consistent snapshot); `take` returns false to
   * stop early. Returns the revision read at.
   */
  private async pages(
    call: string,
    range: EtcdKeyRange,
    take: (kv: Parameters<typeof entryFromKeyValue>[1]) => boolean,
  ): Promise<number> {
    const deadlineMs = this.calls.deadline();
    let revision = 0;
    let key = range.key;
    for (;;) {
      const request = {
        key,
        range_end: range.range_end,
        limit: this.settings.rangePageKeysMax,
        revision,
      };
      const response = await this.calls.run(call, 'repeatable', deadlineMs, (try_) =>
        this.client.kv.range(request, try_.options),
      );
      if (revision === 0) {
        revision = Number(response.header.revision);
        this.observe(response.header.revision);
      }
      for (const kv of response.kvs) {
        if (!take(kv)) return revision;
      }
      const last = response.kvs.at(-1);
      if (!response.more || last === undefined) return revision;
      key = Buffer.concat([last.key, Buffer.from([0])]);
    }
  }

  private async readJournalCounter(): Promise<void> {
    const key = this.layout.journalSeqKey;
    const response = await this.calls.run('open', 'repeatable', this.calls.deadline(), (try_) =>
      this.client.kv.range({ key }, try_.options),
    );
    this.observe(response.header.revision);
    const kv = response.kvs[0];
    if (kv !== undefined) {
      this.learnJournalCounter({
        seq: Number(kv.value.toString('utf8')),
        modRevision: Number(kv.mod_revision),
      });
    }
  }

  /** Keeps the newest counter seen: a read answered late must not replace a fresher one. */
  private learnJournalCounter(counter: JournalCounter): void {
    if (counter.modRevision > this.journalCounter.modRevision) this.journalCounter = counter;
  }

  private observe(revision: string): void {
    this.knownRevision = Math.max(this.knownRevision, Number(revision));
  }

  private track<T>(work: () => Promise<T>): Promise<T> {
    const promise = work();
    this.inFlight.add(promise);
    const forget = () => this.inFlight.delete(promise);
    promise.then(forget, forget);
    return promise;
  }

  private assertOpen(): void {
    if (this.closed) throw storeClosedError(this.backend);
  }
}

/**
 * A try that this member let time out: its host may be gone. (A refused or failed connection
 * fails at once and costs nothing, so it does not count.)
 */
function memberUnreachable(error: Error): boolean {
  return error instanceof GRPCDeadlineExceededError;
}
