// One port watch as one etcd watch stream over the whole store prefix (records and journal, so a
// batch carries its transaction's journal events), filtered here to the watch's key prefix.
//
// etcd numbers every event with the revision of its transaction and never splits a revision
// across watch responses (without the fragment option), so grouping a response's events by
// revision gives exactly one batch per committed txn. The watch remembers the last revision it
// has handled; when the stream breaks (etcd killed, restarted, leader lost) it opens a new one
// from the next revision after a capped backoff, and drops anything at or below it, so a batch
// is neither lost nor repeated across reconnects. etcd3's own Watcher is not used because it
// resumes from the header revision of the last response, which runs ahead of the events while
// a watch is still replaying history, and would skip revisions on a reconnect at that moment.
import type { IDuplexStream, IEvent, IWatchRequest, IWatchResponse } from 'etcd3';
import { ContinuumError } from '../core/errors.js';
import type { JournalEvent } from '../core/model.js';
import { entryFromKeyValue, journalEventFromKeyValue, type EtcdKeyLayout } from './etcd-keys.js';
import { watchRetryBackoffMsMin } from './etcd-options.js';
import type { Change, WatchBatch, WatchOptions } from './port.js';
import { compactedError } from './store-support.js';

type WatchStream = IDuplexStream<IWatchRequest, IWatchResponse>;

export interface EtcdWatchContext {
  layout: EtcdKeyLayout;
  openStream: () => Promise<WatchStream>;
  watchRetryBackoffMsMax: number;
  /** Told once when the watch stops, whatever stopped it. */
  onStopped: (watch: EtcdWatch) => void;
}

export class EtcdWatch {
  /** Every revision up to this one has been delivered, or held nothing for this watch. */
  private handledRevision: number;
  private stream: WatchStream | undefined;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private backoffMs = watchRetryBackoffMsMin;
  private active = true;
  private waiters: { revision: number; resolve: () => void }[] = [];

  constructor(
    private readonly context: EtcdWatchContext,
    private readonly keyPrefix: string,
    startRevision: number,
    private readonly listener: (batch: WatchBatch) => void,
    private readonly onError: WatchOptions['onError'],
  ) {
    this.handledRevision = startRevision - 1;
  }

  start(): void {
    this.connect();
  }

  /** Stops delivery at once, including responses already on their way. */
  cancel(): void {
    if (!this.active) return;
    this.active = false;
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    const stream = this.stream;
    this.stream = undefined;
    stream?.cancel();
    for (const waiter of this.waiters.splice(0)) waiter.resolve();
    this.context.onStopped(this);
  }

  /** Resolves once every revision up to `revision` has been handled, or the watch stopped. */
  caughtUp(revision: number): Promise<void> {
    if (!this.active || this.handledRevision >= revision) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ revision, resolve }));
  }

  describe(): string {
    return `watch ${JSON.stringify(this.keyPrefix)} (handled through revision ${this.handledRevision})`;
  }

  private connect(): void {
    this.retryTimer = undefined;
    if (!this.active) return;
    this.context.openStream().then(
      (stream) => this.attach(stream),
      (error: unknown) => this.broken(undefined, error),
    );
  }

  private attach(stream: WatchStream): void {
    if (!this.active) {
      stream.cancel();
      return;
    }
    this.stream = stream;
    stream.on('data', (response) => {
      if (this.stream === stream) this.receive(response);
    });
    stream.on('error', (error) => this.broken(stream, error));
    stream.on('end', () => this.broken(stream, new Error('the etcd watch stream ended')));
    const { key, range_end } = this.context.layout.whole;
    stream.write({
      create_request: { key, range_end, start_revision: this.handledRevision + 1 },
    });
  }

  /** A stream that failed or ended is replaced after a backoff, from the next revision. */
  private broken(stream: WatchStream | undefined, _error: unknown): void {
    if (!this.active || (stream !== undefined && stream !== this.stream)) return;
    this.stream = undefined;
    stream?.cancel();
    const delayMs = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, this.context.watchRetryBackoffMsMax);
    this.retryTimer = setTimeout(() => this.connect(), delayMs);
  }

  private receive(response: IWatchResponse): void {
    if (response.canceled) {
      this.fail(this.canceledError(response));
      return;
    }
    if (response.created) {
      this.backoffMs = watchRetryBackoffMsMin;
      return;
    }
    for (const [revision, events] of groupByRevision(response.events)) {
      if (!this.active) return;
      if (revision <= this.handledRevision) continue;
      this.handledRevision = revision;
      const batch = batchOf(revision, events, this.context.layout, this.keyPrefix);
      if (batch.changes.length > 0 || batch.events.length > 0) this.deliver(batch);
    }
    this.waiters = this.waiters.filter((waiter) => {
      if (waiter.revision > this.handledRevision) return true;
      waiter.resolve();
      return false;
    });
  }

  private deliver(batch: WatchBatch): void {
    try {
      this.listener(batch);
    } catch (error) {
      // As in the local feed, a listener's exception is the listener's: it surfaces uncaught
      // rather than breaking the stream that the next batch arrives on.
      queueMicrotask(() => {
        throw error;
      });
    }
  }

  private canceledError(response: IWatchResponse): ContinuumError {
    const compactRevision = Number(response.compact_revision);
    if (compactRevision > 0) {
      // etcd keeps revisions from compact_revision on; the port names the last one dropped.
      return compactedError(this.handledRevision, compactRevision - 1);
    }
    return new ContinuumError(
      'CONTINUUM_ERR_UNAVAILABLE',
      `etcd cancelled ${this.describe()}: ${response.cancel_reason || 'no reason given'}; watch again from the last revision read`,
    );
  }

  private fail(error: ContinuumError): void {
    this.cancel();
    const onError = this.onError;
    if (onError !== undefined) onError(error);
    else
      queueMicrotask(() => {
        throw error;
      });
  }
}

function groupByRevision(events: IEvent[]): Map<number, IEvent[]> {
  const groups = new Map<number, IEvent[]>();
  for (const event of events) {
    const revision = Number(event.kv.mod_revision);
    const group = groups.get(revision);
    if (group === undefined) groups.set(revision, [event]);
    else group.push(event);
  }
  return new Map([...groups].sort(([a], [b]) => a - b));
}

/** The batch of one revision: record changes under keyPrefix, and every journal event. */
function batchOf(
  revision: number,
  events: IEvent[],
  layout: EtcdKeyLayout,
  keyPrefix: string,
): WatchBatch {
  const changes: Change[] = [];
  const journal: JournalEvent[] = [];
  for (const event of events) {
    const key = layout.recordKey(event.kv.key);
    if (key !== undefined) {
      if (!key.startsWith(keyPrefix)) continue;
      changes.push(
        event.type === 'Put'
          ? { type: 'put', entry: entryFromKeyValue(key, event.kv) }
          : { type: 'delete', key, revision },
      );
    } else if (event.type === 'Put' && layout.isJournalEvent(event.kv.key)) {
      journal.push(journalEventFromKeyValue(event.kv));
    }
  }
  journal.sort((a, b) => a.seq - b.seq);
  return { revision, changes, events: journal };
}
