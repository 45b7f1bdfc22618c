// The agent core with VIPs on a fake host: the active instance of the current epoch holds its
// VIP; an instance no longer assigned, superseded, or stopped because its volume was fenced
// gives it up; an agent that hears no controller for its fence timeout withdraws it and adds it
// back only when an assignment set confirms the workload at that epoch; a restarted agent removes
// the VIPs of workloads it does not run and keeps those of the instances it re-attached to. The
// instance's environment names its VIP and the endpoint's port.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { silentLogger } from '../core/ports.js';
import type { AgentMessage, Assignment } from '../core/protocol.js';
import { workloadSpecSchema } from '../core/spec.js';
import { FakeClock } from '../sim/fake-clock.js';
import { AgentCore, instanceEnv } from './agent.js';
import type { AgentState } from './agent-state.js';
import { memoryHost, RecordingDriver } from './test-support.js';
import { VipManager } from './vip.js';
import { FakeHost, pass } from './vip-test-support.js';

const fenceTimeoutMs = 3000;
const held = 'eth0 10.0.0.5/24';
const spec = workloadSpecSchema.parse({
  name: 'kv',
  driver: 'process',
  process: { command: ['true'] },
  endpoints: [{ name: 'http-api', port: 8080, vip: { address: '10.0.0.5/24' } }],
  volumes: [{ name: 'data', sizeMiB: 64, replicas: 2, mountPath: '/srv/kv' }],
});

function setup(saved: { state?: AgentState } = {}) {
  const clock = new FakeClock();
  const host = new FakeHost();
  const driver = new RecordingDriver();
  const sent: AgentMessage[] = [];
  const vips = new VipManager({ runner: host, logger: silentLogger, clock, takeoverWaitMs: 5000 });
  const core = new AgentCore({
    node: 'n1',
    host: '10.0.0.11',
    driver,
    probes: { run: () => Promise.resolve({ ok: true, durationMs: 0 }) },
    clock,
    logger: silentLogger,
    env: memoryHost(saved),
    fenceTimeoutMs,
    vips,
    send: (message) => sent.push(message),
  });
  let revision = 0;
  const assign = (assignments: Assignment[], epochs: Record<string, number> = {}) =>
    core.handle({ type: 'assignments', revision: ++revision, assignments, epochs });
  const settle = async (ms = 200) => {
    await core.idle();
    await pass(clock, ms);
    await vips.idle();
  };
  return { clock, host, driver, core, vips, assign, settle, saved };
}

const kv = (epoch: number): Assignment => ({ workload: 'kv', epoch, spec, restartNonce: 0 });

describe('VIPs in the agent core', () => {
  it('holds the VIP while its instance of the current epoch runs, and gives it up when unassigned', async () => {
    const { host, driver, assign, settle, saved } = setup();
    assign([kv(1)]);
    await settle();
    assert.deepEqual([...driver.running.keys()], ['kv@1']);
    assert.ok(host.addresses.has(held));
    assert.deepEqual(saved.state?.vips, [
      { workload: 'kv', address: '10.0.0.5/24', interface: 'eth0' },
    ]);
    assign([]);
    await settle();
    assert.ok(!host.addresses.has(held));
    assert.deepEqual(saved.state?.vips, []);
  });

  it('gives it up when the workload moves to a newer epoch elsewhere', async () => {
    const { host, assign, settle } = setup();
    assign([kv(1)]);
    await settle();
    assign([], { kv: 2 });
    await settle();
    assert.ok(!host.addresses.has(held));
  });

  it('gives it up when its volume is fenced', async () => {
    const { host, core, assign, settle } = setup();
    assign([kv(1)]);
    await settle();
    core.volumeReport({ kind: 'fenced', volume: 'data', epoch: 1, reason: 'a newer primary' });
    await settle();
    assert.equal(core.statuses()[0]?.state, 'stopped');
    assert.ok(!host.addresses.has(held));
  });

  it('withdraws it after fenceTimeoutMs without the controller, and adds it back when confirmed', async () => {
    const { host, driver, core, assign, settle } = setup();
    assign([kv(1)]);
    await settle();
    await settle(fenceTimeoutMs - 500);
    assert.ok(host.addresses.has(held), 'kept while the silence is shorter than the timeout');
    await settle(1000);
    assert.ok(!host.addresses.has(held), 'withdrawn');
    assert.deepEqual([...driver.running.keys()], ['kv@1'], 'the instance itself keeps running');
    core.controllerHeard();
    await settle();
    assert.ok(!host.addresses.has(held), 'hearing the controller is not enough');
    assign([kv(1)]);
    await settle();
    assert.ok(host.addresses.has(held), 'back once the assignment set confirms it');
  });

  it('after a restart, keeps the VIP of a re-attached instance and removes the others', async () => {
    const first = setup();
    first.assign([kv(1)]);
    await first.settle();
    const state = first.saved.state!;
    state.vips!.push({ workload: 'gone', address: '10.0.0.7/24', interface: 'eth0' });
    const second = setup({ state: structuredClone(state) });
    for (const address of [held, 'eth0 10.0.0.7/24']) second.host.addresses.add(address);
    second.driver.running.set('kv@1', first.driver.running.get('kv@1')!);
    await second.core.recover();
    await second.settle();
    assert.ok(second.host.addresses.has(held), 'kept');
    assert.ok(!second.host.addresses.has('eth0 10.0.0.7/24'), 'removed');
    assert.ok(!second.host.commands.some((c) => c.includes('-U')), 'not announced again');
  });

  it('tells the instance its VIP and the endpoint port', () => {
    const env = instanceEnv('n1', 'kv', 3, spec, { 'http-api': 8080 });
    assert.equal(env.PORT, '8080');
    assert.equal(env.CONTINUUM_PORT_HTTP_API, '8080');
    assert.equal(env.CONTINUUM_VIP_HTTP_API, '10.0.0.5');
  });
});
