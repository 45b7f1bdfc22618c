// Where an EtcdStore keeps things in etcd, and how etcd's key-values become port entries. Every
// etcd key of a store starts with its prefix:
//   <prefix>kv/<key>                records: the port's keys, one etcd key each
//   <prefix>journal/<seq, 16 digits> journal events, zero-padded so key order is seq order
//   <prefix>meta/journal-seq        the last seq ever appended (decimal text)
// Records sit under their own kv/ subtree so range('') never sees the journal or the counter.
import type { IKeyValue } from 'etcd3';
import type { JournalEvent } from '../core/model.js';
import type { StoreEntry } from './port.js';

/** Number.MAX_SAFE_INTEGER has 16 digits, so every seq fits. */
const seqDigits = 16;
/** etcd's largest lease ID (int64). */
const leaseIdMax = 2n ** 63n - 1n;

export interface EtcdKeyRange {
  key: Buffer;
  range_end: Buffer;
}

export class EtcdKeyLayout {
  private readonly kvPrefix: string;
  private readonly journalPrefix: string;
  private readonly kvPrefixBytes: Buffer;
  private readonly journalPrefixBytes: Buffer;
  readonly journalSeqKey: Buffer;
  /** Everything the store owns: what a watch follows. */
  readonly whole: EtcdKeyRange;

  constructor(readonly prefix: string) {
    this.kvPrefix = `${prefix}kv/`;
    this.journalPrefix = `${prefix}journal/`;
    this.kvPrefixBytes = Buffer.from(this.kvPrefix);
    this.journalPrefixBytes = Buffer.from(this.journalPrefix);
    this.journalSeqKey = Buffer.from(`${prefix}meta/journal-seq`);
    this.whole = prefixRange(Buffer.from(prefix));
  }

  record(key: string): Buffer {
    return Buffer.from(this.kvPrefix + key);
  }

  records(keyPrefix: string): EtcdKeyRange {
    return prefixRange(this.record(keyPrefix));
  }

  /** The port key of an etcd key under kv/, or undefined for the store's other keys. */
  recordKey(etcdKey: Buffer): string | undefined {
    if (!startsWith(etcdKey, this.kvPrefixBytes)) return undefined;
    return etcdKey.subarray(this.kvPrefixBytes.length).toString('utf8');
  }

  journalEvent(seq: number): Buffer {
    return Buffer.from(this.journalPrefix + String(seq).padStart(seqDigits, '0'));
  }

  /** Journal events with seq >= fromSeq. */
  journalFrom(fromSeq: number): EtcdKeyRange {
    return {
      key: this.journalEvent(fromSeq),
      range_end: prefixRange(this.journalPrefixBytes).range_end,
    };
  }

  /** Journal events with seq <= throughSeq. */
  journalThrough(throughSeq: number): EtcdKeyRange {
    return { key: this.journalPrefixBytes, range_end: this.journalEvent(throughSeq + 1) };
  }

  isJournalEvent(etcdKey: Buffer): boolean {
    return startsWith(etcdKey, this.journalPrefixBytes);
  }
}

/** The etcd range of every key starting with prefix: [prefix, prefix with its last byte + 1). */
export function prefixRange(prefix: Buffer): EtcdKeyRange {
  const end = Buffer.from(prefix);
  for (let index = end.length - 1; index >= 0; index -= 1) {
    if (end[index]! < 0xff) {
      end[index] = end[index]! + 1;
      return { key: prefix, range_end: end.subarray(0, index + 1) };
    }
  }
  // A prefix of only 0xff bytes: "\0" as range_end means "to the end of the keyspace" in etcd.
  return { key: prefix, range_end: Buffer.from([0]) };
}

function startsWith(buffer: Buffer, prefix: Buffer): boolean {
  return buffer.length >= prefix.length && buffer.subarray(0, prefix.length).equals(prefix);
}

/** A port entry from an etcd key-value; the value was written as JSON text by this store. */
export function entryFromKeyValue(key: string, kv: IKeyValue): StoreEntry {
  const entry: StoreEntry = {
    key,
    value: JSON.parse(kv.value.toString('utf8')) as unknown,
    modRevision: Number(kv.mod_revision),
    createRevision: Number(kv.create_revision),
    version: Number(kv.version),
  };
  if (kv.lease !== '0' && kv.lease !== '') entry.lease = kv.lease;
  return entry;
}

export function journalEventFromKeyValue(kv: IKeyValue): JournalEvent {
  return JSON.parse(kv.value.toString('utf8')) as JournalEvent;
}

/**
 * A port lease id is etcd's lease ID in decimal, as etcd3 hands it out. Anything else cannot
 * name a lease, so callers answer CONTINUUM_ERR_NOT_FOUND without asking etcd.
 */
export function etcdLeaseId(id: string): string | undefined {
  if (typeof id !== 'string' || !/^[1-9][0-9]{0,18}$/.test(id)) return undefined;
  return BigInt(id) <= leaseIdMax ? id : undefined;
}
