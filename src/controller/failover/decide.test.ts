// Tests of the pure failover decisions: liveness from heartbeats, failover to spares first,
// remediation-requested failover avoiding the node, maintenance eviction, and no move while
// everything is healthy (including right after a controller restart).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { InstanceRecord, NodeRecord, WorkloadRecord } from '../../core/model.js';
import { workloadSpecSchema } from '../../core/spec.js';
import { defaultControllerConfig } from '../config.js';
import { decide, type DecideSnapshot } from './decide.js';

const node = (
  name: string,
  role: 'production' | 'spare' = 'production',
  extra: Partial<NodeRecord> = {},
): NodeRecord => ({
  name,
  site: 'a',
  role,
  capacity: { cpu: 4, memoryMiB: 4096 },
  labels: {},
  address: '127.0.0.1',
  declared: true,
  liveness: 'up',
  livenessChangedAt: 0,
  maintenance: false,
  ...extra,
});

const workload = (
  name: string,
  owner: string | null,
  extra: Partial<WorkloadRecord> = {},
): WorkloadRecord => ({
  name,
  spec: workloadSpecSchema.parse({
    name,
    driver: 'process',
    process: { command: ['true'] },
    resources: { cpu: 1, memoryMiB: 256 },
  }),
  epoch: owner === null ? 0 : 1,
  node: owner,
  restartNonce: 0,
  avoid: [],
  updatedAt: 0,
  ...extra,
});

const instance = (w: string, n: string, extra: Partial<InstanceRecord> = {}): InstanceRecord => ({
  workload: w,
  node: n,
  epoch: 1,
  state: 'healthy',
  ports: {},
  restarts: 0,
  restartNonce: 0,
  failoverRequested: false,
  probes: {},
  reportedAt: 0,
  stateSince: 0,
  ...extra,
});

function snapshot(now: number, parts: Partial<DecideSnapshot>): DecideSnapshot {
  return {
    now,
    startedAt: 0,
    nodes: [],
    workloads: [],
    instances: [],
    lastHeartbeatAt: {},
    ...parts,
  };
}

const config = defaultControllerConfig;

describe('decide', () => {
  it('moves nothing while every node heartbeats', () => {
    const s = snapshot(10_000, {
      nodes: [node('n1'), node('n2'), node('s1', 'spare')],
      workloads: [workload('kv', 'n1')],
      instances: [instance('kv', 'n1')],
      lastHeartbeatAt: { n1: 9_900, n2: 9_950, s1: 9_990 },
    });
    assert.deepEqual(decide(s, config), []);
  });

  it('gives every node a grace period after a controller restart', () => {
    const s = snapshot(10_000 + config.suspectAfterMs - 1, {
      startedAt: 10_000,
      nodes: [node('n1'), node('s1', 'spare')],
      workloads: [workload('kv', 'n1')],
    });
    assert.deepEqual(decide(s, config), []);
  });

  it('marks a silent node suspect, then down, and fails its workload over to a spare first', () => {
    const base = {
      nodes: [node('n1'), node('n2'), node('s1', 'spare')],
      workloads: [workload('kv', 'n1')],
      instances: [instance('kv', 'n1')],
    };
    const suspect = decide(
      snapshot(1_000 + config.suspectAfterMs, {
        ...base,
        lastHeartbeatAt: { n1: 1_000, n2: 1_500, s1: 1_500 },
      }),
      config,
    );
    assert.deepEqual(suspect, [
      { type: 'liveness', node: 'n1', from: 'up', to: 'suspect', lastHeartbeatAt: 1_000 },
    ]);
    const down = decide(
      snapshot(1_000 + config.downAfterMs, {
        ...base,
        lastHeartbeatAt: { n1: 1_000, n2: 2_100, s1: 2_100 },
      }),
      config,
    );
    assert.equal(down[0]?.type, 'liveness');
    assert.deepEqual(down[1], {
      type: 'move',
      workload: 'kv',
      kind: 'failover',
      fromNode: 'n1',
      toNode: 's1',
      reason: 'node n1 is down',
      failedAt: 1_000,
    });
  });

  it('releases a lost node claim (raising the epoch) even when no node can take the workload', () => {
    const s = snapshot(5_000, {
      nodes: [node('n1', 'production', { liveness: 'down' })],
      workloads: [workload('kv', 'n1')],
      lastHeartbeatAt: { n1: 1_000 },
    });
    const moves = decide(s, config).filter((d) => d.type === 'move');
    assert.deepEqual(
      moves.map((d) => d.type === 'move' && d.toNode),
      [null],
    );
  });

  it('fails over when the remediation ladder gives up, and avoids that node', () => {
    const s = snapshot(5_000, {
      nodes: [node('n1'), node('n2')],
      workloads: [workload('kv', 'n1')],
      instances: [
        instance('kv', 'n1', {
          state: 'failed',
          failoverRequested: true,
          stateSince: 4_900,
          message: 'probe failed',
        }),
      ],
      lastHeartbeatAt: { n1: 4_990, n2: 4_990 },
    });
    const [move] = decide(s, config);
    assert.equal(move?.type, 'move');
    assert.equal(move.type === 'move' && move.toNode, 'n2');
    assert.equal(move.type === 'move' && move.avoidNode, 'n1');
  });

  it('restarts in place when the ladder gave up but no other node fits', () => {
    const s = snapshot(5_000, {
      nodes: [node('n1')],
      workloads: [workload('kv', 'n1')],
      instances: [instance('kv', 'n1', { state: 'failed', failoverRequested: true })],
      lastHeartbeatAt: { n1: 4_990 },
    });
    assert.deepEqual(
      decide(s, config).map((d) => d.type),
      ['blocked', 'restart'],
    );
  });

  it('places an unplaced workload on a node it avoids only when no other node can take it', () => {
    const avoid = [{ node: 'n1', until: 60_000 }];
    const both = snapshot(5_000, {
      nodes: [node('n1'), node('n2')],
      workloads: [workload('kv', null, { avoid })],
      lastHeartbeatAt: { n1: 4_990, n2: 4_990 },
    });
    const [elsewhere] = decide(both, config);
    assert.equal(elsewhere?.type === 'move' && elsewhere.toNode, 'n2');
    const only = snapshot(5_000, {
      nodes: [node('n1'), node('n2')],
      workloads: [workload('kv', null, { avoid })],
      lastHeartbeatAt: { n1: 4_990 },
    });
    const [fallback] = decide(only, config).filter((d) => d.type === 'move');
    assert.equal(fallback?.type === 'move' && fallback.toNode, 'n1');
    assert.match(fallback?.type === 'move' ? fallback.reason : '', /a node it avoids \(n1\)/);
  });

  it('evicts workloads from a node in maintenance to a production node', () => {
    const s = snapshot(5_000, {
      nodes: [node('n1', 'production', { maintenance: true }), node('n2'), node('s1', 'spare')],
      workloads: [workload('kv', 'n1')],
      lastHeartbeatAt: { n1: 4_990, n2: 4_990, s1: 4_990 },
    });
    const [move] = decide(s, config);
    assert.equal(move?.type === 'move' && move.kind, 'eviction');
    assert.equal(move?.type === 'move' && move.toNode, 's1');
  });

  it('places a new workload on production before spares', () => {
    const s = snapshot(5_000, {
      nodes: [node('s1', 'spare'), node('n1')],
      workloads: [workload('kv', null)],
      lastHeartbeatAt: { n1: 4_990, s1: 4_990 },
    });
    const [move] = decide(s, config);
    assert.equal(move?.type === 'move' && move.toNode, 'n1');
  });
});
