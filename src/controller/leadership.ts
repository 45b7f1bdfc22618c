// Leader election among several controllers over the StateStore (ARCHITECTURE.md section 3,
// item 1): the leader key is created only if absent, bound to a lease the leader keeps alive; when
// the leader dies its lease expires, the key goes with it, and a follower that sees the key gone
// (its watch, or its poll as a fallback) campaigns. Whoever created the key leads until the key
// changes; LeaderGuard (leader-guard.ts) makes every write conditional on that key's revision,
// so a deposed leader that has not noticed yet cannot write anything. Safety rests on the store's
// compare, not on timers: the local step-down after missed renewals only stops a cut-off leader
// from talking to agents sooner.
import { isContinuumError } from '../core/errors.js';
import type { Clock, Logger, TimerHandle } from '../core/ports.js';
import type { StateStore, StoreEntry } from '../store/port.js';

export const leaderKey = 'controller/leader';

export interface LeaderRecord {
  controllerId: string;
  /** Where its API and agent sessions answer, so followers can name it. */
  url: string;
  since: number;
}

/** etcd raises any TTL below 2 s to 2 s; a dead leader is replaced about this long after it died. */
export const leaderLeaseTtlMsDefault = 2000;
/** Bounds of the lease TTL a controller accepts. */
export const leaderLeaseTtlMsMin = 200;
export const leaderLeaseTtlMsMax = 60_000;

export interface LeadershipOptions {
  store: StateStore;
  clock: Clock;
  logger: Logger;
  controllerId: string;
  url: string;
  ttlMs?: number;
  /** Called when this controller has created the leader key; revision is the key's modRevision. */
  onElected(revision: number): void;
  /** Called once when leadership is lost (lease gone, key changed, renewals failing). */
  onDeposed(reason: string): void;
}

export type LeadershipState =
  | { role: 'follower'; leader: LeaderRecord | undefined }
  | { role: 'leader'; revision: number; leaseId: string; since: number };

export class Leadership {
  private current: LeadershipState = { role: 'follower', leader: undefined };
  private readonly ttlMs: number;
  private timer: TimerHandle | undefined;
  private watch: { cancel(): void } | undefined;
  private stopped = false;
  private campaigning = false;
  private renewedAt = 0;

  constructor(private readonly options: LeadershipOptions) {
    this.ttlMs = options.ttlMs ?? leaderLeaseTtlMsDefault;
    if (
      !Number.isInteger(this.ttlMs) ||
      this.ttlMs < leaderLeaseTtlMsMin ||
      this.ttlMs > leaderLeaseTtlMsMax
    ) {
      throw new RangeError(
        `leader lease TTL: expected a whole number of ms from ${leaderLeaseTtlMsMin} to ${leaderLeaseTtlMsMax}, got ${String(options.ttlMs)}`,
      );
    }
  }

  get state(): LeadershipState {
    return this.current;
  }

  /** The leader key's revision while this controller leads, else undefined. */
  get revision(): number | undefined {
    return this.current.role === 'leader' ? this.current.revision : undefined;
  }

  async start(): Promise<void> {
    this.watch = this.options.store.watch(leaderKey, { onError: () => this.tick(0) }, (batch) => {
      for (const change of batch.changes) {
        if (change.type === 'delete' && change.key === leaderKey) {
          this.lost(`the leader key was deleted at revision ${change.revision}`);
          this.tick(0);
        } else if (change.type === 'put' && change.entry.key === leaderKey) {
          this.seen(change.entry as StoreEntry<LeaderRecord>);
        }
      }
    });
    await this.campaign();
  }

  /** Steps down: revokes the lease so a follower takes over at once instead of after the TTL. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.watch?.cancel();
    if (this.timer !== undefined) this.options.clock.clearTimeout(this.timer);
    const state = this.current;
    this.current = { role: 'follower', leader: undefined };
    if (state.role === 'leader') {
      await this.options.store.revokeLease(state.leaseId).catch(() => undefined);
    }
  }

  /** A write failed its leader compare: the key is not ours any more. */
  deposedByStore(reason: string): void {
    this.lost(reason);
    this.tick(0);
  }

  private seen(entry: StoreEntry<LeaderRecord>): void {
    if (this.current.role === 'leader') {
      if (entry.modRevision !== this.current.revision)
        this.lost(`controller ${entry.value.controllerId} holds the leader key now`);
      return;
    }
    this.current = { role: 'follower', leader: entry.value };
  }

  private lost(reason: string): void {
    if (this.current.role !== 'leader') return;
    const leaseId = this.current.leaseId;
    this.current = { role: 'follower', leader: undefined };
    this.options.logger.log('warn', 'lost controller leadership', { reason });
    void this.options.store.revokeLease(leaseId).catch(() => undefined);
    this.options.onDeposed(reason);
  }

  private tick(delayMs: number): void {
    if (this.stopped) return;
    if (this.timer !== undefined) this.options.clock.clearTimeout(this.timer);
    this.timer = this.options.clock.setTimeout(() => {
      this.timer = undefined;
      const step = this.current.role === 'leader' ? this.renew() : this.campaign();
      void step.catch((err: unknown) =>
        this.options.logger.log('warn', 'leadership step failed', { error: String(err) }),
      );
    }, delayMs);
  }

  /** Renews three times per TTL; steps down locally once a TTL's worth of renewals has failed. */
  private async renew(): Promise<void> {
    const state = this.current;
    if (state.role !== 'leader') return this.campaign();
    try {
      await this.options.store.keepAliveLease(state.leaseId);
      if (this.current === state) this.renewedAt = this.options.clock.now();
    } catch (err) {
      if (this.current !== state) return;
      if (isContinuumError(err) && err.code === 'CONTINUUM_ERR_NOT_FOUND') {
        this.lost('the leader lease expired');
      } else if (this.options.clock.now() - this.renewedAt >= this.ttlMs) {
        this.lost(`the leader lease could not be renewed for ${this.ttlMs} ms: ${String(err)}`);
      }
    }
    this.tick(this.current.role === 'leader' ? Math.floor(this.ttlMs / 3) : 0);
  }

  /** Creates the leader key if there is none; otherwise follows whoever holds it. */
  private async campaign(): Promise<void> {
    if (this.campaigning || this.stopped || this.current.role === 'leader') return;
    this.campaigning = true;
    try {
      const { store, clock } = this.options;
      const existing = await store.get<LeaderRecord>(leaderKey);
      if (existing !== undefined) {
        this.current = { role: 'follower', leader: existing.value };
        return;
      }
      const lease = await store.grantLease(this.ttlMs);
      const since = clock.now();
      const record: LeaderRecord = {
        controllerId: this.options.controllerId,
        url: this.options.url,
        since,
      };
      const result = await store.txn({
        compares: [{ key: leaderKey, modRevision: 0 }],
        puts: [{ key: leaderKey, value: record, lease: lease.id }],
      });
      if (!result.ok || this.stopped) {
        await store.revokeLease(lease.id).catch(() => undefined);
        return;
      }
      this.current = { role: 'leader', revision: result.revision, leaseId: lease.id, since };
      this.renewedAt = since;
      this.options.logger.log('info', 'elected controller leader', { revision: result.revision });
      this.options.onElected(result.revision);
    } finally {
      this.campaigning = false;
      // Followers look again once per TTL, in case a watch batch was missed.
      this.tick(this.current.role === 'leader' ? Math.floor(this.ttlMs / 3) : this.ttlMs);
    }
  }
}
