// Derived views of the stored state: what each agent must run, where each endpoint routes, and
// what phase a workload is in. Pure functions of records, shared by the API, the agent sessions
// and the simulator.
import type {
  InstanceRecord,
  NodeRecord,
  Route,
  WorkloadPhase,
  WorkloadRecord,
} from '../core/model.js';
import type { Assignment } from '../core/protocol.js';

/** Planned moves wait for the old instance to stop first; a lost node's instance is not waited for. */
const handoffKinds = new Set(['switchover', 'eviction', 'preemption']);

type ViewState = {
  nodes: readonly NodeRecord[];
  workloads: readonly WorkloadRecord[];
  instances: readonly InstanceRecord[];
};

/** Instance records by workload: views ask per workload, and scanning all of them each time was quadratic. */
function instancesByWorkload(instances: readonly InstanceRecord[]): Map<string, InstanceRecord[]> {
  const index = new Map<string, InstanceRecord[]>();
  for (const i of instances) {
    const list = index.get(i.workload);
    if (list === undefined) index.set(i.workload, [i]);
    else list.push(i);
  }
  return index;
}

function waitsForHandoff(
  w: WorkloadRecord,
  instances: readonly InstanceRecord[],
  liveness: ReadonlyMap<string, NodeRecord['liveness']>,
): boolean {
  if (w.transition === undefined || !handoffKinds.has(w.transition.kind)) return false;
  const current = instances.find((i) => i.node === w.node);
  if (current !== undefined && current.epoch === w.epoch) return false;
  return instances.some((i) => {
    if (i.epoch >= w.epoch || i.state === 'stopped') return false;
    const holder = liveness.get(i.node);
    return holder !== undefined && holder !== 'down';
  });
}

/** Whether a workload's new owner still waits for the old instance to stop (planned moves). */
export function handoffWaits(state: ViewState): (w: WorkloadRecord) => boolean {
  const byWorkload = instancesByWorkload(state.instances);
  const liveness = new Map(state.nodes.map((n) => [n.name, n.liveness]));
  return (w) => waitsForHandoff(w, byWorkload.get(w.name) ?? [], liveness);
}

/** The full set of instances each node must run (anything else it runs must stop), in one pass. */
export function assignmentsByNode(state: ViewState): Map<string, Assignment[]> {
  const byWorkload = instancesByWorkload(state.instances);
  const liveness = new Map(state.nodes.map((n) => [n.name, n.liveness]));
  const sets = new Map<string, Assignment[]>();
  for (const w of state.workloads) {
    if (w.node === null || waitsForHandoff(w, byWorkload.get(w.name) ?? [], liveness)) continue;
    const set = sets.get(w.node) ?? [];
    set.push({ workload: w.name, epoch: w.epoch, spec: w.spec, restartNonce: w.restartNonce });
    sets.set(w.node, set);
  }
  for (const set of sets.values()) set.sort((a, b) => a.workload.localeCompare(b.workload));
  return sets;
}

/**
 * Current epochs of the workloads each node runs or has an instance record of (see the protocol),
 * for every node in one pass: a publish serves every connected node.
 */
export function epochsByNode(state: {
  workloads: readonly WorkloadRecord[];
  instances: readonly InstanceRecord[];
}): Map<string, Record<string, number>> {
  const epochs = new Map<string, Record<string, number>>();
  const epochOf = new Map(state.workloads.map((w) => [w.name, w.epoch]));
  const note = (node: string, workload: string) => {
    const epoch = epochOf.get(workload);
    if (epoch === undefined) return;
    const record = epochs.get(node) ?? {};
    record[workload] = epoch;
    epochs.set(node, record);
  };
  for (const w of state.workloads) if (w.node !== null) note(w.node, w.name);
  for (const i of state.instances) note(i.node, i.workload);
  return epochs;
}

/** Routes only to a healthy instance of the current epoch (ARCHITECTURE.md section 3, rule 5). */
export function routesOf(state: ViewState): Route[] {
  const routes: Route[] = [];
  const byWorkload = instancesByWorkload(state.instances);
  const nodes = new Map(state.nodes.map((n) => [n.name, n]));
  for (const w of state.workloads) {
    const owner = w.node === null ? undefined : nodes.get(w.node);
    const instance = byWorkload.get(w.name)?.find((i) => i.node === w.node);
    const live = owner !== undefined && owner.liveness !== 'down';
    const serving =
      live && instance !== undefined && instance.epoch === w.epoch && instance.state === 'healthy';
    for (const endpoint of w.spec.endpoints) {
      if (endpoint.vip !== undefined) continue; // Served on its virtual IP, no proxy (docs/vip.md).
      const port = serving ? instance.ports[endpoint.name] : undefined;
      routes.push({
        workload: w.name,
        endpoint: endpoint.name,
        listenHost: endpoint.host,
        listenPort: endpoint.port,
        epoch: w.epoch,
        target:
          owner !== undefined && port !== undefined
            ? { node: owner.name, host: owner.address, port }
            : null,
      });
    }
  }
  return routes.sort(
    (a, b) => a.workload.localeCompare(b.workload) || a.endpoint.localeCompare(b.endpoint),
  );
}

export function workloadPhase(
  w: WorkloadRecord,
  instances: readonly InstanceRecord[],
): WorkloadPhase {
  if (w.node === null) return 'pending';
  const instance = instances.find((i) => i.workload === w.name && i.node === w.node);
  if (instance === undefined || instance.epoch !== w.epoch) {
    return w.transition !== undefined && w.transition.fromNode !== null ? 'moving' : 'starting';
  }
  if (instance.state === 'healthy') return 'active';
  if (instance.state === 'starting')
    return w.transition?.healthyAt === undefined && w.transition?.fromNode ? 'moving' : 'starting';
  return 'degraded';
}
