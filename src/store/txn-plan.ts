// The one place that decides what a transaction does, shared by every backend that applies it
// locally (memory, sqlite). planTxn is pure over a read view of the store: it validates the
// request, checks the compares and returns the batch to commit. The backend then persists the
// batch (inside its own SQL transaction where it has one) and only afterwards publishes it.
import { ContinuumError } from '../core/errors.js';
import type { JournalEvent, NewEvent } from '../core/model.js';
import type { Change, StoreEntry, TxnRequest, WatchBatch } from './port.js';

/** What planTxn needs to read; each backend answers from its own storage. */
export interface StoreView {
  readonly revision: number;
  /** The sequence number of the last journal event ever appended (trimmed or not). */
  readonly seq: number;
  entry(key: string): StoreEntry | undefined;
  leaseExists(id: string): boolean;
}

export type TxnPlan =
  | { ok: false; revision: number }
  /** batch is undefined when the txn held but changed nothing (the revision stays). */
  | { ok: true; revision: number; batch: WatchBatch | undefined };

export function planTxn(request: TxnRequest, view: StoreView): TxnPlan {
  const puts = request.puts ?? [];
  const deletes = request.deletes ?? [];
  const events = request.events ?? [];
  validateTxn(request, view);
  for (const compare of request.compares ?? []) {
    const current = view.entry(compare.key)?.modRevision ?? 0;
    if (current !== compare.modRevision) return { ok: false, revision: view.revision };
  }
  const revision = view.revision + 1;
  const changes: Change[] = [];
  for (const put of puts) {
    const existing = view.entry(put.key);
    const entry: StoreEntry = {
      key: put.key,
      value: frozenCopy(put.value, `value of key ${JSON.stringify(put.key)}`),
      modRevision: revision,
      createRevision: existing?.createRevision ?? revision,
      version: (existing?.version ?? 0) + 1,
    };
    if (put.lease !== undefined) entry.lease = put.lease;
    changes.push(Object.freeze({ type: 'put', entry: Object.freeze(entry) }));
  }
  // Deleting a key that does not exist is not a change, as in etcd: no revision, no feed entry.
  for (const key of deletes) {
    if (view.entry(key) !== undefined) changes.push({ type: 'delete', key, revision });
  }
  const journal: JournalEvent[] = events.map((event, index) =>
    deepFreeze({ ...copyJson(event, `event ${index}`), seq: view.seq + 1 + index }),
  );
  if (changes.length === 0 && journal.length === 0) {
    return { ok: true, revision: view.revision, batch: undefined };
  }
  return { ok: true, revision, batch: { revision, changes, events: journal } };
}

/** Bad input gets a clear error and changes nothing (CONVENTIONS.md item 12). */
function validateTxn(request: TxnRequest, view: StoreView): void {
  validateTxnRequest(request);
  for (const put of request.puts ?? []) {
    if (put.lease !== undefined && !view.leaseExists(put.lease)) throw unknownLeaseError(put);
  }
}

/**
 * The checks that need no view of the store: keys, single writes per key, compares and events.
 * Shared with the etcd backend, which cannot read a consistent view before it writes.
 */
export function validateTxnRequest(request: TxnRequest): void {
  const seen = new Set<string>();
  const touched = [...(request.puts ?? []).map((put) => put.key), ...(request.deletes ?? [])];
  for (const key of [...touched, ...(request.compares ?? []).map((compare) => compare.key)]) {
    if (typeof key !== 'string' || key.length === 0) {
      throw new ContinuumError('CONTINUUM_ERR_BAD_REQUEST', 'store keys must be non-empty strings');
    }
  }
  // Like etcd, a key may be written once per txn: "put then delete" has no obvious meaning.
  for (const key of touched) {
    if (seen.has(key)) {
      throw new ContinuumError(
        'CONTINUUM_ERR_BAD_REQUEST',
        `key ${JSON.stringify(key)} is written more than once in one txn`,
      );
    }
    seen.add(key);
  }
  for (const compare of request.compares ?? []) {
    if (!Number.isInteger(compare.modRevision) || compare.modRevision < 0) {
      throw new ContinuumError(
        'CONTINUUM_ERR_BAD_REQUEST',
        `compare on ${JSON.stringify(compare.key)}: modRevision ${compare.modRevision} is not a non-negative integer`,
      );
    }
  }
  (request.events ?? []).forEach(validateEvent);
}

export function unknownLeaseError(put: { key: string; lease?: string }): ContinuumError {
  return new ContinuumError(
    'CONTINUUM_ERR_NOT_FOUND',
    `lease ${JSON.stringify(put.lease)} of key ${JSON.stringify(put.key)} does not exist`,
  );
}

/** Backends index events by these fields, so they must have the declared types. */
function validateEvent(event: NewEvent, index: number): void {
  const valid =
    typeof event === 'object' &&
    event !== null &&
    Number.isFinite(event.at) &&
    typeof event.kind === 'string' &&
    typeof event.message === 'string' &&
    typeof event.subject?.kind === 'string' &&
    typeof event.subject.name === 'string';
  if (!valid) {
    throw new ContinuumError(
      'CONTINUUM_ERR_BAD_REQUEST',
      `event ${index} needs a finite at, a kind, a message and a subject { kind, name }`,
    );
  }
}

/** The JSON text of a value, or a BAD_REQUEST naming `where` if it is not JSON. */
export function jsonText(value: unknown, where: string): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (error) {
    throw new ContinuumError('CONTINUUM_ERR_BAD_REQUEST', `${where} is not JSON`, { cause: error });
  }
  if (text === undefined) {
    throw new ContinuumError('CONTINUUM_ERR_BAD_REQUEST', `${where} is not JSON`);
  }
  return text;
}

/** A deep copy through JSON, so callers never share objects with the store. */
export function copyJson<T>(value: T, where = 'value'): T {
  return JSON.parse(jsonText(value, where)) as T;
}

/**
 * A deep copy that nobody can change. Stores hand out committed values without copying them again
 * (a controller re-reads thousands of records after every change); freezing makes sharing safe.
 */
export function frozenCopy<T>(value: T, where = 'value'): T {
  return deepFreeze(copyJson(value, where));
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
