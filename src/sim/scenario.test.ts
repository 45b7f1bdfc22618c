// Scenario stories on the simulator (CONVENTIONS.md item 17): each reads as what happens and what
// must follow, on the real controller and agent logic with simulated time, network and processes.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { listNodes } from '../controller/queries.js';
import { checkConverged, checkSafety, movesSince } from './checkers.js';
import { World } from './world.js';

const nodes = [
  { name: 'node-1', site: 'a', role: 'production' as const, cpu: 4, memoryMiB: 4096 },
  { name: 'node-2', site: 'a', role: 'production' as const, cpu: 4, memoryMiB: 4096 },
  { name: 'spare-1', site: 'a', role: 'spare' as const, cpu: 4, memoryMiB: 4096 },
];

function workload(name: string, port: number, priority = 100, memoryMiB = 256) {
  return {
    name,
    driver: 'process' as const,
    process: { command: ['sim-service'] },
    resources: { cpu: 1, memoryMiB },
    endpoints: [{ name: 'http', port }],
    probes: [{ type: 'http' as const, endpoint: 'http', intervalMs: 500, failureThreshold: 2 }],
    availability: { priority },
  };
}

let world: World | undefined;
afterEach(async () => {
  await world?.close();
  world = undefined;
});

async function cluster(workloads = [workload('kv', 8080)], nodeSpecs = nodes): Promise<World> {
  world = new World({ seed: 1, nodes: nodeSpecs, spec: { sites: [{ name: 'a' }], workloads } });
  await world.start();
  await world.run(3_000, () => checkSafety(world!));
  assert.deepEqual(checkConverged(world).problems, []);
  return world;
}

const owner = (w: World, name = 'kv') => w.workloads.get(name)!.node!;

describe('scenarios', () => {
  it('crash the node running kv: it fails over to the spare and serves within seconds', async () => {
    const w = await cluster();
    const from = owner(w);
    w.nodes.get(from)!.crash();
    await w.run(5_000, () => checkSafety(w));
    assert.equal(owner(w), 'spare-1');
    assert.deepEqual(checkConverged(w).problems, []);
    assert.deepEqual(w.violations, []);
  });

  it('hang node-1 for 3 s past the timeout: failover, then the stale instance stops after resume', async () => {
    const w = await cluster();
    const from = owner(w);
    w.nodes.get(from)!.clock.hang(w.clock.now() + 3_000);
    await w.run(8_000, () => checkSafety(w));
    assert.notEqual(owner(w), from);
    assert.deepEqual(checkConverged(w).problems, []);
    assert.deepEqual(w.violations, []);
  });

  it('partition the node holding the active instance from the controller only: failover; heal: the stale instance stops', async () => {
    const w = await cluster();
    const from = owner(w);
    w.network.partition(from, 'controller');
    await w.run(4_000, () => checkSafety(w));
    assert.notEqual(owner(w), from);
    w.network.healAll();
    await w.run(5_000, () => checkSafety(w));
    assert.deepEqual(checkConverged(w).problems, []);
    assert.deepEqual(w.violations, []);
  });

  it('kill the agent alone: its instance is re-attached, nothing moves', async () => {
    const w = await cluster();
    const from = owner(w);
    const pid = w.table.live().find((p) => p.workload === 'kv')!.pid;
    const seq = w.events.at(-1)!.seq;
    w.nodes.get(from)!.killAgent();
    w.closeSessionsOf(from);
    await w.run(300);
    await w.nodes.get(from)!.boot();
    await w.run(3_000, () => checkSafety(w));
    assert.equal(owner(w), from);
    assert.equal(w.table.live().find((p) => p.workload === 'kv')!.pid, pid);
    assert.equal(movesSince(w, seq), 0);
  });

  it('crash the controller for 5 s: nothing stops or moves; after restart nothing moves', async () => {
    const w = await cluster();
    const from = owner(w);
    const seq = w.events.at(-1)!.seq;
    await w.crashController();
    await w.run(5_000, () => checkSafety(w));
    assert.equal(w.table.live().filter((p) => p.workload === 'kv').length, 1);
    await w.startController();
    await w.run(5_000, () => checkSafety(w));
    assert.equal(owner(w), from);
    assert.equal(movesSince(w, seq), 0);
    assert.deepEqual(checkConverged(w).problems, []);
  });

  it('crash the process: restarted in place, same epoch, same node', async () => {
    const w = await cluster();
    const from = owner(w);
    const epoch = w.workloads.get('kv')!.epoch;
    const process = w.table.live().find((p) => p.workload === 'kv')!;
    w.table.end(process.pid, { code: null, signal: 'SIGKILL', at: w.clock.now() });
    await w.run(3_000, () => checkSafety(w));
    assert.equal(owner(w), from);
    assert.equal(w.workloads.get('kv')!.epoch, epoch);
    assert.deepEqual(checkConverged(w).problems, []);
  });

  it("the leader's store writes stall for 2 s while a node reports its restarted process: the node's heartbeats still count, no node is judged down, nothing moves", async () => {
    // The report waits for the store; the heartbeats behind it on the same session must not.
    const workloads = [workload('kv', 8080)];
    world = new World({
      seed: 1,
      nodes,
      spec: { sites: [{ name: 'a' }], workloads },
      controllers: 3,
    });
    const w = world;
    await w.start();
    await w.run(3_000, () => checkSafety(w));
    assert.deepEqual(checkConverged(w).problems, []);
    const from = owner(w);
    const seq = w.events.at(-1)!.seq;
    w.stallLeaderWrites(2_000);
    const process = w.table.live().find((p) => p.workload === 'kv')!;
    w.table.end(process.pid, { code: null, signal: 'SIGKILL', at: w.clock.now() });
    // What the API shows meanwhile: every node heard from within two heartbeat intervals.
    let oldestMs = 0;
    for (let step = 0; step < 20; step++) {
      await w.run(100, () => checkSafety(w));
      for (const node of await listNodes(w.controller!))
        oldestMs = Math.max(oldestMs, node.lastHeartbeatAgoMs ?? Infinity);
    }
    assert.ok(oldestMs <= 400, `a node unheard for ${oldestMs} ms while the store was slow`);
    await w.run(2_000, () => checkSafety(w));
    const judged = w.events.filter((e) => e.seq > seq && e.kind.startsWith('node.'));
    assert.deepEqual(
      judged.map((e) => e.message),
      [],
    );
    assert.equal(owner(w), from);
    assert.equal(movesSince(w, seq), 0);
    assert.deepEqual(checkConverged(w).problems, []);
  });

  it('make kv unhealthy for good on its node: three restarts in place, then failover', async () => {
    const w = await cluster();
    const from = owner(w);
    // A node-local fault: every process of kv started on this node is unhealthy.
    const mark = () => {
      for (const p of w.table.live()) if (p.workload === 'kv' && p.node === from) p.healthy = false;
    };
    await w.run(20_000, () => {
      mark();
      checkSafety(w);
    });
    assert.notEqual(owner(w), from);
    const restarts = w.events.filter(
      (e) => e.kind === 'instance.restarting' && e.subject.name === `kv/${from}`,
    );
    assert.equal(restarts.length, 3);
    assert.deepEqual(w.violations, []);
  });

  it('split the cluster in two: the side without the controller keeps running, no double epoch', async () => {
    const w = await cluster([workload('kv', 8080), workload('web', 8081)]);
    w.network.partition('node-1', 'controller');
    w.network.partition('node-2', 'controller');
    await w.run(6_000, () => checkSafety(w));
    w.network.healAll();
    await w.run(6_000, () => checkSafety(w));
    assert.deepEqual(checkConverged(w).problems, []);
    assert.deepEqual(w.violations, []);
  });

  it('capacity short after a crash: the higher priority workload preempts the lower one', async () => {
    const small = [
      { name: 'node-1', site: 'a', role: 'production' as const, cpu: 1, memoryMiB: 1024 },
      { name: 'node-2', site: 'a', role: 'production' as const, cpu: 1, memoryMiB: 1024 },
    ];
    const w = await cluster([workload('important', 8080, 900), workload('batch', 8081, 10)], small);
    const importantNode = owner(w, 'important');
    w.nodes.get(importantNode)!.crash();
    await w.run(6_000, () => checkSafety(w));
    assert.notEqual(owner(w, 'important'), importantNode);
    assert.equal(w.workloads.get('batch')!.node, null, 'batch was preempted and waits for room');
    assert.ok(w.events.some((e) => e.kind === 'preemption.decided' && e.subject.name === 'batch'));
    assert.deepEqual(w.violations, []);
  });

  it('a node returns after a failover: nothing moves back (no flapping)', async () => {
    const w = await cluster();
    const from = owner(w);
    w.nodes.get(from)!.crash();
    await w.run(4_000, () => checkSafety(w));
    const seq = w.events.at(-1)!.seq;
    await w.nodes.get(from)!.boot();
    await w.run(10_000, () => checkSafety(w));
    assert.equal(movesSince(w, seq), 0);
    assert.deepEqual(checkConverged(w).problems, []);
  });

  it('crash the node holding a volume without replicas: its workload waits (never starts empty elsewhere), then restarts there', async () => {
    const kv = {
      ...workload('kv', 8080),
      volumes: [{ name: 'data', node: 'node-2', sizeMiB: 64, mountPath: '/srv/data' }],
    };
    const w = await cluster([kv]);
    assert.equal(owner(w), 'node-2');
    w.nodes.get('node-2')!.crash();
    await w.run(5_000, () => checkSafety(w));
    assert.ok(
      w.table.live().every((p) => p.workload !== 'kv'),
      'no instance of kv runs anywhere while its volume node is down',
    );
    assert.ok(
      w.events.some(
        (e) =>
          e.subject.name === 'kv' &&
          /volumes live on node node-2|holds its volumes/.test(e.message),
      ),
      'the journal says why kv waits',
    );
    await w.nodes.get('node-2')!.boot();
    await w.run(6_000, () => checkSafety(w));
    assert.equal(owner(w), 'node-2');
    assert.deepEqual(checkConverged(w).problems, []);
    assert.deepEqual(w.violations, []);
  });
});
