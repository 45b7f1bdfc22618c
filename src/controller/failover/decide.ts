// The controller's pure decisions: node liveness from heartbeats, and every change of owner
// (initial placement, failover, eviction for maintenance, preemption). `(snapshot, now) ->
// decisions`: no clock, no randomness, no I/O (CONVENTIONS.md item 1). The shell applies them in
// order, each as a conditional write that raises the workload's epoch before any agent hears of it.
import type {
  VolumeReplicaRecord,
  InstanceRecord,
  NodeLiveness,
  NodeRecord,
  TransitionKind,
  WorkloadRecord,
} from '../../core/model.js';
import type { DetectionConfig } from '../config.js';
import { applyMoves } from '../scheduler/capacity.js';
import { place, type PlacementPurpose, type SchedulerSnapshot } from '../scheduler/place.js';
import {
  copiesPerNode,
  initialRecords,
  inSyncNodes,
  recordsAfterMove,
  type ReplicaNodeView,
} from '../replication/volume-records.js';
import { restoreRedundancy } from '../replication/redundancy.js';

export interface DecideSnapshot {
  now: number;
  /**
   * From when node silence counts: when this controller started leading (or resumed from a pause
   * of its own); a node not heard from since gets its grace period from it.
   */
  startedAt: number;
  nodes: NodeRecord[];
  workloads: WorkloadRecord[];
  instances: InstanceRecord[];
  /** Controller time of each node's latest heartbeat (held in memory, not in the store). */
  lastHeartbeatAt: Readonly<Record<string, number>>;
}

export type Decision =
  | {
      type: 'liveness';
      node: string;
      from: NodeLiveness;
      to: NodeLiveness;
      lastHeartbeatAt: number;
    }
  | {
      type: 'move';
      workload: string;
      kind: TransitionKind;
      fromNode: string | null;
      toNode: string | null;
      reason: string;
      failedAt?: number;
      /** Nodes to avoid from now on (the node where the ladder gave up). */
      avoidNode?: string;
      /** The workload's replicated volumes after the move, written with it. */
      volumes?: Record<string, VolumeReplicaRecord>;
    }
  /** Replicated volumes change without a move: a lost copy replaced, a surplus one released. */
  | {
      type: 'volumes';
      workload: string;
      volumes: Record<string, VolumeReplicaRecord>;
      reason: string;
    }
  | { type: 'restart'; workload: string; reason: string }
  | { type: 'blocked'; workload: string; reason: string };

export function livenessOf(
  snapshot: DecideSnapshot,
  node: NodeRecord,
  config: DetectionConfig,
): NodeLiveness {
  const heard = Math.max(snapshot.lastHeartbeatAt[node.name] ?? 0, snapshot.startedAt);
  const silentMs = snapshot.now - heard;
  if (silentMs >= config.downAfterMs) return 'down';
  // A node never heard from is not "suspect": it has not joined yet.
  if (silentMs >= config.suspectAfterMs) return node.liveness === 'unknown' ? 'unknown' : 'suspect';
  return snapshot.lastHeartbeatAt[node.name] === undefined ? node.liveness : 'up';
}

export interface DecideOptions {
  /**
   * The deliberately broken rule for the simulator's self-test: fail over to any node, ignoring
   * which ones hold an in-sync copy. Never set outside src/sim.
   */
  unsafePromoteOutdated?: boolean;
}

/** Liveness first, then owners, in priority order so the most important workloads pick first. */
export function decide(
  snapshot: DecideSnapshot,
  config: DetectionConfig,
  options: DecideOptions = {},
): Decision[] {
  const decisions: Decision[] = [];
  const liveness = new Map<string, NodeLiveness>();
  for (const node of snapshot.nodes) {
    const next = livenessOf(snapshot, node, config);
    liveness.set(node.name, next);
    if (next !== node.liveness) {
      const lastHeartbeatAt = snapshot.lastHeartbeatAt[node.name] ?? snapshot.startedAt;
      decisions.push({
        type: 'liveness',
        node: node.name,
        from: node.liveness,
        to: next,
        lastHeartbeatAt,
      });
    }
  }
  const scheduler = schedulerSnapshot(snapshot, liveness, options);
  const views = replicaViews(snapshot, liveness);
  const held = copiesPerNode(snapshot.workloads);
  const ordered = [...snapshot.workloads].sort(
    (a, b) =>
      b.spec.availability.priority - a.spec.availability.priority || a.name.localeCompare(b.name),
  );
  for (const workload of ordered) {
    const decision = decideWorkload(snapshot, workload, liveness, scheduler);
    if (decision === undefined) {
      const restored = restoreRedundancy(workload, views, held, snapshot.now);
      if (restored !== undefined)
        decisions.push({ type: 'volumes', workload: workload.name, ...restored });
      continue;
    }
    for (const d of decision)
      if (d.type === 'move') withVolumes(d, snapshot, liveness, views, held);
    decisions.push(...decision);
    applyToScheduler(scheduler, decision);
  }
  return decisions;
}

function replicaViews(
  snapshot: DecideSnapshot,
  liveness: Map<string, NodeLiveness>,
): ReplicaNodeView[] {
  return snapshot.nodes.map((n) => ({
    name: n.name,
    site: n.site,
    role: n.role,
    liveness: liveness.get(n.name) ?? n.liveness,
    maintenance: n.maintenance,
  }));
}

/** The replicated volumes that go with a move: first copies at placement, the ISR at a failover. */
function withVolumes(
  decision: Extract<Decision, { type: 'move' }>,
  snapshot: DecideSnapshot,
  liveness: Map<string, NodeLiveness>,
  views: ReplicaNodeView[],
  held: Map<string, number>,
): void {
  const workload = snapshot.workloads.find((w) => w.name === decision.workload);
  if (workload === undefined || decision.toNode === null) return;
  const volumes =
    workload.volumes === undefined
      ? initialRecords(workload.spec, decision.toNode, views, held)
      : recordsAfterMove(
          workload,
          decision.toNode,
          workload.node !== null && (liveness.get(workload.node) ?? 'down') === 'down',
          snapshot.now,
        );
  if (volumes !== undefined) decision.volumes = volumes;
}

function schedulerSnapshot(
  snapshot: DecideSnapshot,
  liveness: Map<string, NodeLiveness>,
  options: DecideOptions,
): SchedulerSnapshot {
  return {
    nodes: snapshot.nodes.map((n) => ({
      name: n.name,
      site: n.site,
      role: n.role,
      capacity: { cpu: n.capacity.cpu, memoryMiB: n.capacity.memoryMiB },
      labels: n.labels,
      schedulable: liveness.get(n.name) === 'up' && !n.maintenance,
    })),
    workloads: snapshot.workloads.map((w) => {
      const inSync = options.unsafePromoteOutdated ? undefined : inSyncNodes(w);
      return {
        name: w.name,
        spec: w.spec,
        node: w.node,
        ...(inSync === undefined ? {} : { inSync }),
      };
    }),
  };
}

/** Later workloads in the same pass see the capacity taken and freed by earlier decisions. */
function applyToScheduler(scheduler: SchedulerSnapshot, decisions: Decision[]): void {
  const moves = new Map<string, string | null>();
  for (const d of decisions) if (d.type === 'move') moves.set(d.workload, d.toNode);
  if (moves.size === 0) return;
  applyMoves(scheduler, moves);
}

function decideWorkload(
  snapshot: DecideSnapshot,
  workload: WorkloadRecord,
  liveness: Map<string, NodeLiveness>,
  scheduler: SchedulerSnapshot,
): Decision[] | undefined {
  const avoid = workload.avoid.filter((a) => a.until > snapshot.now).map((a) => a.node);
  if (workload.node === null) {
    const placed = moveTo(scheduler, workload, {
      purpose: 'initial',
      exclude: avoid,
      kind: 'placement',
      reason: 'placing',
    });
    if (avoid.length === 0 || placed.some((d) => d.type === 'move')) return placed;
    // Nowhere else to go (say the only in-sync copy is there): a node it avoids, where its
    // remediation gave up, is better than none, as a restart in place is (ARCHITECTURE.md section 4).
    const fallback = moveTo(scheduler, workload, {
      purpose: 'initial',
      exclude: [],
      kind: 'placement',
      reason: `placing on a node it avoids (${avoid.join(', ')}): no other node can take it`,
    });
    return fallback.some((d) => d.type === 'move') ? fallback : placed;
  }
  const owner = snapshot.nodes.find((n) => n.name === workload.node);
  const ownerLiveness = owner ? liveness.get(owner.name) : 'down';
  if (ownerLiveness === 'down') {
    const failedAt = snapshot.lastHeartbeatAt[workload.node] ?? snapshot.startedAt;
    // No node can take it: release the lost node's claim anyway (raising the epoch), so that if
    // the node returns its stale instance is stopped rather than silently resumed.
    return failOverOrRelease(scheduler, workload, {
      exclude: [workload.node, ...avoid],
      reason: `node ${workload.node} is down`,
      releaseReason: `node ${workload.node} is down`,
      failedAt,
    });
  }
  const inSync = inSyncNodes(workload);
  if (inSync !== undefined && !inSync.includes(workload.node)) {
    // Its owner left the in-sync set while up (its copy was not closed cleanly, so it may have
    // lost acknowledged writes): it must not serve; an in-sync copy takes over at a new epoch, and
    // its primary resyncs this one as a returning replica.
    const reason = `the copy on ${workload.node} is out of sync`;
    // No in-sync copy can take it now: release the owner's claim (its primary holds every
    // operation anyway), so the workload waits unplaced, like one whose owner is down.
    return failOverOrRelease(scheduler, workload, {
      exclude: [workload.node, ...avoid],
      reason,
      releaseReason: `${reason}, and no node with an in-sync copy can take it`,
    });
  }
  const instance = snapshot.instances.find(
    (i) => i.workload === workload.name && i.node === workload.node && i.epoch === workload.epoch,
  );
  if (instance?.fenced === true) {
    // Its primary was fenced at this epoch (the agent self-fenced it, cut off from us while its
    // writes waited): nothing serves at this epoch any more, so the workload moves to a new one,
    // on an in-sync copy elsewhere, else on the same node.
    const reason = `the instance on ${workload.node} was fenced at epoch ${workload.epoch}`;
    const moved = moveTo(scheduler, workload, {
      purpose: 'failover',
      exclude: [workload.node, ...avoid],
      kind: 'failover',
      reason,
      failedAt: instance.stateSince,
    });
    if (moved.some((d) => d.type === 'move')) return moved;
    return [
      {
        type: 'move',
        workload: workload.name,
        kind: 'failover',
        fromNode: workload.node,
        toNode: workload.node,
        reason: `${reason}; no other node can take it, so it starts again there at a new epoch`,
        failedAt: instance.stateSince,
      },
    ];
  }
  if (instance?.failoverRequested && instance.restartNonce >= workload.restartNonce) {
    const moved = moveTo(scheduler, workload, {
      purpose: 'failover',
      exclude: [workload.node, ...avoid],
      kind: 'failover',
      reason: `remediation gave up on node ${workload.node}: ${instance.message ?? 'health checks failed'}`,
      failedAt: instance.stateSince,
      avoidNode: workload.node,
    });
    if (moved.some((d) => d.type === 'move')) return moved;
    // Nowhere else to go: keep trying where it is (ARCHITECTURE.md section 4, "alert and keep trying").
    return [
      ...moved,
      {
        type: 'restart',
        workload: workload.name,
        reason: 'no other node can take it; restarting in place',
      },
    ];
  }
  if (owner?.maintenance) {
    return moveTo(scheduler, workload, {
      purpose: 'switchover',
      exclude: [workload.node, ...avoid],
      kind: 'eviction',
      reason: `node ${workload.node} entered maintenance`,
    });
  }
  return undefined;
}

/** A failover, or when no node can take the workload, a move to no node that releases the claim. */
function failOverOrRelease(
  scheduler: SchedulerSnapshot,
  workload: WorkloadRecord,
  how: { exclude: string[]; reason: string; releaseReason: string; failedAt?: number },
): Decision[] {
  const failedAt = how.failedAt === undefined ? {} : { failedAt: how.failedAt };
  const moved = moveTo(scheduler, workload, {
    purpose: 'failover',
    exclude: how.exclude,
    kind: 'failover',
    reason: how.reason,
    ...failedAt,
  });
  if (moved.some((d) => d.type === 'move')) return moved;
  const release: Decision = {
    type: 'move',
    workload: workload.name,
    kind: 'failover',
    fromNode: workload.node,
    toNode: null,
    reason: how.releaseReason,
    ...failedAt,
  };
  return [release, ...moved];
}

function moveTo(
  scheduler: SchedulerSnapshot,
  workload: WorkloadRecord,
  how: {
    purpose: PlacementPurpose;
    exclude: string[];
    kind: TransitionKind;
    reason: string;
    failedAt?: number;
    avoidNode?: string;
  },
): Decision[] {
  const result = place(scheduler, {
    workload: workload.name,
    purpose: how.purpose,
    exclude: how.exclude,
  });
  if (!result.ok) {
    return workload.blockedReason === result.reason
      ? []
      : [{ type: 'blocked', workload: workload.name, reason: result.reason }];
  }
  const decisions: Decision[] = result.preempt.map((victim) => ({
    type: 'move' as const,
    workload: victim,
    kind: 'preemption' as const,
    fromNode: result.node,
    toNode: null,
    reason: `preempted on ${result.node} by ${workload.name} (priority ${workload.spec.availability.priority})`,
  }));
  decisions.push({
    type: 'move',
    workload: workload.name,
    kind: how.kind,
    fromNode: workload.node,
    toNode: result.node,
    reason: how.reason,
    ...(how.failedAt === undefined ? {} : { failedAt: how.failedAt }),
    ...(how.avoidNode === undefined ? {} : { avoidNode: how.avoidNode }),
  });
  return decisions;
}
