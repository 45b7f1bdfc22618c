// The StateStore port: a revisioned key-value store with conditional writes, leases, a change
// feed and the event journal. Shaped after etcd's model (revisions, leases, watches) so the etcd
// backend (etcd.ts) fits beside memory and sqlite; all three pass store.contract.ts.
import type { ContinuumError } from '../core/errors.js';
import type { JournalEvent, NewEvent } from '../core/model.js';

export interface StoreEntry<T = unknown> {
  key: string;
  value: T;
  /** Store revision of the last write to this key. */
  modRevision: number;
  /** Store revision at which this key was created. */
  createRevision: number;
  /** Number of writes since creation (1 after the first put). */
  version: number;
  lease?: string;
}

/** A condition of a transaction: the key's modRevision must equal this (0: the key must not exist). */
export interface Compare {
  key: string;
  modRevision: number;
}

export interface TxnRequest {
  compares?: Compare[];
  puts?: { key: string; value: unknown; lease?: string }[];
  deletes?: string[];
  /** Journal events appended atomically with the writes (only if the compares hold). */
  events?: NewEvent[];
}

export interface TxnResult {
  ok: boolean;
  /** The store revision after the transaction (unchanged when !ok). */
  revision: number;
  /** The appended events with their sequence numbers (empty when !ok). */
  events: JournalEvent[];
}

export type Change<T = unknown> =
  { type: 'put'; entry: StoreEntry<T> } | { type: 'delete'; key: string; revision: number };

/** One committed transaction as the change feed delivers it. */
export interface WatchBatch {
  revision: number;
  changes: Change[];
  events: JournalEvent[];
}

export interface WatchHandle {
  cancel(): void;
}

export interface WatchOptions {
  /** Replay the transactions after this revision first. */
  fromRevision?: number;
  /**
   * Called once if the watch ends by itself, after which nothing more is delivered. Only a remote
   * feed can: etcd cancels a watch whose history it has compacted (CONTINUUM_ERR_CONFLICT; read
   * with range and watch again from its revision). The local backends find compaction when
   * watch() is called and throw there. Without onError such an error is thrown uncaught, because
   * a feed that stopped in silence would leave its reader blind.
   */
  onError?: (error: ContinuumError) => void;
}

export interface EventQuery {
  /** Only events with seq greater than this. */
  afterSeq?: number;
  /** At most this many, oldest first; capped at eventsPageMax. */
  limit?: number;
  kinds?: string[];
  subject?: { kind?: string; name?: string };
  /** Only events at or after this time (ms since the epoch). */
  sinceAt?: number;
}

export interface Lease {
  id: string;
  ttlMs: number;
}

/** Largest page of journal events returned by one readEvents call. */
export const eventsPageMax = 10_000;

export interface StateStore {
  readonly backend: 'memory' | 'sqlite' | 'etcd';
  get<T>(key: string): Promise<StoreEntry<T> | undefined>;
  /** Every key starting with prefix, in key order, and the store revision they were read at. */
  range<T>(prefix: string): Promise<{ entries: StoreEntry<T>[]; revision: number }>;
  txn(request: TxnRequest): Promise<TxnResult>;
  /**
   * The change feed: committed transactions touching keys under prefix (and every journal event),
   * delivered asynchronously, once each, in revision order. With fromRevision, transactions
   * after that revision are replayed first.
   */
  watch(prefix: string, options: WatchOptions, listener: (batch: WatchBatch) => void): WatchHandle;
  appendEvents(events: NewEvent[]): Promise<JournalEvent[]>;
  readEvents(query: EventQuery): Promise<JournalEvent[]>;
  /** A lease whose keys are deleted when it expires; the TTL is in milliseconds. */
  grantLease(ttlMs: number): Promise<Lease>;
  /** Extends a lease by its TTL; rejects with CONTINUUM_ERR_NOT_FOUND if it has expired. */
  keepAliveLease(id: string): Promise<void>;
  revokeLease(id: string): Promise<void>;
  close(): Promise<void>;
}
