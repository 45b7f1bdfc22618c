// Tests of the placement rules, one small table per rule: class order (spares first for failover
// and switchover, production first for initial), the ranking within a class, each constraint
// (labels, sites, anti-affinity both ways, capacity, exclude, schedulable, current node) and a
// chosen switchover target. Preemption, reasons and planInitial: place-preemption.test.ts.
import { describe } from 'node:test';
import { failover, initial, node, ok, runTable, spare, workload } from './test-support.js';
import type { PlacementRequest } from './place.js';

describe('place: node classes and ranking', () => {
  runTable([
    {
      name: 'failover goes to a spare before a roomier production node (N+1)',
      snapshot: {
        nodes: [node('n1'), node('n2', { capacity: { cpu: 64, memoryMiB: 65536 } }), spare('s1')],
        workloads: [workload('kv', 'n1')],
      },
      request: failover('kv', 'n1'),
      expect: ok('s1'),
    },
    {
      name: 'switchover goes to a spare first too',
      snapshot: { nodes: [node('n1'), node('n2'), spare('s1')], workloads: [workload('kv', 'n1')] },
      request: { workload: 'kv', purpose: 'switchover' },
      expect: ok('s1'),
    },
    {
      name: 'failover falls back to production when no spare fits',
      snapshot: {
        nodes: [node('n1'), node('n2'), spare('s1', { capacity: { cpu: 0.5, memoryMiB: 4096 } })],
        workloads: [workload('kv', 'n1')],
      },
      request: failover('kv', 'n1'),
      expect: ok('n2'),
    },
    {
      name: 'initial placement keeps spares free while production fits',
      snapshot: {
        nodes: [spare('s1', { capacity: { cpu: 64, memoryMiB: 65536 } }), node('n1')],
        workloads: [workload('kv', null)],
      },
      request: initial('kv'),
      expect: ok('n1'),
    },
    {
      name: 'initial placement uses a spare when no production node fits',
      snapshot: {
        nodes: [node('n1', { capacity: { cpu: 4, memoryMiB: 512 } }), spare('s1')],
        workloads: [workload('kv', null)],
      },
      request: initial('kv'),
      expect: ok('s1'),
    },
    {
      name: 'within a class, most free memory after placement wins',
      snapshot: {
        nodes: [node('n1'), node('n2', { capacity: { cpu: 2, memoryMiB: 8192 } })],
        workloads: [workload('kv', null)],
      },
      request: initial('kv'),
      expect: ok('n2'),
    },
    {
      name: 'equal memory: most free CPU wins',
      snapshot: {
        nodes: [node('n1'), node('n2', { capacity: { cpu: 8, memoryMiB: 4096 } })],
        workloads: [workload('kv', null)],
      },
      request: initial('kv'),
      expect: ok('n2'),
    },
    {
      name: 'equal room: the node name decides',
      snapshot: { nodes: [node('n2'), node('n1'), node('n3')], workloads: [workload('kv', null)] },
      request: initial('kv'),
      expect: ok('n1'),
    },
    {
      name: 'capacity used by other workloads counts against a node',
      snapshot: {
        nodes: [node('n1'), node('n2')],
        workloads: [workload('kv', null), workload('big', 'n1', { memoryMiB: 2048 })],
      },
      request: initial('kv'),
      expect: ok('n2'),
    },
  ]);
});

describe('place: constraints', () => {
  const two = [
    node('n1', { site: 'east' }),
    node('n2', { site: 'west', labels: { class: 'gpu' } }),
  ];
  runTable([
    {
      name: 'labels: only a node with every label qualifies',
      snapshot: { nodes: two, workloads: [workload('ml', null, { labels: { class: 'gpu' } })] },
      request: initial('ml'),
      expect: ok('n2'),
    },
    {
      name: 'labels: none matching is named in the reason',
      snapshot: { nodes: two, workloads: [workload('ml', null, { labels: { class: 'tpu' } })] },
      request: initial('ml'),
      expect: /2 without labels class=tpu \(n1, n2\)/,
    },
    {
      name: 'sites: only a node in a listed site qualifies',
      snapshot: { nodes: two, workloads: [workload('kv', null, { sites: ['east'] })] },
      request: initial('kv'),
      expect: ok('n1'),
    },
    {
      name: 'sites: none matching is named in the reason',
      snapshot: { nodes: two, workloads: [workload('kv', null, { sites: ['north', 'south'] })] },
      request: initial('kv'),
      expect: /2 outside sites north, south \(n1, n2\)/,
    },
    {
      name: 'anti-affinity: a node running a workload this one avoids is ruled out',
      snapshot: {
        nodes: two,
        workloads: [workload('a', null, { antiAffinity: ['b'] }), workload('b', 'n2')],
      },
      request: initial('a'),
      expect: ok('n1'),
    },
    {
      name: 'anti-affinity is symmetric: a workload avoiding this one rules its node out',
      snapshot: {
        nodes: two,
        workloads: [workload('a', null), workload('b', 'n2', { antiAffinity: ['a'] })],
      },
      request: initial('a'),
      expect: ok('n1'),
    },
    {
      name: 'anti-affinity: the conflicting workloads are named per node',
      snapshot: {
        nodes: [node('n1')],
        workloads: [
          workload('a', null, { antiAffinity: ['b'], memoryMiB: 0, cpu: 0 }),
          workload('b', 'n1', { memoryMiB: 0, cpu: 0 }),
          workload('c', 'n1', { antiAffinity: ['a'], memoryMiB: 0, cpu: 0 }),
        ],
      },
      request: initial('a'),
      expect: /1 running workloads in anti-affinity with a \(n1 runs b, c\)/,
    },
    {
      name: 'capacity: a node without room is ruled out',
      snapshot: {
        nodes: [node('n1', { capacity: { cpu: 1, memoryMiB: 8192 } }), node('n2')],
        workloads: [workload('kv', null, { cpu: 2 })],
      },
      request: initial('kv'),
      expect: ok('n2'),
    },
    {
      name: 'capacity: fractional CPUs add up exactly (0.1 + 0.2 fits in 0.3)',
      snapshot: {
        nodes: [node('n1', { capacity: { cpu: 0.3, memoryMiB: 4096 } })],
        workloads: [
          workload('a', 'n1', { cpu: 0.1, memoryMiB: 0 }),
          workload('b', null, { cpu: 0.2 }),
        ],
      },
      request: initial('b'),
      expect: ok('n1'),
    },
    {
      name: 'exclude: an excluded node is never chosen',
      snapshot: { nodes: [node('n1'), node('n2')], workloads: [workload('kv', null)] },
      request: { workload: 'kv', purpose: 'initial', exclude: ['n1'] },
      expect: ok('n2'),
    },
    {
      name: 'a node that is down or in maintenance is never chosen',
      snapshot: {
        nodes: [node('n1', { schedulable: false }), node('n2')],
        workloads: [workload('kv', null)],
      },
      request: initial('kv'),
      expect: ok('n2'),
    },
    {
      name: 'failover never picks the current node, even unexcluded',
      snapshot: { nodes: [node('n1')], workloads: [workload('kv', 'n1')] },
      request: { workload: 'kv', purpose: 'failover' },
      expect: /1 its current node, which it is leaving \(n1\)/,
    },
    {
      name: 'initial placement may keep the current node, its own use not counted',
      snapshot: {
        nodes: [node('n1', { capacity: { cpu: 1, memoryMiB: 1024 } })],
        workloads: [workload('kv', 'n1')],
      },
      request: initial('kv'),
      expect: ok('n1'),
    },
    {
      name: 'an unknown workload is refused with its name',
      snapshot: { nodes: [node('n1')], workloads: [] },
      request: initial('ghost'),
      expect: /workload ghost is not known/,
    },
    {
      name: 'an empty cluster says so',
      snapshot: { nodes: [], workloads: [workload('kv', null)] },
      request: initial('kv'),
      expect: /the cluster has no nodes/,
    },
  ]);
});

describe('place: switchover to a chosen node', () => {
  const nodes = [
    node('n1'),
    node('n2', { labels: { class: 'gpu' } }),
    spare('s1', { labels: { class: 'gpu' } }),
    node('n3', { site: 'west', labels: { class: 'gpu' } }),
    node('n4', { schedulable: false, labels: { class: 'gpu' } }),
  ];
  const ml = workload('ml', 'n2', { labels: { class: 'gpu' }, sites: ['east'], priority: 500 });
  const move = (to: string): PlacementRequest => ({
    workload: 'ml',
    purpose: 'switchover',
    preferNode: to,
  });
  runTable([
    {
      name: 'a feasible chosen node is taken over the spare the ranking would pick',
      snapshot: { nodes: [...nodes, node('n5', { labels: { class: 'gpu' } })], workloads: [ml] },
      request: move('n5'),
      expect: ok('n5'),
    },
    {
      name: 'missing labels',
      snapshot: { nodes, workloads: [ml] },
      request: move('n1'),
      expect:
        /^node n1 cannot take ml \(needs 1 CPU and 1024 MiB, priority 500\): it lacks labels class=gpu$/,
    },
    {
      name: 'wrong site',
      snapshot: { nodes, workloads: [ml] },
      request: move('n3'),
      expect: /its site west is not one of east/,
    },
    {
      name: 'down or in maintenance',
      snapshot: { nodes, workloads: [ml] },
      request: move('n4'),
      expect: /n4 .*: it is down or in maintenance/,
    },
    {
      name: 'its current node',
      snapshot: { nodes, workloads: [ml] },
      request: move('n2'),
      expect: /it is the workload's current node/,
    },
    {
      name: 'not enough room, and no preemption for a chosen node',
      snapshot: { nodes, workloads: [ml, workload('low', 's1', { priority: 0, memoryMiB: 4096 })] },
      request: move('s1'),
      expect: /it has only 3 CPUs and 0 MiB free/,
    },
    {
      name: 'an unknown node',
      snapshot: { nodes, workloads: [ml] },
      request: move('n9'),
      expect: /node n9 is not in the cluster/,
    },
  ]);
});
