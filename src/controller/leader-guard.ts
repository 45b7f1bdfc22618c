// The StateStore a controller writes through when several controllers share the store: every
// transaction and journal append carries one more compare, "the leader key is still the one this
// controller created", so a deposed leader's writes fail in the store itself (ARCHITECTURE.md
// section 3, item 1) however late it learns that it lost. Reads and watches pass through.
import { ContinuumError } from '../core/errors.js';
import type { JournalEvent, NewEvent } from '../core/model.js';
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
} from '../store/port.js';
import { leaderKey, type LeaderRecord } from './leadership.js';

export interface LeaderGuardOptions {
  /** The leader key's revision while this controller leads, else undefined. */
  revision(): number | undefined;
  /** Where the current leader answers, for the error a follower gives. */
  leaderUrl(): string | undefined;
  /** A write found the leader key changed: leadership is lost. */
  deposed(reason: string): void;
  /** Counts each write refused for want of leadership (before or by the store). */
  refused?(): void;
}

export function notLeaderError(leaderUrl: string | undefined): ContinuumError {
  return new ContinuumError(
    'CONTINUUM_ERR_NOT_LEADER',
    leaderUrl === undefined
      ? 'this controller is not the leader, and no leader is known yet; retry shortly'
      : `this controller is not the leader; the leader answers at ${leaderUrl}`,
    { details: leaderUrl === undefined ? {} : { leader: leaderUrl } },
  );
}

export class LeaderGuard implements StateStore {
  readonly backend: StateStore['backend'];

  constructor(
    private readonly inner: StateStore,
    private readonly options: LeaderGuardOptions,
  ) {
    this.backend = inner.backend;
  }

  get<T>(key: string): Promise<StoreEntry<T> | undefined> {
    return this.inner.get<T>(key);
  }

  range<T>(prefix: string): Promise<{ entries: StoreEntry<T>[]; revision: number }> {
    return this.inner.range<T>(prefix);
  }

  async txn(request: TxnRequest): Promise<TxnResult> {
    const revision = this.options.revision();
    if (revision === undefined) {
      this.options.refused?.();
      throw notLeaderError(this.options.leaderUrl());
    }
    const result = await this.inner.txn({
      ...request,
      compares: [...(request.compares ?? []), { key: leaderKey, modRevision: revision }],
    });
    if (result.ok) return result;
    const leader = await this.inner.get<LeaderRecord>(leaderKey);
    if (leader?.modRevision !== revision) {
      const reason =
        leader === undefined
          ? 'a write found no leader key'
          : `a write found controller ${leader.value.controllerId} leading`;
      this.options.refused?.();
      this.options.deposed(reason);
      throw notLeaderError(leader?.value.url);
    }
    return result;
  }

  async appendEvents(events: NewEvent[]): Promise<JournalEvent[]> {
    return (await this.txn({ events })).events;
  }

  watch(prefix: string, options: WatchOptions, listener: (batch: WatchBatch) => void): WatchHandle {
    return this.inner.watch(prefix, options, listener);
  }

  readEvents(query: EventQuery): Promise<JournalEvent[]> {
    return this.inner.readEvents(query);
  }

  grantLease(ttlMs: number): Promise<Lease> {
    return this.inner.grantLease(ttlMs);
  }

  keepAliveLease(id: string): Promise<void> {
    return this.inner.keepAliveLease(id);
  }

  revokeLease(id: string): Promise<void> {
    return this.inner.revokeLease(id);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
