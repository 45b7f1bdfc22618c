// The read lease of a primary (docs/replication.md, "Reads and the lease"), kept apart from the
// write path in primary-core.ts.
//
// A deposed primary cut off from everyone must not answer reads from its old copy once a newer
// primary acknowledged writes. Every required member (the ISR without us) must acknowledge our
// messages, and one that took a newer epoch acknowledges none; a new primary serves nothing
// until readLeaseMs after it opened (primary.ts), by when the lease its own last ack renewed here
// has run out. So a read is answered only before readLeaseMs after the send time of the newest
// message every required member has since acknowledged (PrimaryPeer.ackedSentMs).
import type { PrimaryPeer } from './primary-peer.js';
import type { ReplicationContext } from './types.js';

/** What the lease needs of the primary. */
export interface LeaseHost {
  readonly context: ReplicationContext;
  readonly required: ReadonlySet<string>;
  readonly peers: ReadonlyMap<string, PrimaryPeer>;
  readonly serving: boolean;
  readonly currentSeq: bigint;
}

export class ReadLease {
  /** Reads waiting for the lease to be renewed. */
  private waiters: (() => void)[] = [];
  private timer: object | undefined;

  constructor(private readonly host: LeaseHost) {}

  /** Whether reads may be answered now. Alone in the ISR, always. */
  valid(): boolean {
    const untilMs = this.untilMs();
    return untilMs === undefined || this.host.context.clock.now() < untilMs;
  }

  /** Resolves at the next renewal (or a change worth looking again at); asks for one now. */
  renewed(): Promise<void> {
    const renewed = new Promise<void>((wake) => this.waiters.push(wake));
    this.renew();
    return renewed;
  }

  /** An ack arrived, or a replica became ready: wake the reads the lease now allows. */
  check(): void {
    if (this.waiters.length === 0) return;
    if (!this.valid()) {
      // An answer to an older question came, and it was not enough: reads wait, ask again now.
      this.renew();
      return;
    }
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  /** Renews the lease in the background, so that reads rarely wait for it. */
  arm(): void {
    const { context } = this.host;
    const periodMs = Math.max(1, Math.floor(context.limits.readLeaseMs / 6));
    this.timer = context.clock.setTimeout(() => {
      this.timer = undefined;
      if (!this.host.serving) return;
      this.renew();
      this.arm();
    }, periodMs);
  }

  disarm(): void {
    if (this.timer !== undefined) this.host.context.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** When the lease runs out, on our clock; undefined when no other member is required. */
  private untilMs(): number | undefined {
    let untilMs: number | undefined;
    for (const node of this.host.required) {
      const peer = this.host.peers.get(node);
      // Writes do not wait for a member we have no replica entry for: neither do reads.
      if (peer === undefined) continue;
      const peerUntilMs = peer.ackedSentMs + this.host.context.limits.readLeaseMs;
      untilMs = untilMs === undefined ? peerUntilMs : Math.min(untilMs, peerUntilMs);
    }
    return untilMs;
  }

  /**
   * Asks each required member that acknowledged nothing sent in the last third of the lease for a
   * flush of what it has: its durable ack renews the lease. One already owing a flush is not asked
   * again (its answer renews it too; the watchdog reports it if the answer does not come).
   */
  private renew(): void {
    if (!this.host.serving) return;
    const nowMs = this.host.context.clock.now();
    const staleMs = Math.max(1, Math.floor(this.host.context.limits.readLeaseMs / 3));
    for (const node of this.host.required) {
      const peer = this.host.peers.get(node);
      if (peer === undefined || peer.flushSeq !== undefined) continue;
      if (nowMs - peer.ackedSentMs < staleMs) continue;
      peer.requestFlush(this.host.currentSeq, nowMs);
    }
  }
}
