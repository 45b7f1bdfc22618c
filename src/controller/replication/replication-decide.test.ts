// The controller's replicated-volume decisions: copies placed at first placement, failover only to
// a node holding an in-sync copy (the down owner leaves the ISR in the same write), redundancy
// restored on a spare, surplus copies released, and what a primary's report changes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { NodeRecord, WorkloadRecord } from '../../core/model.js';
import { workloadSpecSchema } from '../../core/spec.js';
import { defaultControllerConfig } from '../config.js';
import { decide, type Decision } from '../failover/decide.js';
import { dutiesByNode, recordsAfterReport } from './duties.js';

const node = (name: string, role: 'production' | 'spare' = 'production'): NodeRecord => ({
  name,
  site: name.startsWith('b') ? 'b' : 'a',
  role,
  capacity: { cpu: 4, memoryMiB: 4096 },
  labels: {},
  address: '127.0.0.1',
  replicationAddress: `${name}:7000`,
  declared: true,
  liveness: 'up',
  livenessChangedAt: 0,
  maintenance: false,
});

const kv = (owner: string | null, extra: Partial<WorkloadRecord> = {}): WorkloadRecord => ({
  name: 'kv',
  spec: workloadSpecSchema.parse({
    name: 'kv',
    driver: 'process',
    process: { command: ['true'] },
    resources: { cpu: 1, memoryMiB: 256 },
    volumes: [{ name: 'data', sizeMiB: 64, replicas: 2, mountPath: '/srv/kv' }],
  }),
  epoch: owner === null ? 0 : 3,
  node: owner,
  restartNonce: 0,
  avoid: [],
  updatedAt: 0,
  ...extra,
});

const record = (replicas: string[], isr: string[], isrVersion = 1) => ({
  data: { sizeBytes: 64 * 1_048_576, replicas, isr, outdated: {}, isrVersion },
});

const config = defaultControllerConfig;
const nodes = [node('n1'), node('n2'), node('s1', 'spare'), node('s2', 'spare')];
const heartbeats = (now: number, down: string[] = []) =>
  Object.fromEntries(nodes.map((n) => [n.name, down.includes(n.name) ? 0 : now - 10]));

function moves(decisions: Decision[]) {
  return decisions.filter((d): d is Extract<Decision, { type: 'move' }> => d.type === 'move');
}

describe('replicated volume decisions', () => {
  it('places the copies at first placement, a spare first, all in sync', () => {
    const [move] = moves(
      decide(
        {
          now: 5_000,
          startedAt: 0,
          nodes,
          workloads: [kv(null)],
          instances: [],
          lastHeartbeatAt: heartbeats(5_000),
        },
        config,
      ),
    );
    assert.ok(move?.volumes);
    const data = move.volumes.data!;
    assert.equal(data.replicas[0], move.toNode);
    assert.equal(data.replicas.length, 2);
    assert.ok(
      data.replicas.slice(1).every((n) => n.startsWith('s')),
      'the second copy is on a spare',
    );
    assert.deepEqual(data.isr, data.replicas);
  });

  it('fails over only to the node with the in-sync copy, dropping the lost owner from the ISR', () => {
    const now = 50_000;
    const w = kv('n1', { volumes: record(['n1', 'n2'], ['n1', 'n2']) });
    const decisions = decide(
      {
        now,
        startedAt: 0,
        nodes,
        workloads: [w],
        instances: [],
        lastHeartbeatAt: heartbeats(now, ['n1']),
      },
      config,
    );
    const [move] = moves(decisions);
    assert.equal(move?.toNode, 'n2', 'not a free spare: only n2 holds the data');
    const data = move?.volumes?.data;
    assert.deepEqual(data?.isr, ['n2']);
    assert.deepEqual(Object.keys(data?.outdated ?? {}), ['n1']);
    assert.equal(data?.isrVersion, 2);
  });

  it('refuses to promote an outdated copy, and says why; the broken build does it', () => {
    const now = 50_000;
    const w = kv('n1', { volumes: record(['n1', 'n2'], ['n1'], 4) });
    const snapshot = {
      now,
      startedAt: 0,
      nodes,
      workloads: [w],
      instances: [],
      lastHeartbeatAt: heartbeats(now, ['n1']),
    };
    const safe = decide(snapshot, config);
    assert.equal(
      moves(safe).find((m) => m.toNode !== null),
      undefined,
    );
    const blocked = safe.find((d) => d.type === 'blocked');
    assert.match(blocked?.type === 'blocked' ? blocked.reason : '', /in-sync copy.*in sync: n1/);
    const broken = decide(snapshot, config, { unsafePromoteOutdated: true });
    assert.ok(moves(broken).some((m) => m.toNode !== null && m.toNode !== 'n1'));
  });

  it('restores redundancy on a spare after a failover, then releases the surplus copy', () => {
    const now = 50_000;
    const after = kv('n2', {
      volumes: {
        data: {
          ...record(['n1', 'n2'], ['n2'], 2).data,
          outdated: { n1: { since: 1, reason: 'down' } },
        },
      },
    });
    const added = decide(
      {
        now,
        startedAt: 0,
        nodes,
        workloads: [after],
        instances: [],
        lastHeartbeatAt: heartbeats(now, ['n1']),
      },
      config,
    ).find((d) => d.type === 'volumes');
    assert.equal(added?.type, 'volumes');
    const data = added?.type === 'volumes' ? added.volumes.data! : undefined;
    assert.deepEqual(data?.replicas, ['n1', 'n2', 's1']);
    assert.deepEqual(data?.isr, ['n2'], 'a new copy is not in sync until resynced');
    const synced = kv('n2', {
      volumes: {
        data: { ...data, isr: ['n2', 's1'], outdated: { n1: { since: 1, reason: 'down' } } },
      },
    });
    const released = decide(
      {
        now,
        startedAt: 0,
        nodes,
        workloads: [synced],
        instances: [],
        lastHeartbeatAt: heartbeats(now, ['n1']),
      },
      config,
    ).find((d) => d.type === 'volumes');
    assert.equal(released?.type, 'volumes');
    assert.deepEqual(released?.type === 'volumes' ? released.volumes.data?.replicas : [], [
      'n2',
      's1',
    ]);
  });

  it('changes the ISR only on a current report from the owner', () => {
    const w = kv('n1', { volumes: record(['n1', 'n2', 's1'], ['n1', 'n2']) });
    const shrink = recordsAfterReport(
      w,
      'n1',
      { kind: 'unresponsive', volume: 'data', epoch: 3, node: 'n2', isrVersion: 1, waitingMs: 600 },
      9,
    );
    assert.deepEqual(shrink?.volumes.data?.isr, ['n1']);
    assert.equal(shrink?.volumes.data?.outdated.n2?.since, 9);
    const grow = recordsAfterReport(
      w,
      'n1',
      { kind: 'caught-up', volume: 'data', epoch: 3, node: 's1', isrVersion: 1 },
      9,
    );
    assert.deepEqual(grow?.volumes.data?.isr, ['n1', 'n2', 's1']);
    const report = { kind: 'unresponsive' as const, volume: 'data', node: 'n2', waitingMs: 600 };
    assert.equal(recordsAfterReport(w, 'n2', { ...report, epoch: 3, isrVersion: 1 }, 9), undefined);
    assert.equal(recordsAfterReport(w, 'n1', { ...report, epoch: 2, isrVersion: 1 }, 9), undefined);
    assert.equal(recordsAfterReport(w, 'n1', { ...report, epoch: 3, isrVersion: 0 }, 9), undefined);
  });

  it('an unclean report drops the owner from the ISR when others are in it; decide then moves the workload to an in-sync node', () => {
    const now = 50_000;
    const w = kv('n1', { volumes: record(['n1', 'n2', 's1'], ['n1', 'n2'], 4) });
    const report = { kind: 'unclean' as const, volume: 'data', epoch: 3, node: 'n1', waitingMs: 0 };
    const change = recordsAfterReport(w, 'n1', { ...report, isrVersion: 4 }, 9);
    const data = change?.volumes.data;
    assert.deepEqual(data?.isr, ['n2']);
    assert.equal(data?.isrVersion, 5);
    assert.deepEqual(data?.outdated.n1, { since: 9, reason: 'lost unflushed writes in a crash' });
    assert.match(change?.message ?? '', /not closed cleanly/);
    // Only the owner's current report counts; the only copy in sync stays (it is the best there is).
    assert.equal(recordsAfterReport(w, 'n2', { ...report, isrVersion: 4 }, 9), undefined);
    assert.equal(recordsAfterReport(w, 'n1', { ...report, isrVersion: 3 }, 9), undefined);
    const alone = kv('n1', { volumes: record(['n1', 'n2'], ['n1'], 4) });
    const kept = recordsAfterReport(alone, 'n1', { ...report, isrVersion: 4 }, 9);
    assert.deepEqual(kept?.volumes.data?.isr, ['n1']);
    assert.equal(kept?.volumes.data?.isrVersion, 5);

    // The owner is up, but no longer in sync: the workload fails over to n2, the in-sync copy
    // (not to a free spare, and not s1, whose copy is outdated).
    const moved = kv('n1', { volumes: change!.volumes });
    const snapshot = {
      now,
      startedAt: 0,
      nodes,
      workloads: [moved],
      instances: [],
      lastHeartbeatAt: heartbeats(now),
    };
    const [move] = moves(decide(snapshot, config));
    assert.equal(move?.kind, 'failover');
    assert.equal(move?.fromNode, 'n1');
    assert.equal(move?.toNode, 'n2');
    assert.match(move?.reason ?? '', /the copy on n1 is out of sync/);
    assert.equal(move?.volumes, undefined, 'the records stay: n1 returns through a resync');
    // No in-sync node can take it: the owner's claim is released; it waits unplaced.
    const stuck = decide({ ...snapshot, lastHeartbeatAt: heartbeats(now, ['n2']) }, config);
    assert.deepEqual(
      moves(stuck).map((m) => [m.fromNode, m.toNode]),
      [['n1', null]],
    );
    assert.ok(stuck.some((d) => d.type === 'blocked'));
    // An owner in sync stays.
    assert.equal(moves(decide({ ...snapshot, workloads: [w] }, config)).length, 0);
  });

  it('a fenced instance at the current epoch moves to an in-sync copy, else starts again in place at a new epoch', () => {
    const now = 50_000;
    const w = kv('n1', { volumes: record(['n1', 'n2'], ['n1', 'n2']) });
    const fenced = {
      workload: 'kv',
      node: 'n1',
      epoch: 3,
      state: 'stopped' as const,
      ports: {},
      restarts: 0,
      restartNonce: 0,
      failoverRequested: false,
      probes: {},
      fenced: true,
      reportedAt: now - 100,
      stateSince: now - 200,
    };
    const snapshot = {
      now,
      startedAt: 0,
      nodes,
      workloads: [w],
      instances: [fenced],
      lastHeartbeatAt: heartbeats(now),
    };
    const [move] = moves(decide(snapshot, config));
    assert.deepEqual([move?.kind, move?.fromNode, move?.toNode], ['failover', 'n1', 'n2']);
    assert.match(move?.reason ?? '', /the instance on n1 was fenced at epoch 3/);
    assert.equal(move?.failedAt, now - 200);
    // The other copy's node is down: the owner takes it again, at a new epoch (a move to itself).
    const inPlace = moves(
      decide({ ...snapshot, lastHeartbeatAt: heartbeats(now, ['n2']) }, config),
    );
    assert.deepEqual(
      inPlace.map((m) => [m.fromNode, m.toNode]),
      [['n1', 'n1']],
    );
    assert.match(inPlace[0]?.reason ?? '', /starts again there at a new epoch/);
    // A fenced instance of an older epoch (the workload moved on since) changes nothing.
    const old = { ...fenced, epoch: 2 };
    assert.equal(moves(decide({ ...snapshot, instances: [old] }, config)).length, 0);
  });

  it('gives the owner the primary duty and every other holder a replica duty at the epoch', () => {
    const w = kv('n1', { volumes: record(['n1', 's1'], ['n1', 's1']) });
    const duties = dutiesByNode({ nodes, workloads: [w] }, () => false);
    assert.equal(duties.get('n1')?.[0]?.role, 'primary');
    assert.equal(duties.get('s1')?.[0]?.role, 'replica');
    assert.equal(duties.get('s1')?.[0]?.epoch, 3);
    assert.deepEqual(duties.get('s1')?.[0]?.membership.replicas[1], {
      node: 's1',
      address: 's1:7000',
    });
    assert.equal(dutiesByNode({ nodes, workloads: [w] }, () => true).size, 0);
  });
});
