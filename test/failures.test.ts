// Failures on real processes: a workload crash, a node crash, a node hang, an agent restart and a
// health failure, each on a fresh cluster of separate OS processes on loopback.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { waitFor } from './harness/cluster.js';
import { activeOn, info, serves, startDemo, type Demo } from './harness/demo.js';
import { DoubleActiveSampler } from './harness/sampler.js';

describe('process crash (SIGKILL of the workload)', () => {
  let demo: Demo;
  before(async () => (demo = await startDemo()));
  after(() => demo.cluster.close());

  it('restarts it in place and the endpoint serves again', async () => {
    const before = await demo.cluster.workload('kv');
    const pid = before.instance!.pid!;
    process.kill(pid, 'SIGKILL');
    const after = await activeOn(
      demo.cluster,
      (w) => w.instance?.pid !== pid,
      'kv to be active with a new pid',
    );
    assert.equal(after.node, before.node, 'restarted on the same node');
    assert.equal(after.epoch, before.epoch, 'a restart in place keeps the epoch');
    assert.equal(after.instance!.restarts, 1);
    await waitFor('the endpoint to serve', 10_000, () => serves(demo.endpoint));
    assert.equal((await info(demo.endpoint)).pid, after.instance!.pid);
  });
});

describe('node crash (SIGKILL of the agent process group)', () => {
  let demo: Demo;
  before(async () => (demo = await startDemo()));
  after(() => demo.cluster.close());

  it('fails the workload over to another node; the journal has every step with its time', async () => {
    const before = await demo.cluster.workload('kv');
    demo.cluster.signalGroup(before.node!, 'SIGKILL');
    const after = await activeOn(
      demo.cluster,
      (w) => w.node !== before.node,
      'kv to be active elsewhere',
    );
    assert.equal(after.node, 'spare-1', 'the spare takes over first (N+1)');
    assert.ok(after.epoch > before.epoch, 'the epoch was raised');
    await waitFor('the endpoint to serve', 10_000, () => serves(demo.endpoint));
    assert.equal((await info(demo.endpoint)).node, 'spare-1');
    const events = await demo.cluster.events();
    const kinds = events.map((e) => e.kind);
    for (const kind of [
      'node.down',
      'failover.decided',
      'failover.started',
      'failover.completed',
    ]) {
      assert.ok(kinds.includes(kind), `journal has ${kind}`);
    }
    const completed = events.find((e) => e.kind === 'failover.completed')!;
    for (const step of ['detectMs', 'decideMs', 'startMs', 'healthyMs', 'restoreMs']) {
      assert.equal(typeof completed.data?.[step], 'number', `failover.completed has ${step}`);
    }
    const failovers = await demo.cluster.api<{ items: { workload: string; restoreMs?: number }[] }>(
      'GET',
      '/v1/failovers',
    );
    assert.ok(
      failovers.body.items.some((f) => f.workload === 'kv' && typeof f.restoreMs === 'number'),
    );
  });
});

describe('node hang (SIGSTOP of the agent process group, then SIGCONT)', () => {
  let demo: Demo;
  before(async () => (demo = await startDemo()));
  after(() => demo.cluster.close());

  it('fails over, stops the stale instance after SIGCONT, and never runs two instances at one epoch', async () => {
    const sampler = new DoubleActiveSampler(demo.cluster.dir);
    sampler.start();
    try {
      const before = await demo.cluster.workload('kv');
      const stalePid = before.instance!.pid!;
      demo.cluster.signalGroup(before.node!, 'SIGSTOP');
      await activeOn(demo.cluster, (w) => w.node !== before.node, 'kv to be active elsewhere');
      await waitFor('the endpoint to serve', 10_000, () => serves(demo.endpoint));
      demo.cluster.signalGroup(before.node!, 'SIGCONT');
      await waitFor('the stale instance to stop', 15_000, () => {
        try {
          process.kill(stalePid, 0);
          return false;
        } catch {
          return true;
        }
      });
      await waitFor(
        `node ${before.node} to be up again`,
        10_000,
        async () => (await demo.cluster.node(before.node!))?.state === 'up',
      );
      const now = await demo.cluster.workload('kv');
      assert.notEqual(now.node, before.node, 'the workload does not move back');
    } finally {
      sampler.stop();
    }
    assert.ok(sampler.samples > 50, `the sampler ran (${sampler.samples} samples)`);
    assert.ok(
      sampler.epochsSeen.size >= 2,
      `the sampler saw both epochs: ${[...sampler.epochsSeen].join(', ')}`,
    );
    assert.deepEqual(sampler.violations, []);
  });
});

describe('agent restart (SIGKILL of the agent process alone)', () => {
  // The agent is back within the controller's down-after time, so nothing fails over. The default
  // (1.2 s) is about what a new agent process takes to start and join on a loaded machine.
  const downAfterMs = 10_000;
  let demo: Demo;
  before(async () => (demo = await startDemo({ downAfterMs })));
  after(() => demo.cluster.close());

  it('re-attaches to its instances (same PIDs) instead of restarting them', async () => {
    const before = await demo.cluster.workload('kv');
    const node = before.node!;
    const killedAt = Date.now();
    demo.cluster.signalProcess(node, 'SIGKILL');
    await demo.cluster.waitExit(node);
    await demo.cluster.startAgent({
      name: node,
      role: node.startsWith('spare') ? 'spare' : 'production',
    });
    const awayMs = Date.now() - killedAt;
    assert.ok(awayMs < downAfterMs, `the agent was back within ${downAfterMs} ms (${awayMs} ms)`);
    const pid = before.instance!.pid!;
    const seq = (await demo.cluster.events()).at(-1)!.seq;
    // The new agent has joined (startAgent waits for its own pid). Watch for longer than its
    // re-attach and first probes take: the original process must live on, untouched.
    const observeUntil = Date.now() + 3_000;
    while (Date.now() < observeUntil) {
      assert.doesNotThrow(() => process.kill(pid, 0), 'the original instance is still alive');
      await new Promise((r) => setTimeout(r, 100));
    }
    const later = (await demo.cluster.events()).filter(
      (e) => e.seq > seq && e.subject.name === `kv/${node}`,
    );
    assert.ok(
      !later.some((e) =>
        ['instance.stopped', 'instance.stopping', 'instance.restarting'].includes(e.kind),
      ),
      JSON.stringify(later),
    );
    const after = await activeOn(demo.cluster, () => true, 'kv to be active');
    assert.equal(after.node, node);
    assert.equal(after.epoch, before.epoch);
    assert.equal(
      after.instance!.pid,
      before.instance!.pid,
      'same PID: re-attached, not relaunched',
    );
    assert.equal(after.instance!.restarts, 0);
    assert.equal((await info(demo.endpoint)).pid, before.instance!.pid);
    const events = await demo.cluster.events();
    assert.ok(!events.some((e) => e.kind === 'failover.decided'), 'no failover happened');
  });
});

describe('health failure (the demo switch)', () => {
  let demo: Demo;
  before(async () => (demo = await startDemo()));
  after(() => demo.cluster.close());

  it('restarts in place up to the limit, then fails over', async () => {
    const before = await demo.cluster.workload('kv');
    const response = await fetch(`${demo.endpoint}/admin/health`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ healthy: false, reason: 'test switch', persist: true }),
    });
    assert.equal(response.status, 204);
    const after = await activeOn(
      demo.cluster,
      (w) => w.node !== before.node,
      'kv to fail over',
      45_000,
    );
    assert.ok(after.epoch > before.epoch);
    const restarts = (await demo.cluster.events()).filter(
      (e) => e.kind === 'instance.restarting' && e.subject.name === `kv/${before.node}`,
    );
    assert.equal(
      restarts.length,
      3,
      'three restarts in place (the policy limit) before failing over',
    );
    const decided = (await demo.cluster.events('failover.decided')).at(-1)!;
    assert.match(decided.message, /remediation gave up/);
    await waitFor('the endpoint to serve', 10_000, () => serves(demo.endpoint));
  });
});
