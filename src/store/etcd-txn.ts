// One port txn as one etcd Txn, and the journal's sequence numbers.
//
// The port's compares map onto etcd's directly: Compare(MOD, key) == modRevision, where etcd
// compares an absent key as modRevision 0, which is the port's "must not exist". Puts, deletes
// and journal events go in the success branch, so they commit at one etcd revision or not at all.
//
// Journal seq must be consecutive from 1 per store, and several processes may append at once, so
// the last seq lives in a counter key (<prefix>meta/journal-seq) that a txn with events both
// compares (its modRevision as last read) and rewrites. Two writers that read the same counter
// cannot both commit: the second fails the compare. To tell that failure from a failed compare of
// the caller, the failure branch reads the counter and every compared key at the revision the
// compares were evaluated; if the caller's compares all held, only the counter moved, and the
// store tries again with the fresh counter (bounded by journalAppendAttemptsMax). etcd's own
// revision cannot serve as seq: one txn may append several events, and other stores sharing the
// etcd raise the revision too, leaving gaps.
import type { IRequestOp, IResponseOp, ITxnRequest, ITxnResponse } from 'etcd3';
import { ContinuumError } from '../core/errors.js';
import type { JournalEvent, NewEvent } from '../core/model.js';
import type { EtcdKeyLayout } from './etcd-keys.js';
import { etcdLeaseId } from './etcd-keys.js';
import type { TxnRequest } from './port.js';
import { copyJson, jsonText, unknownLeaseError, validateTxnRequest } from './txn-plan.js';

/** The last seq appended and the etcd modRevision of the counter key (0: no event yet). */
export interface JournalCounter {
  seq: number;
  modRevision: number;
}

/** A request validated and encoded once; every try of the txn reuses it. */
export interface PreparedTxn {
  compares: { key: Buffer; modRevision: number }[];
  puts: { key: Buffer; value: Buffer; lease: string }[];
  deletes: Buffer[];
  events: NewEvent[];
}

export function prepareTxn(
  request: TxnRequest,
  layout: EtcdKeyLayout,
  limits: { txnOpsMax: number },
): PreparedTxn {
  validateTxnRequest(request);
  const prepared: PreparedTxn = {
    compares: (request.compares ?? []).map((compare) => ({
      key: layout.record(compare.key),
      modRevision: compare.modRevision,
    })),
    puts: (request.puts ?? []).map((put) => {
      const value = jsonText(put.value, `value of key ${JSON.stringify(put.key)}`);
      let lease = '0';
      if (put.lease !== undefined) {
        lease = etcdLeaseId(put.lease) ?? '';
        if (lease === '') throw unknownLeaseError(put);
      }
      return { key: layout.record(put.key), value: Buffer.from(value), lease };
    }),
    deletes: (request.deletes ?? []).map((key) => layout.record(key)),
    events: (request.events ?? []).map((event, index) => copyJson(event, `event ${index}`)),
  };
  checkOpsLimit(prepared, limits.txnOpsMax);
  return prepared;
}

/** etcd rejects a txn with more than --max-txn-ops compares, or operations in either branch. */
function checkOpsLimit(prepared: PreparedTxn, txnOpsMax: number): void {
  const withEvents = prepared.events.length > 0 ? 1 : 0;
  const sizes = {
    compares: prepared.compares.length + withEvents,
    'puts, deletes and events (+2 for the journal counter and trim)':
      prepared.puts.length + prepared.deletes.length + prepared.events.length + 2 * withEvents,
  };
  for (const [what, size] of Object.entries(sizes)) {
    if (size > txnOpsMax) {
      throw new ContinuumError(
        'CONTINUUM_ERR_BAD_REQUEST',
        `txn has ${size} ${what}; etcd accepts at most txnOpsMax (${txnOpsMax}, its --max-txn-ops)`,
      );
    }
  }
}

/**
 * The etcd Txn for one try. With events, `counter` is the journal counter as last read; the
 * returned events carry the seqs they get if this try commits.
 */
export function buildEtcdTxn(
  prepared: PreparedTxn,
  counter: JournalCounter | undefined,
  context: { layout: EtcdKeyLayout; journalEventsMax: number },
): { request: ITxnRequest; events: JournalEvent[] } {
  const { layout } = context;
  const compare: NonNullable<ITxnRequest['compare']> = prepared.compares.map((entry) => ({
    key: entry.key,
    target: 'Mod',
    result: 'Equal',
    mod_revision: entry.modRevision,
  }));
  const success: IRequestOp[] = [
    ...prepared.puts.map((put) => ({ request_put: put })),
    ...prepared.deletes.map((key) => ({ request_delete_range: { key } })),
  ];
  const failure: IRequestOp[] = [];
  const events: JournalEvent[] = [];
  if (counter !== undefined && prepared.events.length > 0) {
    prepared.events.forEach((event, index) =>
      events.push({ ...event, seq: counter.seq + 1 + index }),
    );
    const lastSeq = counter.seq + events.length;
    compare.push({
      key: layout.journalSeqKey,
      target: 'Mod',
      result: 'Equal',
      mod_revision: counter.modRevision,
    });
    for (const event of events) {
      success.push({
        request_put: {
          key: layout.journalEvent(event.seq),
          value: Buffer.from(JSON.stringify(event)),
        },
      });
    }
    success.push({
      request_put: { key: layout.journalSeqKey, value: Buffer.from(String(lastSeq)) },
    });
    // Trim in the same txn. Never into this txn's own events (etcd refuses a txn that deletes a
    // key it also puts), so an append larger than journalEventsMax is trimmed by the next one.
    const trimThroughSeq = Math.min(lastSeq - context.journalEventsMax, counter.seq);
    if (trimThroughSeq >= 1) {
      success.push({ request_delete_range: layout.journalThrough(trimThroughSeq) });
    }
    failure.push({ request_range: { key: layout.journalSeqKey } });
    for (const key of distinctKeys(prepared.compares.map((entry) => entry.key))) {
      failure.push({ request_range: { key, keys_only: true } });
    }
  }
  return { request: { compare, success, failure }, events };
}

/** After a failed try with events: the fresh counter, and whether the caller's compares held. */
export function readFailedTry(
  prepared: PreparedTxn,
  response: ITxnResponse,
): { counter: JournalCounter; callerComparesHeld: boolean } {
  const [counterRead, ...keyReads] = response.responses.map((op) => op.response_range);
  const counterKv = counterRead?.kvs[0];
  const counter = counterKv
    ? { seq: Number(counterKv.value.toString('utf8')), modRevision: Number(counterKv.mod_revision) }
    : { seq: 0, modRevision: 0 };
  const current = new Map<string, number>();
  for (const read of keyReads) {
    for (const kv of read?.kvs ?? []) current.set(kv.key.toString('hex'), Number(kv.mod_revision));
  }
  const callerComparesHeld = prepared.compares.every(
    (entry) => (current.get(entry.key.toString('hex')) ?? 0) === entry.modRevision,
  );
  return { counter, callerComparesHeld };
}

/** Whether a committed try changed anything (a delete of an absent key does not). */
export function changedAnything(prepared: PreparedTxn, response: ITxnResponse): boolean {
  if (prepared.puts.length > 0 || prepared.events.length > 0) return true;
  return response.responses.some((op) => {
    const deleted = (op.response_delete_range as IResponseOp['response_delete_range'] | undefined)
      ?.deleted;
    return deleted !== undefined && deleted !== '0';
  });
}

function distinctKeys(keys: Buffer[]): Buffer[] {
  const seen = new Map<string, Buffer>();
  for (const key of keys) seen.set(key.toString('hex'), key);
  return [...seen.values()];
}
