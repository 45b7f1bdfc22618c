// The scheduler's placement function: `(snapshot, request) -> decision`, pure (CONVENTIONS.md
// item 1). It reads an immutable snapshot and proposes one node, plus the lower-priority workloads
// to evict there if room has to be made; the controller's applier re-checks the proposal against
// the latest state. Rules and their reasons: docs/scheduler.md.
import { compareNames, judge, makeContext, type PlacementContext } from './checks.js';
import { applyMoves, indexOf, type Amount } from './capacity.js';
import { planEvictions, type EvictionPlan } from './preempt.js';
import { explainNode, explainNoFit, type RejectedNode } from './reasons.js';
import type {
  PlacementDecision,
  PlacementPurpose,
  PlacementRequest,
  SchedulerNode,
  SchedulerSnapshot,
} from './types.js';

export { freeCapacity } from './capacity.js';
export type {
  PlacementDecision,
  PlacementPurpose,
  PlacementRequest,
  SchedulerNode,
  SchedulerSnapshot,
  SchedulerWorkload,
} from './types.js';

interface Fit {
  node: SchedulerNode;
  freeAfter: Amount;
}

/**
 * The class a node is ranked in, lower first. Failover and switchover go to the shared spare pool
 * first (N+1: one pool of spares covers many production nodes); initial placement keeps spares
 * free for exactly that, and uses them only when no production node fits.
 */
function classOf(node: SchedulerNode, purpose: PlacementPurpose): number {
  const spareFirst = purpose !== 'initial';
  return (node.role === 'spare') === spareFirst ? 0 : 1;
}

/** Class, then most free memory after placement, then most free CPU, then name. */
function compareFits(purpose: PlacementPurpose): (a: Fit, b: Fit) => number {
  return (a, b) =>
    classOf(a.node, purpose) - classOf(b.node, purpose) ||
    b.freeAfter.memoryMiB - a.freeAfter.memoryMiB ||
    b.freeAfter.milliCpu - a.freeAfter.milliCpu ||
    compareNames(a.node.name, b.node.name);
}

/** Fewest evictions, then the least important ones, then the ranking used without preemption. */
function comparePlans(purpose: PlacementPurpose): (a: EvictionPlan, b: EvictionPlan) => number {
  const byRank = compareFits(purpose);
  return (a, b) =>
    a.evict.length - b.evict.length || a.evictedPrioritySum - b.evictedPrioritySum || byRank(a, b);
}

export function place(snapshot: SchedulerSnapshot, request: PlacementRequest): PlacementDecision {
  const workload = indexOf(snapshot.workloads).byName.get(request.workload);
  if (workload === undefined) {
    return { ok: false, reason: `workload ${request.workload} is not known to the scheduler` };
  }
  const context = makeContext(snapshot, workload, request);
  if (request.preferNode !== undefined) return placeOnChosen(context, request.preferNode);

  const fits: Fit[] = [];
  const rejected: RejectedNode[] = [];
  for (const node of snapshot.nodes) {
    const verdict = judge(context, node);
    if (verdict.ok) fits.push({ node, freeAfter: verdict.freeAfter });
    else rejected.push({ node, rejection: verdict.rejection });
  }
  // The best fit in one pass: sorting every fit for one winner cost more than judging the nodes.
  const rank = compareFits(request.purpose);
  const best = fits.reduce<Fit | undefined>(
    (a, b) => (a === undefined || rank(b, a) < 0 ? b : a),
    undefined,
  );
  if (best !== undefined) return { ok: true, node: best.node.name, preempt: [] };

  // Preemption only now that nothing fits as things stand, and only on nodes that nothing but
  // capacity ruled out.
  const plans: EvictionPlan[] = [];
  for (const { node, rejection } of rejected) {
    if (rejection.kind !== 'capacity') continue;
    const plan = planEvictions(context, node, rejection.free);
    if (plan !== undefined) plans.push(plan);
  }
  const chosen = plans.sort(comparePlans(request.purpose))[0];
  if (chosen !== undefined) {
    return { ok: true, node: chosen.node.name, preempt: chosen.evict.map((w) => w.name) };
  }
  return { ok: false, reason: explainNoFit(context, rejected) };
}

/**
 * A switchover to a node the operator chose. It is taken only if it fits as things stand: the
 * operator asked for that node, not for other work to be evicted from it.
 */
function placeOnChosen(context: PlacementContext, name: string): PlacementDecision {
  const node = context.snapshot.nodes.find((n) => n.name === name);
  if (node === undefined) {
    return { ok: false, reason: `node ${name} is not in the cluster` };
  }
  const verdict = judge(context, node);
  if (verdict.ok) return { ok: true, node: node.name, preempt: [] };
  return { ok: false, reason: explainNode(context, { node, rejection: verdict.rejection }) };
}

export interface PlannedPlacement {
  workload: string;
  decision: PlacementDecision;
}

/**
 * Places several pending workloads one after another, most important first (descending priority,
 * then name), so that the important ones get the first pick and preemption can only run downhill.
 * Each decision is applied to a private copy of the snapshot before the next is made, so capacity
 * taken by one is not offered to the next; the caller's snapshot is never changed. Decisions come
 * back in the order they were made.
 */
export function planInitial(snapshot: SchedulerSnapshot, names: string[]): PlannedPlacement[] {
  // A private working copy: the caller's snapshot is never changed.
  const working: SchedulerSnapshot = {
    nodes: snapshot.nodes,
    workloads: snapshot.workloads.map((w) => ({ ...w })),
  };
  const priorityOf = (name: string): number =>
    working.workloads.find((w) => w.name === name)?.spec.availability.priority ?? -1;
  const ordered = [...new Set(names)].sort(
    (a, b) => priorityOf(b) - priorityOf(a) || compareNames(a, b),
  );
  return ordered.map((name) => {
    const decision = place(working, { workload: name, purpose: 'initial' });
    if (decision.ok) {
      const moves = new Map<string, string | null>(
        decision.preempt.map((victim) => [victim, null]),
      );
      moves.set(name, decision.node);
      applyMoves(working, moves);
    }
    return { workload: name, decision };
  });
}
