// What a primary tells and shows about its replicas: the watchdog that reports an in-sync replica
// leaving it waiting longer than replicaAckTimeoutMs (or not accepting a new primary's epoch
// within acceptEpochTimeoutMs), and the status snapshot. Reporting is all it does about the ISR:
// only the controller takes a replica out of it. Reports travel agent -> controller over a session
// that can break (a controller restart, a lost connection) and nothing acknowledges them but a
// newer membership, so while the condition persists and no membership newer than the report has
// arrived, a report goes again every replicaAckTimeoutMs: 'unresponsive' for a late in-sync
// member, 'caught-up' for a replica made required after its resync (the controller ignores a
// duplicate whose isrVersion it already moved past). It also restarts a link that owes answers and
// has been silent for replicaAckTimeoutMs.
import type { PrimaryCore } from './primary-core.js';
import type { PrimaryPeer } from './primary-peer.js';
import type { PrimaryStatus, ReplicaState } from './types.js';

export class Watchdog {
  private timer: object | undefined;
  /** When 'unresponsive' was last reported for an in-sync replica, and at which isrVersion. */
  private readonly reported = new Map<string, { isrVersion: number; atMs: number }>();
  /** When 'caught-up' was last reported for a required replica, and at which isrVersion. */
  private readonly caughtUpReported = new Map<string, { isrVersion: number; atMs: number }>();
  private readonly openedAtMs: number;

  constructor(private readonly core: PrimaryCore) {
    this.openedAtMs = core.context.clock.now();
  }

  /** Checks a few times per timeout, so a report comes at most a quarter late. */
  arm(): void {
    const { replicaAckTimeoutMs, acceptEpochTimeoutMs } = this.core.context.limits;
    const shortestMs = Math.min(replicaAckTimeoutMs, acceptEpochTimeoutMs);
    const periodMs = Math.max(1, Math.floor(shortestMs / 4));
    this.timer = this.core.context.clock.setTimeout(() => {
      this.timer = undefined;
      if (!this.core.serving) return;
      this.check();
      this.arm();
    }, periodMs);
  }

  disarm(): void {
    if (this.timer !== undefined) this.core.context.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** The primary reported `node` caught up at `isrVersion` (primary-membership.ts). */
  caughtUp(node: string, isrVersion: number): void {
    this.caughtUpReported.set(node, { isrVersion, atMs: this.core.context.clock.now() });
  }

  /**
   * Sends the pending reports again now (the controller sent our membership again, so it may have
   * restarted or a session may have broken since they went).
   */
  reportAgain(): void {
    if (!this.core.serving) return;
    for (const last of this.reported.values()) last.atMs = -Infinity;
    for (const last of this.caughtUpReported.values()) last.atMs = -Infinity;
    this.check();
  }

  private check(): void {
    const core = this.core;
    const nowMs = core.context.clock.now();
    const { replicaAckTimeoutMs, acceptEpochTimeoutMs } = core.context.limits;
    for (const peer of core.peers.values()) {
      if (!peer.silentFor(nowMs, replicaAckTimeoutMs)) continue;
      core.logger.log('warn', 'replica link silent: reconnecting', { node: peer.node });
      peer.restart(`no answer for ${replicaAckTimeoutMs} ms`);
    }
    const isrVersion = core.membership.isrVersion;
    for (const node of core.required) {
      const peer = core.peers.get(node);
      if (peer === undefined) continue;
      const oldest = peer.oldestOutstandingMs();
      const since = !peer.epochAccepted ? this.openedAtMs : oldest;
      const late =
        since !== undefined &&
        nowMs - since >= (peer.epochAccepted ? replicaAckTimeoutMs : acceptEpochTimeoutMs);
      if (!late) continue;
      const last = this.reported.get(node);
      const again = last?.isrVersion === isrVersion;
      if (again && nowMs - last.atMs < replicaAckTimeoutMs) continue;
      this.reported.set(node, { isrVersion, atMs: nowMs });
      const what = again
        ? 'in-sync replica still unresponsive: reporting again'
        : 'in-sync replica unresponsive';
      core.logger.log('warn', what, { node, isrVersion });
      const { volume, epoch } = core;
      const waitingMs = Math.max(0, Math.round(nowMs - since));
      core.report({ kind: 'unresponsive', volume, epoch, node, isrVersion, waitingMs });
    }
    this.reportCaughtUpAgain(nowMs);
  }

  /**
   * A caught-up report the controller has not answered with a newer membership (it may never have
   * arrived) goes again while the replica is still required on its account and in sync with us.
   */
  private reportCaughtUpAgain(nowMs: number): void {
    const core = this.core;
    const { replicaAckTimeoutMs } = core.context.limits;
    for (const [node, last] of [...this.caughtUpReported]) {
      if (core.caughtUp.get(node) !== last.isrVersion) {
        this.caughtUpReported.delete(node);
        continue;
      }
      const peer = core.peers.get(node);
      if (peer === undefined || !peer.ready || !peer.verified) continue;
      if (nowMs - last.atMs < replicaAckTimeoutMs) continue;
      last.atMs = nowMs;
      const { volume, epoch } = core;
      core.logger.log('info', 'caught-up replica not admitted yet: reporting again', {
        node,
        isrVersion: last.isrVersion,
      });
      core.report({ kind: 'caught-up', volume, epoch, node, isrVersion: last.isrVersion });
    }
  }
}

export function primaryStatus(core: PrimaryCore): PrimaryStatus {
  const replicas = [...core.peers.values()].map((peer) => {
    const progress = core.progressOf.get(peer.node);
    return {
      node: peer.node,
      state: stateOf(core, peer),
      unacked: peer.unacked.size,
      ...(progress === undefined ? {} : { resync: { ...progress } }),
    };
  });
  const { volume, epoch, fenced, generation } = core;
  return { volume, epoch, generation, fenced, isrVersion: core.membership.isrVersion, replicas };
}

function stateOf(core: PrimaryCore, peer: PrimaryPeer): ReplicaState {
  if (core.required.has(peer.node)) {
    if (core.caughtUp.has(peer.node)) return 'caught-up';
    return peer.ready ? 'in-sync' : 'connecting';
  }
  return peer.streaming ? 'resyncing' : 'outdated';
}
