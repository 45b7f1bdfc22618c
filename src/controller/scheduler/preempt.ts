// Preemption: making room on a node by evicting workloads of strictly lower priority. Only ever
// tried when no node fits without it, and never against equal or higher priority, so a workload can
// only be displaced by one that the operator has declared more important.
import { add, covers, demandOf, subtract, workloadsOn, type Amount } from './capacity.js';
import { compareNames, type PlacementContext } from './checks.js';
import type { SchedulerNode, SchedulerWorkload } from './types.js';

export interface EvictionPlan {
  node: SchedulerNode;
  /** In eviction order: lowest priority first. */
  evict: SchedulerWorkload[];
  evictedPrioritySum: number;
  /** Free capacity once the evictions are done and the workload is placed. */
  freeAfter: Amount;
}

const priorityOf = (workload: SchedulerWorkload): number => workload.spec.availability.priority;

/**
 * Eviction order: lowest priority first; among equals the larger workload first, since it frees
 * more with one eviction, then by name so the order is deterministic.
 */
export function compareVictims(a: SchedulerWorkload, b: SchedulerWorkload): number {
  const da = demandOf(a);
  const db = demandOf(b);
  return (
    priorityOf(a) - priorityOf(b) ||
    db.memoryMiB - da.memoryMiB ||
    db.milliCpu - da.milliCpu ||
    compareNames(a.name, b.name)
  );
}

/**
 * Evicts lower-priority workloads from the node in order until the workload fits. Undefined when
 * even evicting all of them leaves too little room. The node must already pass every constraint
 * but capacity; evicting only shrinks the set of neighbours, so anti-affinity still holds after.
 */
export function planEvictions(
  context: PlacementContext,
  node: SchedulerNode,
  free: Amount,
): EvictionPlan | undefined {
  const victims = workloadsOn(context.snapshot, node.name, context.self)
    .filter((w) => priorityOf(w) < context.priority)
    .sort(compareVictims);
  const evict: SchedulerWorkload[] = [];
  let available = free;
  for (const victim of victims) {
    if (covers(available, context.demand)) break;
    evict.push(victim);
    available = add(available, demandOf(victim));
  }
  if (!covers(available, context.demand)) return undefined;
  return {
    node,
    evict,
    evictedPrioritySum: evict.reduce((sum, w) => sum + priorityOf(w), 0),
    freeAfter: subtract(available, context.demand),
  };
}
