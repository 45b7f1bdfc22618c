// How an EtcdStore calls etcd: one deadline per store call, retries only where they are safe, and
// errors turned into ContinuumErrors that name the endpoints and the call.
//
// The etcd3 client's own fault handling is switched off (etcd.ts passes no-op policies): its
// default circuit breaker shuts a server out for 5 s after 3 failures, which turned a 1.5 s leader
// change into a 6.5 s outage of writes. Instead each call retries here, with a short capped
// backoff, until its deadline, so it succeeds as soon as etcd answers again. A retry must not
// apply a write twice, so failures are sorted by what they prove:
//   not-sent   the request never reached a server that could apply it (no connection, no leader,
//              too many requests): any call may be tried again.
//   ambiguous  the connection broke or the deadline passed after the request left: a read is
//              tried again; a write rejects with outcome 'unknown', as etcd's own Go client does.
//   answered   etcd refused the request itself (lease not found, compacted, too large): mapped
//              to its code at once, no retry.
import { setTimeout as delay } from 'node:timers/promises';
import { isRecoverableError } from 'etcd3';
import { ContinuumError, isContinuumError } from '../core/errors.js';
import { callRetryBackoffMsMin } from './etcd-options.js';
import { storeClosedError } from './store-support.js';

/** Reads and other requests that do the same thing when repeated; everything else is a write. */
export type CallSafety = 'repeatable' | 'write';

export interface CallAttempt {
  /** The gRPC deadline of this try: etcdTryTimeoutMs, within the store call's deadline. */
  options: { deadline: Date };
  /** Whether an earlier try of this call may have reached etcd (its outcome unknown). */
  earlierAmbiguous: boolean;
}

type FailureKind = 'not-sent' | 'ambiguous' | 'answered';

/** grpc-js and etcd messages that prove the request was not applied. */
const notSentPatterns = [
  'No connection established',
  'ECONNREFUSED',
  'etcdserver: no leader',
  'etcdserver: too many requests',
  'etcdserver: not capable',
  // The member was passed over (etcd.ts: memberAvoidMs) after it let a try time out.
  'circuit breaker is open',
];

export class EtcdCalls {
  constructor(
    private readonly settings: {
      endpoints: string[];
      etcdCallTimeoutMs: number;
      etcdTryTimeoutMs: number;
      callRetryBackoffMsMax: number;
    },
    private readonly isClosed: () => boolean,
  ) {}

  /** The absolute deadline (ms since the epoch) of a store call starting now. */
  deadline(): number {
    return Date.now() + this.settings.etcdCallTimeoutMs;
  }

  async run<T>(
    call: string,
    safety: CallSafety,
    deadlineMs: number,
    attempt: (context: CallAttempt) => Promise<T>,
  ): Promise<T> {
    let backoffMs = callRetryBackoffMsMin;
    let earlierAmbiguous = false;
    if (Date.now() >= deadlineMs) {
      // Queued behind other calls until its time ran out: it was never sent.
      const cause = new Error('the deadline passed before the call could be sent');
      throw this.unavailableError(call, cause, false);
    }
    for (;;) {
      try {
        const tryDeadlineMs = Math.min(deadlineMs, Date.now() + this.settings.etcdTryTimeoutMs);
        return await attempt({ options: { deadline: new Date(tryDeadlineMs) }, earlierAmbiguous });
      } catch (error) {
        const kind = failureKind(error);
        if (kind === 'answered') throw this.answeredError(call, error);
        const repeatable = kind === 'not-sent' || safety === 'repeatable';
        earlierAmbiguous ||= kind === 'ambiguous';
        const remainingMs = deadlineMs - Date.now();
        if (!repeatable || remainingMs <= 0) {
          throw this.unavailableError(call, error, earlierAmbiguous && safety === 'write');
        }
        if (this.isClosed()) throw storeClosedError('etcd');
        await delay(Math.min(backoffMs, remainingMs));
        backoffMs = Math.min(backoffMs * 2, this.settings.callRetryBackoffMsMax);
      }
    }
  }

  unavailableError(call: string, cause: unknown, outcomeUnknown: boolean): ContinuumError {
    const endpoints = this.settings.endpoints;
    const why = cause instanceof Error ? cause.message : String(cause);
    const message = outcomeUnknown
      ? `etcd at ${endpoints.join(', ')}: the outcome of ${call} is unknown, the connection broke after it was sent (${why}); read back before retrying`
      : `etcd at ${endpoints.join(', ')} is unavailable: ${call} got no answer within etcdCallTimeoutMs (${this.settings.etcdCallTimeoutMs} ms): ${why}`;
    return new ContinuumError('CONTINUUM_ERR_UNAVAILABLE', message, {
      cause,
      details: { endpoints, call, outcome: outcomeUnknown ? 'unknown' : 'not-applied' },
    });
  }

  private answeredError(call: string, error: unknown): unknown {
    if (isContinuumError(error) || !(error instanceof Error)) return error;
    const where = `etcd at ${this.settings.endpoints.join(', ')}: ${call}`;
    const text = error.message;
    const coded = (code: ContinuumError['code'], message: string) =>
      new ContinuumError(code, `${where}: ${message}`, { cause: error, details: { call } });
    if (text.includes('requested lease not found')) {
      return coded('CONTINUUM_ERR_NOT_FOUND', 'the lease does not exist or has expired');
    }
    if (text.includes('request is too large')) {
      return coded('CONTINUUM_ERR_BAD_REQUEST', `larger than etcd's --max-request-bytes (${text})`);
    }
    if (text.includes('too many operations in txn request')) {
      return coded('CONTINUUM_ERR_BAD_REQUEST', `more operations than etcd's --max-txn-ops`);
    }
    if (text.includes('compacted')) {
      return coded('CONTINUUM_ERR_CONFLICT', `the revision it reads was compacted (${text})`);
    }
    if (text.includes('permission denied') || text.includes('auth')) {
      return coded('CONTINUUM_ERR_CONFIG', `etcd refused the credentials (${text})`);
    }
    return coded('CONTINUUM_ERR_INTERNAL', `etcd answered with an error: ${text}`);
  }
}

function failureKind(error: unknown): FailureKind {
  if (!(error instanceof Error)) return 'answered';
  if (notSentPatterns.some((pattern) => error.message.includes(pattern))) return 'not-sent';
  if (isRecoverableError(error)) return 'ambiguous';
  return 'answered';
}
