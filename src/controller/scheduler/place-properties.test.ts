// Properties of the placement function over random clusters (fast-check): a placement satisfies
// every constraint once its preemptions are done, the function is deterministic and leaves its
// input alone, it preempts only when nothing fits as things stand, and planInitial never
// overcommits a node. The constraints are restated here independently of the implementation, in
// the words of docs/scheduler.md, so a bug shared by both cannot hide.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { workloadSpecSchema } from '../../core/spec.js';
import {
  place,
  planInitial,
  type PlacementRequest,
  type SchedulerNode,
  type SchedulerSnapshot,
  type SchedulerWorkload,
} from './place.js';

const nodeNames = ['n0', 'n1', 'n2', 'n3', 'n4', 'n5'];
const workloadNames = ['w0', 'w1', 'w2', 'w3', 'w4', 'w5', 'w6', 'w7'];
const labelsArbitrary = fc.record(
  { class: fc.constantFrom('gpu', 'cpu'), disk: fc.constantFrom('ssd', 'hdd') },
  { requiredKeys: [] },
);
// CPUs in halves: exact in binary, so the independent checker below can add them with plain floats.
const cpuArbitrary = (max: number) => fc.integer({ min: 0, max: max * 2 }).map((n) => n / 2);

/** `value` three times in four, otherwise something from `arbitrary`. */
const rarely = <T>(arbitrary: fc.Arbitrary<T>, value: T): fc.Arbitrary<T> =>
  fc.oneof({ weight: 3, arbitrary: fc.constant(value) }, { weight: 1, arbitrary });

const nodeArbitrary = (name: string): fc.Arbitrary<SchedulerNode> =>
  fc.record({
    name: fc.constant(name),
    site: fc.constantFrom('east', 'west'),
    role: fc.constantFrom('production' as const, 'spare' as const),
    capacity: fc.record({
      cpu: cpuArbitrary(8).map((c) => Math.max(c, 0.5)),
      memoryMiB: fc.integer({ min: 1, max: 16 }).map((n) => n * 512),
    }),
    labels: labelsArbitrary,
    // Mostly schedulable, so that most runs have somewhere to go.
    schedulable: fc.integer({ min: 0, max: 4 }).map((n) => n > 0),
  });

const workloadArbitrary = (name: string, nodes: string[]): fc.Arbitrary<SchedulerWorkload> =>
  fc
    .record({
      cpu: cpuArbitrary(3),
      memoryMiB: fc.integer({ min: 0, max: 8 }).map((n) => n * 512),
      priority: fc.constantFrom(0, 100, 100, 500, 1000),
      // Constraints are the exception, so that enough runs place (and preempt) at all.
      labels: rarely(labelsArbitrary, {}),
      antiAffinity: rarely(
        fc.subarray(
          workloadNames.filter((w) => w !== name),
          { minLength: 1, maxLength: 2 },
        ),
        [],
      ),
      sites: rarely(fc.subarray(['east', 'west'], { minLength: 1 }), []),
      node: fc.option(fc.constantFrom(...nodes), { nil: null }),
    })
    .map((w) => ({
      name,
      node: w.node,
      spec: workloadSpecSchema.parse({
        name,
        driver: 'process',
        process: { command: ['true'] },
        resources: { cpu: w.cpu, memoryMiB: w.memoryMiB },
        availability: {
          priority: w.priority,
          placement: { labels: w.labels, antiAffinity: w.antiAffinity, sites: w.sites },
        },
      }),
    }));

const snapshotArbitrary: fc.Arbitrary<SchedulerSnapshot> = fc
  .tuple(fc.integer({ min: 1, max: nodeNames.length }), fc.integer({ min: 2, max: 8 }))
  .chain(([nodeCount, workloadCount]) => {
    const names = nodeNames.slice(0, nodeCount);
    return fc.record({
      nodes: fc.tuple(...names.map(nodeArbitrary)),
      workloads: fc.tuple(
        ...workloadNames.slice(0, workloadCount).map((w) => workloadArbitrary(w, names)),
      ),
    });
  });

function requestArbitrary(
  snapshot: SchedulerSnapshot,
  withChosenNode: boolean,
): fc.Arbitrary<PlacementRequest> {
  const names = snapshot.nodes.map((n) => n.name);
  const base = fc.record({
    workload: fc.constantFrom(...snapshot.workloads.map((w) => w.name)),
    purpose: fc.constantFrom('initial' as const, 'failover' as const, 'switchover' as const),
    exclude: rarely(fc.subarray(names, { maxLength: Math.min(2, names.length) }), []),
  });
  if (!withChosenNode) return base;
  return fc
    .tuple(base, rarely(fc.constantFrom<string | undefined>(...names), undefined))
    .map(([request, preferNode]) =>
      preferNode === undefined ? request : { ...request, purpose: 'switchover', preferNode },
    );
}

/**
 * A full cluster: every node up, small, and every workload already placed, so that requests
 * often need preemption. Random clusters alone reach it in only a few runs in a hundred.
 */
const crowdedArbitrary: fc.Arbitrary<SchedulerSnapshot> = snapshotArbitrary.map((snapshot) => ({
  nodes: snapshot.nodes.map((n) => ({
    ...n,
    schedulable: true,
    capacity: { cpu: Math.min(n.capacity.cpu, 4), memoryMiB: Math.min(n.capacity.memoryMiB, 4096) },
  })),
  workloads: snapshot.workloads.map((w, i) => ({
    ...w,
    node: w.node ?? snapshot.nodes[i % snapshot.nodes.length]!.name,
  })),
}));
const clusterArbitrary = fc.oneof(snapshotArbitrary, crowdedArbitrary);

/** A cluster and a request, sometimes a switchover to a chosen node. */
const scenario = clusterArbitrary.chain((snapshot) =>
  fc.tuple(fc.constant(snapshot), requestArbitrary(snapshot, true)),
);
/** A cluster and a request for the scheduler to choose any node. */
const openScenario = clusterArbitrary.chain((snapshot) =>
  fc.tuple(fc.constant(snapshot), requestArbitrary(snapshot, false)),
);

/** Every constraint of docs/scheduler.md for `target`, with the `evicted` workloads gone. */
function violations(
  snapshot: SchedulerSnapshot,
  request: PlacementRequest,
  target: string,
  evicted: string[],
): string[] {
  const me = snapshot.workloads.find((w) => w.name === request.workload)!;
  const node = snapshot.nodes.find((n) => n.name === target)!;
  const placement = me.spec.availability.placement;
  const neighbours = snapshot.workloads.filter(
    (w) => w.node === target && w.name !== me.name && !evicted.includes(w.name),
  );
  const found: string[] = [];
  if (!node.schedulable) found.push('unschedulable');
  if ((request.exclude ?? []).includes(target)) found.push('excluded');
  if (request.purpose !== 'initial' && me.node === target) found.push('current node');
  for (const [key, value] of Object.entries(placement.labels)) {
    if (node.labels[key] !== value) found.push(`label ${key}`);
  }
  if (placement.sites.length > 0 && !placement.sites.includes(node.site)) found.push('site');
  for (const other of neighbours) {
    if (placement.antiAffinity.includes(other.name)) found.push(`avoids ${other.name}`);
    if (other.spec.availability.placement.antiAffinity.includes(me.name)) {
      found.push(`avoided by ${other.name}`);
    }
  }
  const usedCpu = neighbours.reduce((sum, w) => sum + w.spec.resources.cpu, 0);
  const usedMemory = neighbours.reduce((sum, w) => sum + w.spec.resources.memoryMiB, 0);
  if (usedCpu + me.spec.resources.cpu > node.capacity.cpu) found.push('cpu');
  if (usedMemory + me.spec.resources.memoryMiB > node.capacity.memoryMiB) found.push('memory');
  return found;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

describe('place: properties', () => {
  it('a placement satisfies every constraint once its preemptions are done', () => {
    fc.assert(
      fc.property(scenario, ([snapshot, request]) => {
        const decision = place(snapshot, request);
        if (!decision.ok) return;
        assert.deepEqual(violations(snapshot, request, decision.node, decision.preempt), []);
        const me = snapshot.workloads.find((w) => w.name === request.workload)!;
        let previous = -1;
        for (const name of decision.preempt) {
          const victim = snapshot.workloads.find((w) => w.name === name)!;
          const priority = victim.spec.availability.priority;
          assert.equal(victim.node, decision.node, `${name} is evicted from the chosen node`);
          assert.ok(priority < me.spec.availability.priority, `${name} has lower priority`);
          assert.ok(priority >= previous, 'evictions come lowest priority first');
          previous = priority;
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('is deterministic and does not change its input', () => {
    fc.assert(
      fc.property(scenario, ([snapshot, request]) => {
        const before = structuredClone(snapshot);
        const first = place(deepFreeze(snapshot), deepFreeze(request));
        assert.deepEqual(place(snapshot, request), first);
        assert.deepEqual(place(structuredClone(before), structuredClone(request)), first);
        // Cloned again because fast-check builds records without a prototype, which strict
        // deepEqual would count as a difference from the plain-object clone.
        assert.deepEqual(structuredClone(snapshot), before);
      }),
      { numRuns: 300 },
    );
  });

  it('proposes no preemption while some node fits as things stand', () => {
    fc.assert(
      fc.property(openScenario, ([snapshot, request]) => {
        const fitsAsIs = snapshot.nodes.some(
          (n) => violations(snapshot, request, n.name, []).length === 0,
        );
        const decision = place(snapshot, request);
        if (fitsAsIs) assert.deepEqual(decision.ok && decision.preempt, []);
        else if (decision.ok) assert.ok(decision.preempt.length > 0);
      }),
      { numRuns: 1000 },
    );
  });

  it('planInitial never overcommits a node', () => {
    const pending = snapshotArbitrary.map((snapshot) => ({
      nodes: snapshot.nodes,
      // Start from an empty cluster so that every unit in use was placed by the plan.
      workloads: snapshot.workloads.map((w) => ({ ...w, node: null })),
    }));
    fc.assert(
      fc.property(pending, (snapshot) => {
        const plan = planInitial(
          snapshot,
          snapshot.workloads.map((w) => w.name),
        );
        const owner = new Map<string, string | null>();
        for (const { workload, decision } of plan) {
          if (!decision.ok) continue;
          for (const victim of decision.preempt) owner.set(victim, null);
          owner.set(workload, decision.node);
        }
        for (const node of snapshot.nodes) {
          const on = snapshot.workloads.filter((w) => owner.get(w.name) === node.name);
          const cpu = on.reduce((sum, w) => sum + w.spec.resources.cpu, 0);
          const memory = on.reduce((sum, w) => sum + w.spec.resources.memoryMiB, 0);
          assert.ok(cpu <= node.capacity.cpu, `${node.name} CPU ${cpu} > ${node.capacity.cpu}`);
          assert.ok(memory <= node.capacity.memoryMiB, `${node.name} memory overcommitted`);
        }
      }),
      { numRuns: 300 },
    );
  });
});
