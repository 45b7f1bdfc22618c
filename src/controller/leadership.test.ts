// Several controllers over one store (memory, with a fake clock): exactly one leads; a leader that
// stops renewing (paused, cut off) is replaced after the lease TTL, and its writes fail in the
// store even before it notices; a follower refuses writes and agent sessions naming the leader,
// and serves reads; a leader that stops hands over at once.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ContinuumError, isContinuumError } from '../core/errors.js';
import { silentLogger } from '../core/ports.js';
import type { AgentHello, ControllerMessage } from '../core/protocol.js';
import { FakeClock } from '../sim/fake-clock.js';
import { MemoryStore } from '../store/memory.js';
import type { StateStore } from '../store/port.js';
import { createApi } from './api/app.js';
import { controllerConfig } from './config.js';
import { Controller } from './controller.js';
import { LeaderGuard } from './leader-guard.js';
import { leaderKey, type LeaderRecord } from './leadership.js';

const ttlMs = 2000;
const token = 'test-token-0123456789abcdef';

/** A store whose calls can be made to hang, as for a paused or cut-off controller. */
function pausable(store: StateStore): StateStore & { paused: boolean } {
  const wrapper = Object.create(store) as StateStore & { paused: boolean };
  wrapper.paused = false;
  for (const name of ['get', 'txn', 'grantLease', 'keepAliveLease'] as const) {
    const call = (store[name] as (...args: unknown[]) => Promise<unknown>).bind(store);
    (wrapper as unknown as Record<string, unknown>)[name] = (...args: unknown[]) =>
      wrapper.paused ? new Promise(() => undefined) : call(...args);
  }
  return wrapper;
}

async function runFor(clock: FakeClock, ms: number): Promise<void> {
  for (let t = 0; t < ms; t += 10) {
    clock.advance(10);
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
  }
}

function controllers(count: number) {
  const clock = new FakeClock({ startMs: 1_000_000 });
  const store = new MemoryStore({ clock });
  const list = Array.from({ length: count }, (_, i) => {
    const own = pausable(store);
    const controller = new Controller({
      store: own,
      clock,
      config: controllerConfig(),
      logger: silentLogger,
      controllerId: `c${i + 1}`,
      newClusterId: () => 'cluster-1',
      leadership: { url: `http://c${i + 1}.test:7400`, leaseTtlMs: ttlMs },
    });
    return { controller, store: own, api: createApi(controller, { apiToken: token }) };
  });
  return { clock, store, list };
}

function hello(node: string): AgentHello {
  return {
    type: 'hello',
    protocolVersion: 1,
    node,
    site: 'dc1',
    role: 'production',
    capacity: { cpu: 2, memoryMiB: 1024 },
    labels: {},
    address: '127.0.0.1',
    instances: [],
  } as unknown as AgentHello;
}

describe('controller leadership', () => {
  it('elects exactly one leader; a paused leader is replaced after the TTL and cannot write', async () => {
    const { clock, store, list } = controllers(3);
    for (const { controller } of list) await controller.start();
    await runFor(clock, 100);
    const leaders = list.filter((c) => c.controller.isLeader);
    assert.equal(leaders.length, 1, 'one leader');
    const first = leaders[0]!;
    const record = (await store.get<LeaderRecord>(leaderKey))!.value;
    assert.equal(record.controllerId, first.controller.controllerId);
    const events = await store.readEvents({ kinds: ['controller.elected'] });
    assert.equal(events.length, 1);

    // The leader hangs on renewals (a pause): after the TTL another one leads.
    first.store.paused = true;
    const revisionBefore = (await store.get(leaderKey))!.modRevision;
    await runFor(clock, ttlMs + 500);
    const now = list.filter((c) => c.controller.isLeader);
    assert.equal(now.length, 1, 'one leader again');
    assert.notEqual(now[0], first);
    assert.ok((await store.get(leaderKey))!.modRevision > revisionBefore);

    // What the old leader writes with its old claim fails in the store.
    const stale = new LeaderGuard(store, {
      revision: () => revisionBefore,
      leaderUrl: () => undefined,
      deposed: () => undefined,
    });
    await assert.rejects(
      stale.appendEvents([
        { at: clock.now(), kind: 'x', subject: { kind: 'cluster', name: 'c' }, message: 'm' },
      ]),
      (err: unknown) => isContinuumError(err) && err.code === 'CONTINUUM_ERR_NOT_LEADER',
    );
    for (const { controller } of list) await controller.stop();
  });

  it('a follower refuses writes and agents naming the leader, and serves reads', async () => {
    const { clock, list } = controllers(2);
    for (const { controller } of list) await controller.start();
    await runFor(clock, 100);
    const leader = list.find((c) => c.controller.isLeader)!;
    const follower = list.find((c) => !c.controller.isLeader)!;
    const auth = { authorization: `Bearer ${token}` };

    const write = await follower.api.request('/v1/apply', {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/yaml' },
      body: 'sites: [{ name: dc1 }]\n',
    });
    assert.equal(write.status, 503);
    const body = (await write.json()) as { error: { code: string; details: { leader: string } } };
    assert.equal(body.error.code, 'CONTINUUM_ERR_NOT_LEADER');
    assert.equal(body.error.details.leader, `http://${leader.controller.controllerId}.test:7400`);
    assert.equal((await follower.api.request('/v1/workloads', { headers: auth })).status, 200);
    const health = (await (await follower.api.request('/healthz')).json()) as { role: string };
    assert.equal(health.role, 'follower');

    const sent: ControllerMessage[] = [];
    const channel = { send: (m: ControllerMessage) => sent.push(m), close: () => undefined };
    await assert.rejects(
      follower.controller.agentMessage(channel, undefined, hello('n1')),
      (err: unknown) => err instanceof ContinuumError && err.code === 'CONTINUUM_ERR_NOT_LEADER',
    );
    await leader.controller.agentMessage(channel, undefined, hello('n1'));
    assert.equal(sent[0]?.type, 'welcome');

    // The leader stops: it revokes its lease and the follower leads without waiting for the TTL.
    await leader.controller.stop();
    await runFor(clock, 100);
    assert.equal(follower.controller.isLeader, true);
    await follower.controller.stop();
  });
});
