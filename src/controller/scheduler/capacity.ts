// Capacity accounting for the scheduler. CPUs are counted in thousandths (milli-CPUs) so that sums
// of fractional requests such as 0.1 + 0.2 compare exactly: with floating-point sums a node could
// look a hair short of (or a hair over) its capacity, and placement would flip on rounding noise.
import { ContinuumError } from '../../core/errors.js';
import type { SchedulerNode, SchedulerSnapshot, SchedulerWorkload } from './types.js';

/** An amount of CPU and memory in exact integer units. */
export interface Amount {
  milliCpu: number;
  memoryMiB: number;
}

export function toMilliCpu(cpu: number): number {
  return Math.round(cpu * 1000);
}

export function demandOf(workload: SchedulerWorkload): Amount {
  const resources = workload.spec.resources;
  return { milliCpu: toMilliCpu(resources.cpu), memoryMiB: resources.memoryMiB };
}

export function capacityOf(node: SchedulerNode): Amount {
  return { milliCpu: toMilliCpu(node.capacity.cpu), memoryMiB: node.capacity.memoryMiB };
}

export function subtract(a: Amount, b: Amount): Amount {
  return { milliCpu: a.milliCpu - b.milliCpu, memoryMiB: a.memoryMiB - b.memoryMiB };
}

export function add(a: Amount, b: Amount): Amount {
  return { milliCpu: a.milliCpu + b.milliCpu, memoryMiB: a.memoryMiB + b.memoryMiB };
}

export function covers(free: Amount, demand: Amount): boolean {
  return free.milliCpu >= demand.milliCpu && free.memoryMiB >= demand.memoryMiB;
}

/**
 * Workloads by node, built once per workloads array: placing one workload asks this for every
 * node, and scanning all workloads each time made a site loss on a large cluster quadratic. Moves
 * go through applyMoves, which keeps the index in step.
 */
interface WorkloadIndex {
  byName: Map<string, SchedulerWorkload>;
  byNode: Map<string, SchedulerWorkload[]>;
  usedByNode: Map<string, Amount>;
  /** Every workload some workload names in its anti-affinity. */
  avoided: Set<string>;
}

const indexCache = new WeakMap<readonly SchedulerWorkload[], WorkloadIndex>();

export function indexOf(workloads: readonly SchedulerWorkload[]): WorkloadIndex {
  let index = indexCache.get(workloads);
  if (index === undefined) {
    index = { byName: new Map(), byNode: new Map(), usedByNode: new Map(), avoided: new Set() };
    for (const w of workloads) {
      index.byName.set(w.name, w);
      for (const name of w.spec.availability.placement.antiAffinity) index.avoided.add(name);
      if (w.node === null) continue;
      const list = index.byNode.get(w.node);
      if (list === undefined) index.byNode.set(w.node, [w]);
      else list.push(w);
      index.usedByNode.set(
        w.node,
        add(index.usedByNode.get(w.node) ?? { milliCpu: 0, memoryMiB: 0 }, demandOf(w)),
      );
    }
    indexCache.set(workloads, index);
  }
  return index;
}

/**
 * Moves workloads (to another node, or to none) in a snapshot its caller owns, keeping the index
 * in step instead of rebuilding it: a site loss moves thousands of workloads one decision at a
 * time. Only for private working copies; a snapshot handed in by others is never edited.
 */
export function applyMoves(
  snapshot: SchedulerSnapshot,
  moves: ReadonlyMap<string, string | null>,
): void {
  const index = indexOf(snapshot.workloads);
  for (const [name, to] of moves) {
    const w = index.byName.get(name);
    if (w === undefined || to === w.node) continue;
    if (w.node !== null) {
      index.byNode.set(
        w.node,
        (index.byNode.get(w.node) ?? []).filter((other) => other !== w),
      );
      index.usedByNode.set(w.node, subtract(index.usedByNode.get(w.node)!, demandOf(w)));
    }
    w.node = to;
    if (to !== null) {
      index.byNode.set(to, [...(index.byNode.get(to) ?? []), w]);
      index.usedByNode.set(
        to,
        add(index.usedByNode.get(to) ?? { milliCpu: 0, memoryMiB: 0 }, demandOf(w)),
      );
    }
  }
}

function byNode(workloads: readonly SchedulerWorkload[]): Map<string, SchedulerWorkload[]> {
  return indexOf(workloads).byNode;
}

/** Workloads currently placed on `node`, leaving out the names in `without`. */
export function workloadsOn(
  snapshot: SchedulerSnapshot,
  node: string,
  without: ReadonlySet<string>,
): SchedulerWorkload[] {
  const placed = byNode(snapshot.workloads).get(node) ?? [];
  return without.size === 0 ? placed.slice() : placed.filter((w) => !without.has(w.name));
}

/**
 * Capacity minus what the placed workloads (other than those in `without`) ask for. Placement asks
 * this for every node and every displaced workload, so it builds one object and no lists.
 */
export function freeOn(
  snapshot: SchedulerSnapshot,
  node: SchedulerNode,
  without: ReadonlySet<string>,
): Amount {
  const index = indexOf(snapshot.workloads);
  const used = index.usedByNode.get(node.name);
  const free: Amount = {
    milliCpu: toMilliCpu(node.capacity.cpu) - (used?.milliCpu ?? 0),
    memoryMiB: node.capacity.memoryMiB - (used?.memoryMiB ?? 0),
  };
  if (without.size === 0 || used === undefined) return free;
  for (const leaving of index.byNode.get(node.name) ?? []) {
    if (!without.has(leaving.name)) continue;
    free.milliCpu += toMilliCpu(leaving.spec.resources.cpu);
    free.memoryMiB += leaving.spec.resources.memoryMiB;
  }
  return free;
}

/**
 * The free capacity of a node: its capacity minus the resources of the workloads placed on it,
 * leaving out the workloads named in `options.without` (a workload that is moving, or evicted
 * ones). Negative when the node is already overcommitted.
 */
export function freeCapacity(
  snapshot: SchedulerSnapshot,
  node: string,
  options: { without?: readonly string[] } = {},
): { cpu: number; memoryMiB: number } {
  const found = snapshot.nodes.find((n) => n.name === node);
  if (found === undefined) {
    throw new ContinuumError('CONTINUUM_ERR_NODE_NOT_FOUND', `node ${node} is not in the snapshot`);
  }
  const free = freeOn(snapshot, found, new Set(options.without ?? []));
  return { cpu: free.milliCpu / 1000, memoryMiB: free.memoryMiB };
}

export function formatCpu(milliCpu: number): string {
  const cpus = milliCpu / 1000;
  return `${cpus} ${cpus === 1 ? 'CPU' : 'CPUs'}`;
}

export function formatAmount(amount: Amount): string {
  return `${formatCpu(amount.milliCpu)} and ${amount.memoryMiB} MiB`;
}
