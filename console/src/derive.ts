// What the console derives from the API's views: each workload's protection state, free and spare
// capacity, and sites. Pure functions of the data, computed once per change, never per row render.
import type { NodeView, WorkloadView } from './types.js';

export type Protection = 'protected' | 'degraded' | 'unprotected' | 'failing over' | 'down';
export const protections: readonly Protection[] = [
  'protected',
  'degraded',
  'unprotected',
  'failing over',
  'down',
];

export interface Free {
  cpu: number;
  memoryMiB: number;
}

export interface Derived {
  protection: Map<string, Protection>;
  /** Free capacity of each node (capacity less the resources of the workloads it owns). */
  free: Map<string, Free>;
  /** Workload names by owner node. */
  byNode: Map<string, string[]>;
  counts: Record<Protection, number>;
  sites: { name: string; nodes: number; up: number }[];
  /** Free capacity on spare nodes that are up and not in maintenance: where failovers go first. */
  spare: Free & { nodes: number };
  /** Free capacity on every node that can take work. */
  total: Free;
}

const movingKinds = new Set(['failover', 'switchover', 'eviction', 'preemption']);

function canTakeWork(node: NodeView): boolean {
  // Liveness already follows heartbeats; an up node with its session between reconnects still counts.
  return node.state === 'up';
}

/** A node other than the owner, able to take work, with room for it: somewhere to fail over to. */
function hasFailoverTarget(
  w: WorkloadView,
  candidates: readonly NodeView[],
  free: Map<string, Free>,
): boolean {
  const need = w.spec.resources;
  return candidates.some((n) => {
    if (n.name === w.node) return false;
    const room = free.get(n.name);
    return room !== undefined && room.cpu >= need.cpu && room.memoryMiB >= need.memoryMiB;
  });
}

function redundancyReduced(w: WorkloadView): boolean {
  if ((w.resyncs?.length ?? 0) > 0) return true;
  for (const spec of w.spec.volumes) {
    const record = w.volumes?.[spec.name];
    if (spec.replicas <= 1) continue;
    if (record === undefined || record.isr.length < spec.replicas) return true;
  }
  return false;
}

export function protectionOf(
  w: WorkloadView,
  nodes: Map<string, NodeView>,
  failoverPossible: boolean,
): Protection {
  const t = w.transition;
  if (w.phase === 'moving') return 'failing over';
  if (
    t !== undefined &&
    t.healthyAt === undefined &&
    t.fromNode !== null &&
    movingKinds.has(t.kind)
  )
    return 'failing over';
  const owner = w.node === null ? undefined : nodes.get(w.node);
  if (w.phase === 'pending' || owner === undefined) return 'down';
  if (owner.state === 'down' || owner.state === 'fenced') return 'down';
  if (w.phase !== 'active' || owner.state === 'suspect') return 'degraded';
  if (redundancyReduced(w)) return 'degraded';
  return failoverPossible ? 'protected' : 'unprotected';
}

export function derive(nodes: readonly NodeView[], workloads: readonly WorkloadView[]): Derived {
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const free = new Map<string, Free>();
  for (const n of nodes) free.set(n.name, { cpu: n.capacity.cpu, memoryMiB: n.capacity.memoryMiB });
  const byNode = new Map<string, string[]>();
  for (const w of workloads) {
    if (w.node === null) continue;
    const room = free.get(w.node);
    if (room !== undefined) {
      room.cpu -= w.spec.resources.cpu;
      room.memoryMiB -= w.spec.resources.memoryMiB;
    }
    const list = byNode.get(w.node);
    if (list === undefined) byNode.set(w.node, [w.name]);
    else list.push(w.name);
  }
  // Roomiest first, so the search for a failover target usually ends at the first candidate.
  const candidates = nodes
    .filter(canTakeWork)
    .sort((a, b) => (free.get(b.name)?.cpu ?? 0) - (free.get(a.name)?.cpu ?? 0));
  const protection = new Map<string, Protection>();
  const counts = Object.fromEntries(protections.map((p) => [p, 0])) as Record<Protection, number>;
  for (const w of workloads) {
    const state = protectionOf(w, byName, hasFailoverTarget(w, candidates, free));
    protection.set(w.name, state);
    counts[state]++;
  }
  const sites = new Map<string, { name: string; nodes: number; up: number }>();
  const spare = { cpu: 0, memoryMiB: 0, nodes: 0 };
  const total = { cpu: 0, memoryMiB: 0 };
  for (const n of nodes) {
    const site = sites.get(n.site) ?? { name: n.site, nodes: 0, up: 0 };
    site.nodes++;
    if (n.state === 'up') site.up++;
    sites.set(n.site, site);
    if (!canTakeWork(n)) continue;
    const room = free.get(n.name)!;
    total.cpu += Math.max(0, room.cpu);
    total.memoryMiB += Math.max(0, room.memoryMiB);
    if (n.role === 'spare') {
      spare.nodes++;
      spare.cpu += Math.max(0, room.cpu);
      spare.memoryMiB += Math.max(0, room.memoryMiB);
    }
  }
  return {
    protection,
    free,
    byNode,
    counts,
    sites: [...sites.values()].sort((a, b) => a.name.localeCompare(b.name)),
    spare,
    total,
  };
}
