// Tests of preemption (lowest priority first, never equal or higher, fewest evictions chosen), of
// the reasons given when nothing fits, and of planning several placements at once.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  freeCapacity,
  place,
  planInitial,
  type SchedulerNode,
  type SchedulerSnapshot,
} from './place.js';
import { failover, initial, node, ok, runTable, spare, workload } from './test-support.js';

describe('place: preemption', () => {
  const full = (name: string): SchedulerNode =>
    node(name, { capacity: { cpu: 4, memoryMiB: 4096 } });
  const big = (name: string, onto: string | null, priority: number, memoryMiB = 2048) =>
    workload(name, onto, { priority, memoryMiB, cpu: 1 });
  runTable([
    {
      name: 'evicts the lowest priority first, only as many as needed',
      snapshot: {
        nodes: [full('n1')],
        workloads: [big('db', null, 500), big('mid', 'n1', 200), big('low', 'n1', 100)],
      },
      request: initial('db'),
      expect: ok('n1', ['low']),
    },
    {
      name: 'evicts several, lowest priority first, until it fits',
      snapshot: {
        nodes: [full('n1')],
        workloads: [big('db', null, 500, 4096), big('mid', 'n1', 200), big('low', 'n1', 100)],
      },
      request: initial('db'),
      expect: ok('n1', ['low', 'mid']),
    },
    {
      name: 'among equal priorities, the larger workload goes first, then by name',
      snapshot: {
        nodes: [full('n1')],
        workloads: [
          big('db', null, 500, 2048),
          big('b-small', 'n1', 100, 1024),
          big('c-big', 'n1', 100, 2048),
          big('a-small', 'n1', 100, 1024),
        ],
      },
      request: initial('db'),
      expect: ok('n1', ['c-big']),
    },
    {
      name: 'never evicts equal priority',
      snapshot: {
        nodes: [full('n1')],
        workloads: [big('db', null, 500, 4096), big('peer', 'n1', 500)],
      },
      request: initial('db'),
      expect:
        /short of free capacity even after evicting lower-priority workloads \(n1 has 3 CPUs and 2048 MiB free\)/,
    },
    {
      name: 'never evicts higher priority',
      snapshot: {
        nodes: [full('n1')],
        workloads: [big('db', null, 500, 4096), big('low', 'n1', 100), big('top', 'n1', 900)],
      },
      request: initial('db'),
      expect: /short of free capacity/,
    },
    {
      name: 'the node needing the fewest evictions is chosen',
      snapshot: {
        nodes: [full('n1'), full('n2')],
        workloads: [
          big('db', null, 500, 4096),
          big('x1', 'n1', 10, 2048),
          big('x2', 'n1', 10, 2048),
          big('y', 'n2', 400, 4096),
        ],
      },
      request: initial('db'),
      expect: ok('n2', ['y']),
    },
    {
      name: 'equal evictions: the lowest sum of evicted priorities wins',
      snapshot: {
        nodes: [full('n1'), full('n2')],
        workloads: [
          big('db', null, 500, 4096),
          big('x', 'n1', 300, 4096),
          big('y', 'n2', 200, 4096),
        ],
      },
      request: initial('db'),
      expect: ok('n2', ['y']),
    },
    {
      name: 'equal evictions and priorities: the ranking decides (a spare first for failover)',
      snapshot: {
        nodes: [full('n0'), full('n1'), spare('s1')],
        workloads: [
          big('db', 'n0', 500, 4096),
          big('x', 'n1', 200, 4096),
          big('y', 's1', 200, 4096),
        ],
      },
      request: failover('db', 'n0'),
      expect: ok('s1', ['y']),
    },
    {
      name: 'no preemption while some node fits as it is, even a spare for initial placement',
      snapshot: {
        nodes: [full('n1'), spare('s1')],
        workloads: [big('db', null, 500, 4096), big('low', 'n1', 0)],
      },
      request: initial('db'),
      expect: ok('s1'),
    },
    {
      name: 'a node ruled out by anti-affinity is not made room on',
      snapshot: {
        nodes: [full('n1')],
        workloads: [
          workload('db', null, { priority: 500, memoryMiB: 4096, antiAffinity: ['low'] }),
          big('low', 'n1', 0),
        ],
      },
      request: initial('db'),
      expect: /anti-affinity with db \(n1 runs low\)/,
    },
  ]);
});

describe('place: reasons count the nodes ruled out per constraint', () => {
  it('names each constraint, its count and its nodes', () => {
    const snapshot: SchedulerSnapshot = {
      nodes: [
        node('n1', { schedulable: false }),
        node('n2', { labels: { class: 'gpu' } }),
        node('n3'),
        node('n4', { labels: { class: 'gpu' }, site: 'west' }),
        node('n5', { labels: { class: 'gpu' } }),
        node('n6', { labels: { class: 'gpu' } }),
        node('n7', { labels: { class: 'gpu' }, capacity: { cpu: 1, memoryMiB: 512 } }),
      ],
      workloads: [
        workload('ml', 'n2', { cpu: 2, labels: { class: 'gpu' }, sites: ['east'] }),
        workload('rival', 'n6', { antiAffinity: ['ml'] }),
      ],
    };
    const decision = place(snapshot, {
      workload: 'ml',
      purpose: 'failover',
      exclude: ['n5'],
    });
    assert.deepEqual(decision, {
      ok: false,
      reason:
        'no node can take ml (needs 2 CPUs and 1024 MiB, priority 100): 7 nodes checked: ' +
        '1 down or in maintenance (n1); 1 excluded by the request (n5); ' +
        '1 its current node, which it is leaving (n2); 1 without labels class=gpu (n3); ' +
        '1 outside sites east (n4); 1 running workloads in anti-affinity with ml (n6 runs rival); ' +
        '1 short of free capacity even after evicting lower-priority workloads ' +
        '(n7 has 1 CPU and 512 MiB free)',
    });
  });

  it('lists at most five nodes per constraint and counts the rest', () => {
    const nodes = ['a', 'b', 'c', 'd', 'e', 'f', 'g'].map((n) => node(n, { schedulable: false }));
    const decision = place({ nodes, workloads: [workload('kv', null)] }, initial('kv'));
    assert.ok(!decision.ok);
    assert.match(decision.reason, /7 down or in maintenance \(a, b, c, d, e, and 2 more\)$/);
  });
});

describe('planInitial and freeCapacity', () => {
  it('places by descending priority, then name, accounting for capacity taken', () => {
    const snapshot: SchedulerSnapshot = {
      nodes: [node('n1', { capacity: { cpu: 4, memoryMiB: 3072 } }), spare('s1')],
      workloads: [
        workload('b', null, { priority: 100 }),
        workload('a', null, { priority: 100 }),
        workload('top', null, { priority: 900, memoryMiB: 2048 }),
      ],
    };
    const before = structuredClone(snapshot);
    const plan = planInitial(snapshot, ['b', 'a', 'top', 'ghost']);
    assert.deepEqual(
      plan.map((p) => [p.workload, p.decision.ok ? p.decision.node : 'none']),
      [
        ['top', 'n1'],
        ['a', 'n1'],
        ['b', 's1'],
        ['ghost', 'none'],
      ],
    );
    assert.deepEqual(snapshot, before, 'the caller snapshot is not changed');
  });

  it('applies preemptions so that later placements see the freed room', () => {
    const snapshot: SchedulerSnapshot = {
      nodes: [node('n1', { capacity: { cpu: 4, memoryMiB: 2048 } })],
      workloads: [
        workload('low', 'n1', { priority: 0, memoryMiB: 2048 }),
        workload('high', null, { priority: 500, memoryMiB: 1024 }),
        workload('mid', null, { priority: 200, memoryMiB: 1024 }),
      ],
    };
    assert.deepEqual(planInitial(snapshot, ['mid', 'high']), [
      { workload: 'high', decision: ok('n1', ['low']) },
      { workload: 'mid', decision: ok('n1') },
    ]);
  });

  it('reports free capacity, optionally without some workloads', () => {
    const snapshot: SchedulerSnapshot = {
      nodes: [node('n1', { capacity: { cpu: 1, memoryMiB: 1024 } })],
      workloads: [
        workload('a', 'n1', { cpu: 0.1, memoryMiB: 256 }),
        workload('b', 'n1', { cpu: 0.2, memoryMiB: 256 }),
      ],
    };
    assert.deepEqual(freeCapacity(snapshot, 'n1'), { cpu: 0.7, memoryMiB: 512 });
    assert.deepEqual(freeCapacity(snapshot, 'n1', { without: ['b'] }), {
      cpu: 0.9,
      memoryMiB: 768,
    });
    assert.throws(() => freeCapacity(snapshot, 'n9'), { code: 'CONTINUUM_ERR_NODE_NOT_FOUND' });
  });
});
