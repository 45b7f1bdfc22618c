// Turns one pure decision into one conditional write with its journal events. The write holds only
// if the records it was decided on are unchanged; otherwise the next pass decides again.
import {
  keys,
  type NodeRecord,
  type NewEvent,
  type Transition,
  type VolumeReplicaRecord,
  type WorkloadRecord,
} from '../../core/model.js';
import type { TxnRequest } from '../../store/port.js';
import type { Decision } from '../failover/decide.js';
import type { ClusterState } from './state.js';

export function decisionTxn(
  state: ClusterState,
  decision: Decision,
  now: number,
  avoidNodeMs: number,
): TxnRequest | undefined {
  if (decision.type === 'liveness') return livenessTxn(state, decision, now);
  const workload = state.workloads.find((w) => w.name === decision.workload);
  if (workload === undefined) return undefined;
  const key = keys.workload(workload.name);
  const compares = [{ key, modRevision: state.revisions.get(key) ?? 0 }];
  const subject = { kind: 'workload' as const, name: workload.name };
  if (decision.type === 'blocked') {
    const value: WorkloadRecord = { ...workload, blockedReason: decision.reason, updatedAt: now };
    const event: NewEvent = {
      at: now,
      kind: 'workload.blocked',
      subject,
      message: decision.reason,
    };
    return { compares, puts: [{ key, value }], events: [event] };
  }
  if (decision.type === 'volumes') {
    const value: WorkloadRecord = { ...workload, volumes: decision.volumes, updatedAt: now };
    const event: NewEvent = {
      at: now,
      kind: 'volume.redundancy',
      subject,
      message: decision.reason,
      data: { volumes: summarize(decision.volumes) },
    };
    return { compares, puts: [{ key, value }], events: [event] };
  }
  if (decision.type === 'restart') {
    const value: WorkloadRecord = {
      ...workload,
      restartNonce: workload.restartNonce + 1,
      updatedAt: now,
    };
    const event: NewEvent = {
      at: now,
      kind: 'workload.restart',
      subject,
      message: decision.reason,
    };
    return { compares, puts: [{ key, value }], events: [event] };
  }
  const epoch = workload.epoch + 1;
  const transition: Transition = {
    id: `${workload.name}@${epoch}`,
    kind: decision.kind,
    reason: decision.reason,
    epoch,
    fromNode: decision.fromNode,
    toNode: decision.toNode,
    ...(decision.failedAt === undefined ? {} : { failedAt: decision.failedAt }),
    detectedAt: now,
    decidedAt: now,
  };
  const avoid = workload.avoid.filter((a) => a.until > now);
  if (decision.avoidNode !== undefined)
    avoid.push({ node: decision.avoidNode, until: now + avoidNodeMs });
  const value: WorkloadRecord = {
    ...workload,
    epoch,
    node: decision.toNode,
    transition,
    avoid,
    blockedReason: undefined,
    updatedAt: now,
    ...(decision.volumes === undefined ? {} : { volumes: decision.volumes }),
  };
  delete value.blockedReason;
  const target = decision.toNode === null ? 'no node (pending)' : decision.toNode;
  const event: NewEvent = {
    at: now,
    kind: `${decision.kind}.decided`,
    subject,
    message: `${decision.reason}: epoch ${epoch} goes to ${target}`,
    data: {
      transition: transition.id,
      epoch,
      fromNode: decision.fromNode,
      toNode: decision.toNode,
      failedAt: decision.failedAt,
      ...(decision.volumes === undefined ? {} : { volumes: summarize(decision.volumes) }),
    },
  };
  return { compares, puts: [{ key, value }], events: [event] };
}

/** The part of the volume records an operator reads in the journal: who holds a copy, who is in sync. */
function summarize(volumes: Record<string, VolumeReplicaRecord>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(volumes).map(([name, r]) => [
      name,
      { replicas: r.replicas, isr: r.isr, isrVersion: r.isrVersion },
    ]),
  );
}

function livenessTxn(
  state: ClusterState,
  decision: Extract<Decision, { type: 'liveness' }>,
  now: number,
): TxnRequest | undefined {
  const node = state.nodes.find((n) => n.name === decision.node);
  if (node === undefined) return undefined;
  const key = keys.node(node.name);
  const value: NodeRecord = { ...node, liveness: decision.to, livenessChangedAt: now };
  const silentMs = now - decision.lastHeartbeatAt;
  const message =
    decision.to === 'up'
      ? `node ${node.name} is up`
      : `node ${node.name} is ${decision.to}: no heartbeat for ${silentMs} ms`;
  const event: NewEvent = {
    at: now,
    kind: `node.${decision.to}`,
    subject: { kind: 'node', name: node.name },
    message,
    data: { from: decision.from, lastHeartbeatAt: decision.lastHeartbeatAt, silentMs },
  };
  return {
    compares: [{ key, modRevision: state.revisions.get(key) ?? 0 }],
    puts: [{ key, value }],
    events: [event],
  };
}
