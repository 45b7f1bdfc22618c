// Several controllers on a real etcd (issue 6 item 2), as real processes on loopback: two
// controllers elect a leader; agents and the redirector are given both addresses. A leader that
// hangs or dies is replaced within a bounded time, the workload neither stops nor moves, the old
// leader comes back as a follower, and a node crash right after a takeover is handled by the new
// leader.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { agentProtocolVersion, type AgentHello } from '../src/core/protocol.js';
import { EtcdProcess, etcdMissingReason } from '../src/store/etcd-process.js';
import { waitFor } from './harness/cluster.js';
import { info, serves, startDemo, type Demo } from './harness/demo.js';

const leaseMs = 2000;
/** Lease expiry, the follower's next look, and its election: well inside this. */
const takeoverBoundMs = leaseMs + 3000;
const skip = etcdMissingReason();
/** A node's hello, as an agent sends it first on a session. */
const probeHello: AgentHello = {
  type: 'hello',
  protocolVersion: agentProtocolVersion,
  node: 'probe',
  site: 'dc1',
  role: 'production',
  labels: {},
  address: '127.0.0.1',
  capacity: { cpu: 1, memoryMiB: 256 },
  inventory: {
    hostname: 'probe',
    cpuCount: 1,
    memoryMiB: 256,
    agentVersion: 'test',
    agentPid: process.pid,
  },
  instances: [],
};

describe('several controllers on etcd', { skip }, () => {
  let etcd: EtcdProcess;
  let demo: Demo;
  before(async () => {
    etcd = await EtcdProcess.start();
    demo = await startDemo({
      etcd: { endpoints: [etcd.endpoint], controllers: 2, leaderLeaseMs: leaseMs },
    });
  });
  after(async () => {
    await demo?.cluster.close();
    await etcd?.stop();
  });

  /** Nothing stops or moves for observeMs, and the endpoint keeps serving the same instance. */
  async function nothingMoves(
    expected: { epoch: number; node: string | null; pid: number },
    observeMs: number,
  ): Promise<void> {
    const until = Date.now() + observeMs;
    while (Date.now() < until) {
      const now = await demo.cluster.workload('kv');
      assert.equal(now.epoch, expected.epoch, 'no change of owner');
      assert.equal(now.node, expected.node);
      assert.ok(await serves(demo.endpoint), 'the endpoint serves');
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal((await info(demo.endpoint)).pid, expected.pid, 'the same instance serves');
  }

  /** What a controller answers an agent's hello with, over a real WebSocket session. */
  async function agentHelloAnswer(url: string): Promise<{ code: string; leader?: string }> {
    const token = readFileSync(join(demo.cluster.controllerDir, 'agent.token'), 'utf8').trim();
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/agent/session`, {
      headers: { authorization: `Bearer ${token}` },
    });
    try {
      await once(ws, 'open');
      const answered = once(ws, 'message');
      ws.send(JSON.stringify(probeHello));
      const [data] = (await answered) as [Buffer];
      return JSON.parse(data.toString('utf8')) as { code: string; leader?: string };
    } finally {
      ws.terminate();
    }
  }

  async function allNodesWithLeader(): Promise<void> {
    await waitFor('every agent to be connected to the leader', 10_000, async () => {
      const nodes = await demo.cluster.api<{ items: { state: string; connected: boolean }[] }>(
        'GET',
        '/v1/nodes',
      );
      return nodes.body.items.every((n) => n.state === 'up' && n.connected);
    });
  }

  it('replaces a hung leader; the old one follows after it resumes, and nothing moves', async () => {
    const kv = await demo.cluster.workload('kv');
    const expected = { epoch: kv.epoch, node: kv.node, pid: kv.instance!.pid! };
    const old = await demo.cluster.leader();
    const stoppedAt = Date.now();
    demo.cluster.signalProcess(old.name, 'SIGSTOP');
    const next = await waitFor('another controller to lead', takeoverBoundMs + 5000, async () => {
      const leader = await demo.cluster.leader(1000).catch(() => undefined);
      return leader !== undefined && leader.index !== old.index ? leader : undefined;
    });
    const takeoverMs = Date.now() - stoppedAt;
    assert.ok(takeoverMs <= takeoverBoundMs, `took over in ${takeoverMs} ms`);
    await allNodesWithLeader();
    demo.cluster.signalProcess(old.name, 'SIGCONT');
    await waitFor('the old leader to say it follows', 10_000, async () => {
      const health = (await (await fetch(`${old.url}/healthz`)).json()) as { role: string };
      return health.role === 'follower';
    });
    // A write sent to the old leader is refused, naming the new one.
    const refused = await fetch(`${old.url}/v1/workloads/kv/restart`, {
      method: 'POST',
      headers: { authorization: `Bearer ${demo.cluster.apiToken()}` },
    });
    const body = (await refused.json()) as { error: { code: string; details: { leader: string } } };
    assert.equal(refused.status, 503);
    assert.equal(body.error.code, 'CONTINUUM_ERR_NOT_LEADER');
    assert.equal(body.error.details.leader, next.url);
    // So is an agent's session, naming the new one too: the agent goes there next.
    const answer = await agentHelloAnswer(old.url);
    assert.equal(answer.code, 'CONTINUUM_ERR_NOT_LEADER');
    assert.equal(answer.leader, next.url);
    await nothingMoves(expected, 2500);
    const elected = await demo.cluster.events('controller.elected');
    assert.deepEqual(
      elected.map((e) => e.subject.name),
      [old.name, next.name],
    );
  });

  it('replaces a killed leader within the bound, and the new leader handles a node crash', async () => {
    const kv = await demo.cluster.workload('kv');
    const expected = { epoch: kv.epoch, node: kv.node, pid: kv.instance!.pid! };
    const old = await demo.cluster.leader();
    const killedAt = Date.now();
    demo.cluster.signalProcess(old.name, 'SIGKILL');
    await demo.cluster.waitExit(old.name);
    const next = await waitFor('another controller to lead', takeoverBoundMs + 5000, async () => {
      const leader = await demo.cluster.leader(1000).catch(() => undefined);
      return leader !== undefined && leader.index !== old.index ? leader : undefined;
    });
    const takeoverMs = Date.now() - killedAt;
    assert.ok(takeoverMs <= takeoverBoundMs, `took over in ${takeoverMs} ms`);
    await allNodesWithLeader();
    await nothingMoves(expected, 2500);
    const decided = (await demo.cluster.events()).filter(
      (e) => e.kind.endsWith('.decided') && e.kind !== 'placement.decided',
    );
    assert.deepEqual(decided, [], 'no failover or move was decided');

    // The node running kv crashes: the new leader fails it over.
    demo.cluster.signalGroup(kv.node!, 'SIGKILL');
    const moved = await waitFor('kv to run elsewhere', 20_000, async () => {
      const now = await demo.cluster.workload('kv');
      return now.phase === 'active' && now.node !== kv.node ? now : undefined;
    });
    assert.ok(moved.epoch > kv.epoch);
    await waitFor('the endpoint to serve from the new node', 10_000, async () => {
      const served = await info(demo.endpoint).catch(() => undefined);
      return served?.node === moved.node;
    });
    const failovers = await demo.cluster.events('failover.decided');
    assert.equal(failovers.length, 1);
    assert.match(failovers[0]!.message, new RegExp(kv.node!));
    assert.ok(next.name !== old.name);
  });
});
