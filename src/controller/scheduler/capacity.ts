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

/** Workloads currently placed on `node`, leaving out the names in `without`. */
export function workloadsOn(
  snapshot: SchedulerSnapshot,
  node: string,
  without: ReadonlySet<string>,
): SchedulerWorkload[] {
  return snapshot.workloads.filter((w) => w.node === node && !without.has(w.name));
}

/** Capacity minus what the placed workloads (other than those in `without`) ask for. */
export function freeOn(
  snapshot: SchedulerSnapshot,
  node: SchedulerNode,
  without: ReadonlySet<string>,
): Amount {
  let free = capacityOf(node);
  for (const workload of workloadsOn(snapshot, node.name, without)) {
    free = subtract(free, demandOf(workload));
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
