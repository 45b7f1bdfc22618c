// The embedded SQLite StateStore, the default for a single controller. Each txn is one SQL
// transaction committed with synchronous=FULL before the promise resolves and before the change
// feed hears of it, so the controller's rule "persist, then send" holds across a crash. One
// process owns the file; the change feed is in-process only.
// The port is async because etcd is; this backend does its work synchronously, so its methods
// await nothing. They stay `async` so every throw (closed store, bad input) becomes a rejection.
/* eslint-disable @typescript-eslint/require-await */
import Database from 'better-sqlite3';
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
import { prepareDatabase } from './sqlite-schema.js';
import {
  compactedError,
  eventsPageLimit,
  historyRevisionsMaxDefault,
  journalEventsMaxDefault,
  leaseNotFoundError,
  positiveIntegerOption,
  storeClosedError,
  validateFromRevision,
  validateLeaseTtl,
} from './store-support.js';
import { copyJson, jsonText, planTxn, type StoreView, type TxnPlan } from './txn-plan.js';
import { WatchHub } from './watch-hub.js';

export interface SqliteStoreOptions {
  /** The database file, or ':memory:' for a store that lives as long as the object. */
  path: string;
  clock: Clock;
  /** The journal keeps this many newest events. */
  journalEventsMax?: number;
  /** How many past revisions watch({ fromRevision }) can replay. */
  historyRevisionsMax?: number;
}

type MetaName = 'revision' | 'seq' | 'leases_granted' | 'compacted_revision';

interface KvRow {
  key: string;
  value: string;
  mod_revision: number;
  create_revision: number;
  version: number;
  lease: string | null;
}

interface LeaseRow {
  id: string;
  ttl_ms: number;
  expires_at: number;
}

const kvColumns = 'key, value, mod_revision, create_revision, version, lease';

export class SqliteStore implements StateStore {
  readonly backend = 'sqlite' as const;
  private readonly db: Database.Database;
  private readonly clock: Clock;
  private readonly journalEventsMax: number;
  private readonly historyRevisionsMax: number;
  private readonly hub = new WatchHub();
  private readonly timers: LeaseTimers;
  private readonly sql: ReturnType<typeof prepareStatements>;
  /** Runs one store txn (or the end of a lease) as one SQL transaction. */
  private readonly writeTxn: Database.Transaction<
    (request: TxnRequest, endedLeaseId: string | null) => TxnPlan
  >;
  private closed = false;

  constructor(options: SqliteStoreOptions) {
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
    this.db = new Database(options.path);
    try {
      prepareDatabase(this.db);
    } catch (error) {
      this.db.close();
      throw error;
    }
    this.sql = prepareStatements(this.db);
    this.writeTxn = this.db.transaction((request, endedLeaseId) =>
      this.writeInTransaction(request, endedLeaseId),
    );
    this.timers = new LeaseTimers(this.clock, (id) => this.expireIfDue(id));
    this.resumeLeases();
  }

  async get<T>(key: string): Promise<StoreEntry<T> | undefined> {
    this.assertOpen();
    const row = this.sql.getEntry.get(key) as KvRow | undefined;
    return row === undefined ? undefined : (rowEntry(row) as StoreEntry<T>);
  }

  async range<T>(prefix: string): Promise<{ entries: StoreEntry<T>[]; revision: number }> {
    this.assertOpen();
    // Read in one SQL transaction so the entries and the revision belong to the same snapshot.
    return this.db.transaction(() => {
      const entries: StoreEntry<T>[] = [];
      // key >= prefix uses the primary key index; the first key without the prefix ends the run.
      for (const row of this.sql.rangeFrom.iterate(prefix) as Iterable<KvRow>) {
        if (!row.key.startsWith(prefix)) break;
        entries.push(rowEntry(row) as StoreEntry<T>);
      }
      return { entries, revision: this.meta('revision') };
    })();
  }

  async txn(request: TxnRequest): Promise<TxnResult> {
    this.assertOpen();
    return this.commit(request, null);
  }

  watch(prefix: string, options: WatchOptions, listener: (batch: WatchBatch) => void): WatchHandle {
    this.assertOpen();
    const from = options.fromRevision;
    validateFromRevision(from);
    const compacted = this.meta('compacted_revision');
    if (from !== undefined && from < compacted) throw compactedError(from, compacted);
    const replay =
      from === undefined
        ? []
        : (this.sql.historyAfter.all(from) as string[]).map(
            (json) => JSON.parse(json) as WatchBatch,
          );
    return this.hub.subscribe(prefix, replay, listener);
  }

  async appendEvents(events: NewEvent[]): Promise<JournalEvent[]> {
    this.assertOpen();
    return this.commit({ events }, null).events;
  }

  async readEvents(query: EventQuery): Promise<JournalEvent[]> {
    this.assertOpen();
    const limit = eventsPageLimit(query.limit);
    const where = ['seq > ?'];
    const params: (string | number)[] = [query.afterSeq ?? 0];
    if (query.kinds !== undefined) {
      if (query.kinds.length === 0) return [];
      where.push(`kind IN (${query.kinds.map(() => '?').join(', ')})`);
      params.push(...query.kinds);
    }
    if (query.subject?.kind !== undefined) {
      where.push('subject_kind = ?');
      params.push(query.subject.kind);
    }
    if (query.subject?.name !== undefined) {
      where.push('subject_name = ?');
      params.push(query.subject.name);
    }
    if (query.sinceAt !== undefined) {
      where.push('at >= ?');
      params.push(query.sinceAt);
    }
    const statement = this.db
      .prepare(`SELECT json FROM journal WHERE ${where.join(' AND ')} ORDER BY seq LIMIT ?`)
      .pluck();
    const rows = statement.all(...params, limit) as string[];
    return rows.map((json) => JSON.parse(json) as JournalEvent);
  }

  async grantLease(ttlMs: number): Promise<Lease> {
    this.assertOpen();
    validateLeaseTtl(ttlMs);
    const expiresAtMs = this.clock.now() + ttlMs;
    const id = this.db.transaction(() => {
      const granted = this.meta('leases_granted') + 1;
      this.sql.setMeta.run(granted, 'leases_granted');
      const leaseId = `lease-${granted}`;
      this.sql.insertLease.run(leaseId, ttlMs, expiresAtMs);
      return leaseId;
    })();
    this.timers.schedule(id, expiresAtMs);
    return { id, ttlMs };
  }

  async keepAliveLease(id: string): Promise<void> {
    this.assertOpen();
    this.expireIfDue(id);
    const lease = this.sql.getLease.get(id) as LeaseRow | undefined;
    if (lease === undefined) throw leaseNotFoundError(id);
    const expiresAtMs = this.clock.now() + lease.ttl_ms;
    this.sql.setLeaseExpiry.run(expiresAtMs, id);
    this.timers.schedule(id, expiresAtMs);
  }

  async revokeLease(id: string): Promise<void> {
    this.assertOpen();
    if (this.sql.getLease.get(id) === undefined) throw leaseNotFoundError(id);
    this.endLease(id);
  }

  /** Idempotent: a second close resolves, so shutdown paths need not coordinate. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.timers.cancelAll();
    this.hub.close();
    this.db.close();
  }

  /** Commits, then (only once durable) publishes to the change feed. */
  private commit(request: TxnRequest, endedLeaseId: string | null): TxnResult {
    const plan = this.writeTxn.immediate(request, endedLeaseId);
    if (!plan.ok) return { ok: false, revision: plan.revision, events: [] };
    if (plan.batch === undefined) return { ok: true, revision: plan.revision, events: [] };
    this.hub.publish(plan.batch);
    return { ok: true, revision: plan.revision, events: copyJson(plan.batch.events) };
  }

  private writeInTransaction(request: TxnRequest, endedLeaseId: string | null): TxnPlan {
    let effective = request;
    if (endedLeaseId !== null) {
      effective = { deletes: this.sql.leaseKeys.all(endedLeaseId) as string[] };
      this.sql.deleteLease.run(endedLeaseId);
    }
    const plan = planTxn(effective, this.view());
    if (plan.ok && plan.batch !== undefined) this.persist(plan.batch);
    return plan;
  }

  private persist(batch: WatchBatch): void {
    const { revision } = batch;
    for (const change of batch.changes) {
      if (change.type === 'delete') {
        this.sql.deleteEntry.run(change.key);
        continue;
      }
      const { entry } = change;
      this.sql.putEntry.run(
        entry.key,
        jsonText(entry.value, 'value'),
        entry.modRevision,
        entry.createRevision,
        entry.version,
        entry.lease ?? null,
      );
    }
    for (const event of batch.events) {
      this.sql.insertEvent.run(
        event.seq,
        event.at,
        event.kind,
        event.subject.kind,
        event.subject.name,
        JSON.stringify(event),
      );
    }
    const seq = this.meta('seq') + batch.events.length;
    this.sql.setMeta.run(seq, 'seq');
    this.sql.trimJournal.run(seq - this.journalEventsMax);
    this.sql.insertHistory.run(revision, JSON.stringify(batch));
    const compacted = revision - this.historyRevisionsMax;
    if (compacted > this.meta('compacted_revision')) {
      this.sql.trimHistory.run(compacted);
      this.sql.setMeta.run(compacted, 'compacted_revision');
    }
    this.sql.setMeta.run(revision, 'revision');
  }

  private view(): StoreView {
    return {
      revision: this.meta('revision'),
      seq: this.meta('seq'),
      entry: (key) => {
        const row = this.sql.getEntry.get(key) as KvRow | undefined;
        return row === undefined ? undefined : rowEntry(row);
      },
      leaseExists: (id) => this.sql.getLease.get(id) !== undefined,
    };
  }

  private meta(name: MetaName): number {
    return this.sql.getMeta.get(name) as number;
  }

  /** At open: leases that expired while the store was closed end now; the rest get timers. */
  private resumeLeases(): void {
    for (const lease of this.sql.allLeases.all() as LeaseRow[]) {
      if (lease.expires_at <= this.clock.now()) this.endLease(lease.id);
      else this.timers.schedule(lease.id, lease.expires_at);
    }
  }

  private expireIfDue(id: string): void {
    if (this.closed) return;
    const lease = this.sql.getLease.get(id) as LeaseRow | undefined;
    if (lease === undefined) return;
    if (lease.expires_at <= this.clock.now()) this.endLease(id);
    else this.timers.schedule(id, lease.expires_at);
  }

  /** Deletes the lease and its keys as one committed transaction, visible in the change feed. */
  private endLease(id: string): void {
    this.timers.cancel(id);
    this.commit({}, id);
  }

  private assertOpen(): void {
    if (this.closed) throw storeClosedError(this.backend);
  }
}

function prepareStatements(db: Database.Database) {
  return {
    getMeta: db.prepare('SELECT value FROM meta WHERE name = ?').pluck(),
    setMeta: db.prepare('UPDATE meta SET value = ? WHERE name = ?'),
    getEntry: db.prepare(`SELECT ${kvColumns} FROM kv WHERE key = ?`),
    rangeFrom: db.prepare(`SELECT ${kvColumns} FROM kv WHERE key >= ? ORDER BY key`),
    putEntry: db.prepare(
      `INSERT INTO kv (${kvColumns}) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (key) DO UPDATE SET value = excluded.value,
         mod_revision = excluded.mod_revision, create_revision = excluded.create_revision,
         version = excluded.version, lease = excluded.lease`,
    ),
    deleteEntry: db.prepare('DELETE FROM kv WHERE key = ?'),
    insertEvent: db.prepare(
      'INSERT INTO journal (seq, at, kind, subject_kind, subject_name, json) VALUES (?, ?, ?, ?, ?, ?)',
    ),
    trimJournal: db.prepare('DELETE FROM journal WHERE seq <= ?'),
    insertHistory: db.prepare('INSERT INTO history (revision, json) VALUES (?, ?)'),
    trimHistory: db.prepare('DELETE FROM history WHERE revision <= ?'),
    historyAfter: db
      .prepare('SELECT json FROM history WHERE revision > ? ORDER BY revision')
      .pluck(),
    getLease: db.prepare('SELECT id, ttl_ms, expires_at FROM leases WHERE id = ?'),
    allLeases: db.prepare('SELECT id, ttl_ms, expires_at FROM leases ORDER BY id'),
    insertLease: db.prepare('INSERT INTO leases (id, ttl_ms, expires_at) VALUES (?, ?, ?)'),
    setLeaseExpiry: db.prepare('UPDATE leases SET expires_at = ? WHERE id = ?'),
    deleteLease: db.prepare('DELETE FROM leases WHERE id = ?'),
    leaseKeys: db.prepare('SELECT key FROM kv WHERE lease = ? ORDER BY key').pluck(),
  };
}

function rowEntry(row: KvRow): StoreEntry {
  const entry: StoreEntry = {
    key: row.key,
    value: JSON.parse(row.value) as unknown,
    modRevision: row.mod_revision,
    createRevision: row.create_revision,
    version: row.version,
  };
  if (row.lease !== null) entry.lease = row.lease;
  return entry;
}
