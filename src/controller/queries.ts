// Read-side views for the API, CLI and console: records joined with what only the controller's
// memory holds (heartbeat age, usage) and the derived phase of each workload.
import {
  nodeState,
  type InstanceRecord,
  type NodeRecord,
  type NodeState,
  type WorkloadPhase,
  type WorkloadRecord,
} from '../core/model.js';
import type { Controller } from './controller.js';
import type { NodeUsage } from './agent-sessions.js';
import { transitionTimings } from './failover/progress.js';
import { readState } from './reconcile/state.js';
import type { ResyncView } from './replication/reports.js';
import { workloadPhase } from './views.js';

export interface NodeView extends NodeRecord {
  state: NodeState;
  connected: boolean;
  lastHeartbeatAgoMs?: number;
  usage?: NodeUsage;
  instances: string[];
}

export interface WorkloadView extends WorkloadRecord {
  phase: WorkloadPhase;
  instance?: InstanceRecord;
  /** Copies of its replicated volumes being resynced now, with their progress. */
  resyncs?: ResyncView[];
}

export async function listNodes(controller: Controller): Promise<NodeView[]> {
  const state = await readState(controller.store);
  const now = controller.clock.now();
  const connected = new Set(controller.sessions.connectedNodes());
  return state.nodes.map((node) => {
    const heard = controller.sessions.lastHeartbeatAt[node.name];
    const usage = controller.sessions.usage.get(node.name);
    return {
      ...node,
      state: nodeState(node),
      connected: connected.has(node.name),
      ...(heard === undefined ? {} : { lastHeartbeatAgoMs: now - heard }),
      ...(usage === undefined ? {} : { usage }),
      instances: state.workloads.filter((w) => w.node === node.name).map((w) => w.name),
    };
  });
}

export async function listWorkloads(controller: Controller): Promise<WorkloadView[]> {
  const state = await readState(controller.store);
  return state.workloads.map((w) => {
    const instance = state.instances.find((i) => i.workload === w.name && i.node === w.node);
    const resyncs = [...controller.resyncs.values()].filter(
      (r) => w.volumes?.[r.volume] !== undefined && !w.volumes[r.volume]!.isr.includes(r.node),
    );
    return {
      ...w,
      phase: workloadPhase(w, state.instances),
      ...(instance === undefined ? {} : { instance }),
      ...(resyncs.length === 0 ? {} : { resyncs }),
    };
  });
}

export async function listInstances(controller: Controller): Promise<InstanceRecord[]> {
  return (await readState(controller.store)).instances;
}

export interface FailoverView {
  seq: number;
  at: number;
  workload: string;
  kind: string;
  fromNode: string | null;
  toNode: string | null;
  epoch: number;
  detectMs?: number;
  decideMs?: number;
  startMs?: number;
  healthyMs?: number;
  restoreMs?: number;
}

/** Completed changes of owner with their step times; in-progress ones come from the workload records. */
export async function listFailovers(
  controller: Controller,
  limit: number,
): Promise<FailoverView[]> {
  const kinds = ['failover', 'switchover', 'eviction', 'placement', 'preemption'].map(
    (k) => `${k}.completed`,
  );
  const events = await controller.store.readEvents({ kinds, limit: 10_000 });
  return events.slice(-limit).map((e) => {
    const d = e.data ?? {};
    return {
      seq: e.seq,
      at: e.at,
      workload: e.subject.name,
      kind: typeof d.kind === 'string' ? d.kind : (e.kind.split('.')[0] ?? e.kind),
      fromNode: (d.fromNode as string | null) ?? null,
      toNode: (d.toNode as string | null) ?? null,
      epoch: Number(d.epoch ?? 0),
      ...pickNumbers(d, ['detectMs', 'decideMs', 'startMs', 'healthyMs', 'restoreMs']),
    };
  });
}

function pickNumbers(data: Record<string, unknown>, names: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name of names) if (typeof data[name] === 'number') out[name] = data[name];
  return out;
}

export { transitionTimings };
