// Reads the controller's whole state from the store in one pass, with each record's revision so
// that every decision can be written conditionally on what it was based on.
import {
  keys,
  type InstanceRecord,
  type NodeRecord,
  type WorkloadRecord,
} from '../../core/model.js';
import type { StateStore, StoreEntry } from '../../store/port.js';

export interface ClusterState {
  revision: number;
  nodes: NodeRecord[];
  workloads: WorkloadRecord[];
  instances: InstanceRecord[];
  /** modRevision of each key read, for conditional writes. */
  revisions: Map<string, number>;
}

export async function readState(store: StateStore): Promise<ClusterState> {
  const [nodes, workloads, instances] = await Promise.all([
    store.range<NodeRecord>(keys.prefixes.nodes),
    store.range<WorkloadRecord>(keys.prefixes.workloads),
    store.range<InstanceRecord>(keys.prefixes.instances),
  ]);
  const revisions = new Map<string, number>();
  const values = <T>(entries: StoreEntry<T>[]): T[] =>
    entries.map((e) => {
      revisions.set(e.key, e.modRevision);
      return e.value;
    });
  return {
    revision: Math.max(nodes.revision, workloads.revision, instances.revision),
    nodes: values(nodes.entries),
    workloads: values(workloads.entries),
    instances: values(instances.entries),
    revisions,
  };
}
