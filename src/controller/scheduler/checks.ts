// The per-node constraints of a placement, checked in a fixed order so that each rejected node is
// counted under exactly one reason: the first constraint it fails. The order runs from what an
// operator cannot change by moving work (down, excluded, labels, sites) to what they can
// (anti-affinity, capacity), so the reason points at the constraint that matters most.
import {
  covers,
  demandOf,
  freeOn,
  indexOf,
  subtract,
  workloadsOn,
  type Amount,
} from './capacity.js';
import type {
  PlacementRequest,
  SchedulerNode,
  SchedulerSnapshot,
  SchedulerWorkload,
} from './types.js';

/** Everything about one request that does not depend on the node being checked. */
export interface PlacementContext {
  snapshot: SchedulerSnapshot;
  workload: SchedulerWorkload;
  request: PlacementRequest;
  demand: Amount;
  priority: number;
  exclude: ReadonlySet<string>;
  /** The workload itself never counts against a node: it is the one being placed. */
  self: ReadonlySet<string>;
}

export type Rejection =
  | { kind: 'unschedulable' }
  | { kind: 'excluded' }
  | { kind: 'current' }
  | { kind: 'volume'; node: string }
  | { kind: 'outOfSync' }
  | { kind: 'labels'; missing: string[] }
  | { kind: 'site' }
  | { kind: 'antiAffinity'; workloads: string[] }
  | { kind: 'capacity'; free: Amount };

export type Verdict = { ok: true; freeAfter: Amount } | { ok: false; rejection: Rejection };

export function makeContext(
  snapshot: SchedulerSnapshot,
  workload: SchedulerWorkload,
  request: PlacementRequest,
): PlacementContext {
  return {
    snapshot,
    workload,
    request,
    demand: demandOf(workload),
    priority: workload.spec.availability.priority,
    exclude: new Set(request.exclude ?? []),
    self: new Set([workload.name]),
  };
}

/** Every constraint but capacity; undefined when the node passes them all. */
export function checkConstraints(
  context: PlacementContext,
  node: SchedulerNode,
): Rejection | undefined {
  const { workload, request } = context;
  const placement = workload.spec.availability.placement;
  if (!node.schedulable) return { kind: 'unschedulable' };
  if (context.exclude.has(node.name)) return { kind: 'excluded' };
  // Failover and switchover move the workload away; its current node is the one being left.
  if (request.purpose !== 'initial' && workload.node === node.name) return { kind: 'current' };
  // A volume without replicas lives on one node: the workload can run nowhere else.
  const volumeNode = workload.spec.volumes[0]?.node;
  if (volumeNode !== undefined && volumeNode !== node.name)
    return { kind: 'volume', node: volumeNode };
  if (workload.inSync !== undefined && !workload.inSync.includes(node.name))
    return { kind: 'outOfSync' };
  const missing = Object.entries(placement.labels)
    .filter(([key, value]) => node.labels[key] !== value)
    .map(([key, value]) => `${key}=${value}`);
  if (missing.length > 0) return { kind: 'labels', missing };
  if (placement.sites.length > 0 && !placement.sites.includes(node.site)) return { kind: 'site' };
  const conflicts = antiAffineOn(context, node.name);
  if (conflicts.length > 0) return { kind: 'antiAffinity', workloads: conflicts };
  return undefined;
}

/**
 * Workloads on the node that this workload must not share it with. Anti-affinity is symmetric:
 * either side naming the other is enough, so one spec cannot be defeated by the other's omission.
 */
export function antiAffineOn(context: PlacementContext, node: string): string[] {
  const { workload } = context;
  const ownList = workload.spec.availability.placement.antiAffinity;
  // Most workloads take part in no anti-affinity at all: answer without looking at the node.
  if (ownList.length === 0 && !indexOf(context.snapshot.workloads).avoided.has(workload.name))
    return [];
  const avoids = new Set(ownList);
  return workloadsOn(context.snapshot, node, context.self)
    .filter(
      (other) =>
        avoids.has(other.name) ||
        other.spec.availability.placement.antiAffinity.includes(workload.name),
    )
    .map((other) => other.name)
    .sort(compareNames);
}

/** All constraints, capacity last, without preemption. */
export function judge(context: PlacementContext, node: SchedulerNode): Verdict {
  const rejection = checkConstraints(context, node);
  if (rejection !== undefined) return { ok: false, rejection };
  const free = freeOn(context.snapshot, node, context.self);
  if (!covers(free, context.demand)) return { ok: false, rejection: { kind: 'capacity', free } };
  return { ok: true, freeAfter: subtract(free, context.demand) };
}

/** Code-point order, so the choice does not depend on the host's locale. */
export function compareNames(a: string, b: string): number {
  if (a < b) return -1;
  return a > b ? 1 : 0;
}
