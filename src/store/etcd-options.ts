// The options of the etcd StateStore backend: every timeout and limit with its default, validated
// as it enters (CONVENTIONS.md item 9). Kept apart from etcd.ts so the knobs read in one place;
// docs/store.md explains why each default is what it is.
import {
  historyRevisionsMaxDefault,
  journalEventsMaxDefault,
  positiveIntegerOption,
} from './store-support.js';

export interface EtcdStoreOptions {
  /** etcd client URLs, each `http://host:port`; calls go to any of them. */
  endpoints: string[];
  /**
   * Every key of this store (records, journal, counters) lives under this prefix, so several
   * stores (clusters, tests) can share one etcd. Non-empty and ending with '/'.
   */
  prefix: string;
  /** Deadline of one store call against etcd, retries included; then CONTINUUM_ERR_UNAVAILABLE. */
  etcdCallTimeoutMs?: number;
  /**
   * Deadline of one try of a call. A member whose host vanished (no reset, no answer) holds a
   * try until this passes; the next try goes to another member, and that member is avoided for
   * memberAvoidMs. A read is then tried again; a write rejects with its outcome unknown.
   */
  etcdTryTimeoutMs?: number;
  /** How long a member that let a try time out (or refused connections) is passed over. */
  memberAvoidMs?: number;
  /** Longest pause between two tries of a call that etcd did not receive. */
  callRetryBackoffMsMax?: number;
  /** Longest pause before a broken watch stream is opened again. */
  watchRetryBackoffMsMax?: number;
  /** etcd's --max-txn-ops (128 unless the server says otherwise): each branch of a txn fits in it. */
  txnOpsMax?: number;
  /** Keys fetched by one etcd range call when range() or readEvents() pages through many. */
  rangePageKeysMax?: number;
  /** Tries of a txn with events whose only failed compare was the journal counter. */
  journalAppendAttemptsMax?: number;
  /** The journal keeps this many newest events. */
  journalEventsMax?: number;
  /** How many revisions back watch({ fromRevision }) may start (etcd may have compacted sooner). */
  historyRevisionsMax?: number;
  /**
   * Revoke the leases this store granted when it closes, as etcd's own session close does. Off by
   * default: as in the other backends, leases then live out their TTL after close.
   */
  revokeLeasesOnClose?: boolean;
}

export interface EtcdStoreSettings {
  endpoints: string[];
  prefix: string;
  etcdCallTimeoutMs: number;
  etcdTryTimeoutMs: number;
  memberAvoidMs: number;
  callRetryBackoffMsMax: number;
  watchRetryBackoffMsMax: number;
  txnOpsMax: number;
  rangePageKeysMax: number;
  journalAppendAttemptsMax: number;
  journalEventsMax: number;
  historyRevisionsMax: number;
  revokeLeasesOnClose: boolean;
}

/** Long enough to ride over an etcd leader election (about 1.5 s with etcd's defaults). */
export const etcdCallTimeoutMsDefault = 5000;
/**
 * Far above an etcd request's usual milliseconds, and short beside a leader lease (2 s): a renewal
 * that first tried a vanished member still lands in time.
 */
export const etcdTryTimeoutMsDefault = 1000;
/** A vanished member costs one try timeout per this long, not one per call. */
export const memberAvoidMsDefault = 2000;
export const callRetryBackoffMsMin = 25;
export const callRetryBackoffMsMaxDefault = 500;
export const watchRetryBackoffMsMin = 50;
export const watchRetryBackoffMsMaxDefault = 2000;
/** etcd's default --max-txn-ops. */
export const txnOpsMaxDefault = 128;
export const rangePageKeysMaxDefault = 1000;
export const journalAppendAttemptsMaxDefault = 10;
/** Largest gRPC message the client accepts: a page of records, or one watch response. */
export const responseBytesMax = 64 * 1024 * 1024;

export function etcdStoreSettings(options: EtcdStoreOptions): EtcdStoreSettings {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError('EtcdStore options must be an object with endpoints and prefix');
  }
  return {
    endpoints: validateEndpoints(options.endpoints),
    prefix: validatePrefix(options.prefix),
    etcdCallTimeoutMs: positiveIntegerOption(
      'etcdCallTimeoutMs',
      options.etcdCallTimeoutMs,
      etcdCallTimeoutMsDefault,
    ),
    etcdTryTimeoutMs: positiveIntegerOption(
      'etcdTryTimeoutMs',
      options.etcdTryTimeoutMs,
      etcdTryTimeoutMsDefault,
    ),
    memberAvoidMs: positiveIntegerOption(
      'memberAvoidMs',
      options.memberAvoidMs,
      memberAvoidMsDefault,
    ),
    callRetryBackoffMsMax: positiveIntegerOption(
      'callRetryBackoffMsMax',
      options.callRetryBackoffMsMax,
      callRetryBackoffMsMaxDefault,
    ),
    watchRetryBackoffMsMax: positiveIntegerOption(
      'watchRetryBackoffMsMax',
      options.watchRetryBackoffMsMax,
      watchRetryBackoffMsMaxDefault,
    ),
    txnOpsMax: positiveIntegerOption('txnOpsMax', options.txnOpsMax, txnOpsMaxDefault),
    rangePageKeysMax: positiveIntegerOption(
      'rangePageKeysMax',
      options.rangePageKeysMax,
      rangePageKeysMaxDefault,
    ),
    journalAppendAttemptsMax: positiveIntegerOption(
      'journalAppendAttemptsMax',
      options.journalAppendAttemptsMax,
      journalAppendAttemptsMaxDefault,
    ),
    journalEventsMax: positiveIntegerOption(
      'journalEventsMax',
      options.journalEventsMax,
      journalEventsMaxDefault,
    ),
    historyRevisionsMax: positiveIntegerOption(
      'historyRevisionsMax',
      options.historyRevisionsMax,
      historyRevisionsMaxDefault,
    ),
    revokeLeasesOnClose: options.revokeLeasesOnClose ?? false,
  };
}

function validateEndpoints(endpoints: unknown): string[] {
  if (!Array.isArray(endpoints) || endpoints.length === 0) {
    throw new RangeError(
      `etcd endpoints must be a non-empty list of http://host:port, got ${JSON.stringify(endpoints)}`,
    );
  }
  return endpoints.map((endpoint: unknown, index) => {
    const where = `etcd endpoints[${index}]`;
    let url: URL | undefined;
    try {
      url = typeof endpoint === 'string' ? new URL(endpoint) : undefined;
    } catch {
      url = undefined;
    }
    // TLS needs client certificates in the options; until then only plain http is accepted.
    const valid =
      url !== undefined &&
      url.protocol === 'http:' &&
      url.hostname !== '' &&
      url.port !== '' &&
      url.pathname === '/' &&
      url.search === '' &&
      url.username === '';
    if (!valid) {
      throw new RangeError(`${where} must be http://host:port, got ${JSON.stringify(endpoint)}`);
    }
    return `http://${url!.host}`;
  });
}

function validatePrefix(prefix: unknown): string {
  if (typeof prefix !== 'string' || prefix.length === 0 || !prefix.endsWith('/')) {
    throw new RangeError(
      `etcd prefix must be a non-empty string ending with '/', got ${JSON.stringify(prefix)}`,
    );
  }
  return prefix;
}
