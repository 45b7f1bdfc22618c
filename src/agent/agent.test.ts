// Tests of the agent core with a driver that records what it is asked: assignments are applied
// level-based, an epoch older than one seen is refused (also after an agent restart), and
// instances not assigned any more are stopped.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { silentLogger } from '../core/ports.js';
import type { AgentMessage, Assignment } from '../core/protocol.js';
import { workloadSpecSchema } from '../core/spec.js';
import { FakeClock } from '../sim/fake-clock.js';
import { AgentCore } from './agent.js';
import type { AgentState } from './agent-state.js';
import { memoryHost, RecordingDriver } from './test-support.js';

let revision = 0;
const spec = workloadSpecSchema.parse({
  name: 'kv',
  driver: 'process',
  process: { command: ['true'] },
});
const assignment = (epoch: number, restartNonce = 0): Assignment => ({
  workload: 'kv',
  epoch,
  spec,
  restartNonce,
});

function agent(
  driver: RecordingDriver,
  saved: { state?: AgentState },
  sent: AgentMessage[],
): AgentCore {
  return new AgentCore({
    node: 'n1',
    host: '127.0.0.1',
    driver,
    probes: { run: () => Promise.resolve({ ok: true, durationMs: 0 }) },
    clock: new FakeClock(),
    logger: silentLogger,
    env: memoryHost(saved),
    send: (message) => sent.push(message),
  });
}

describe('agent core', () => {
  it('starts what is assigned and stops what is not', async () => {
    const driver = new RecordingDriver();
    const sent: AgentMessage[] = [];
    const core = agent(driver, {}, sent);
    core.handle({
      type: 'assignments',
      revision: ++revision,
      assignments: [assignment(1)],
      epochs: {},
    });
    await core.idle();
    assert.deepEqual([...driver.running.keys()], ['kv@1']);
    core.handle({ type: 'assignments', revision: ++revision, assignments: [], epochs: {} });
    await core.idle();
    assert.deepEqual([...driver.running.keys()], []);
    assert.ok(sent.some((m) => m.type === 'instance' && m.status.state === 'stopped'));
  });

  it('replaces an instance of an older epoch by the new one', async () => {
    const driver = new RecordingDriver();
    const core = agent(driver, {}, []);
    core.handle({
      type: 'assignments',
      revision: ++revision,
      assignments: [assignment(1)],
      epochs: {},
    });
    core.handle({
      type: 'assignments',
      revision: ++revision,
      assignments: [assignment(2)],
      epochs: {},
    });
    await core.idle();
    assert.deepEqual([...driver.running.keys()], ['kv@2']);
  });

  it('refuses an assignment whose epoch is older than one it has seen, also after its own restart', async () => {
    const driver = new RecordingDriver();
    const saved: { state?: AgentState } = {};
    const sent: AgentMessage[] = [];
    const first = agent(driver, saved, sent);
    first.handle({
      type: 'assignments',
      revision: ++revision,
      assignments: [assignment(3)],
      epochs: {},
    });
    await first.idle();
    first.handle({
      type: 'assignments',
      revision: ++revision,
      assignments: [assignment(2)],
      epochs: {},
    });
    await first.idle();
    assert.deepEqual(driver.started, ['kv@3'], 'epoch 2 was never started');
    assert.ok(
      sent.some(
        (m) => m.type === 'reject' && m.epoch === 2 && m.code === 'CONTINUUM_ERR_STALE_EPOCH',
      ),
    );

    first.detach();
    const restarted = agent(driver, saved, sent);
    await restarted.recover();
    restarted.handle({
      type: 'assignments',
      revision: ++revision,
      assignments: [assignment(1)],
      epochs: {},
    });
    await restarted.idle();
    assert.deepEqual(driver.started, ['kv@3'], 'a restarted agent still refuses epoch 1');
    assert.ok(driver.running.has('kv@3'), 'the re-attached instance keeps running');
  });

  it('never restarts a moved workload when an older set arrives late', async () => {
    const driver = new RecordingDriver();
    const sent: AgentMessage[] = [];
    const core = agent(driver, {}, sent);
    const first = {
      type: 'assignments' as const,
      revision: ++revision,
      assignments: [assignment(1)],
      epochs: { kv: 1 },
    };
    core.handle(first);
    await core.idle();
    // kv moved to another node at epoch 2: this node's set no longer has it.
    core.handle({ type: 'assignments', revision: ++revision, assignments: [], epochs: { kv: 2 } });
    // A duplicate of the first set, delivered late: older revision, ignored.
    core.handle(first);
    // The same stale assignment inside a newer set (a controller with an old view): refused by epoch.
    core.handle({
      type: 'assignments',
      revision: ++revision,
      assignments: [assignment(1)],
      epochs: { kv: 1 },
    });
    await core.idle();
    assert.deepEqual(driver.started, ['kv@1']);
    assert.deepEqual([...driver.running.keys()], []);
    assert.ok(sent.some((m) => m.type === 'reject' && m.epoch === 1));
  });

  it('learns a newer epoch from a set that arrives after a later one, and starts nothing older', async () => {
    const driver = new RecordingDriver();
    const core = agent(driver, {}, []);
    const base = ++revision;
    // Sets r+1 (kv@1 here) and r+3 (nothing about kv) arrive first; r+2, which says kv moved to
    // epoch 2 elsewhere, arrives last (reordered). The start of kv@1 is still queued behind r+1.
    core.handle({ type: 'assignments', revision: base + 1, assignments: [], epochs: {} });
    core.handle({
      type: 'assignments',
      revision: base + 2,
      assignments: [assignment(1)],
      epochs: { kv: 1 },
    });
    core.handle({ type: 'assignments', revision: base + 4, assignments: [], epochs: {} });
    core.handle({ type: 'assignments', revision: base + 3, assignments: [], epochs: { kv: 2 } });
    revision = base + 4;
    await core.idle();
    assert.deepEqual(driver.started, [], 'kv@1 never starts once epoch 2 is known');
    assert.equal(core.assignmentsRevision, base + 4);
  });

  it('restarts in place when the operator restart nonce grows', async () => {
    const driver = new RecordingDriver();
    const core = agent(driver, {}, []);
    core.handle({
      type: 'assignments',
      revision: ++revision,
      assignments: [assignment(1, 0)],
      epochs: {},
    });
    core.handle({
      type: 'assignments',
      revision: ++revision,
      assignments: [assignment(1, 1)],
      epochs: {},
    });
    await core.idle();
    assert.deepEqual(driver.started, ['kv@1', 'kv@1']);
  });

  it("answers a logs request with the instance's output, or says why it cannot", async () => {
    const driver = new RecordingDriver();
    const sent: AgentMessage[] = [];
    const core = agent(driver, {}, sent);
    const logs = (id: number, workload = 'kv') => {
      core.handle({ type: 'logs-request', id, request: { workload, linesMax: 2 } });
      return core.idle();
    };
    const reply = (id: number) => sent.find((m) => m.type === 'logs-reply' && m.id === id);
    core.handle({
      type: 'assignments',
      revision: ++revision,
      assignments: [assignment(1)],
      epochs: {},
    });
    await core.idle();
    await logs(1, 'other');
    assert.match(JSON.stringify(reply(1)), /CONTINUUM_ERR_NOT_FOUND.*no instance of other on n1/);
    await logs(2);
    assert.match(JSON.stringify(reply(2)), /the recording driver keeps no output/);
    const asked: { runDir: string; linesMax: number }[] = [];
    driver.logTail = (runDir, options) => {
      asked.push({ runDir, linesMax: options.linesMax });
      return Promise.resolve({ lines: ['started', 'serving'], truncated: true });
    };
    await logs(3);
    assert.deepEqual(asked, [{ runDir: '/run/kv', linesMax: 2 }]);
    assert.deepEqual(reply(3), {
      type: 'logs-reply',
      id: 3,
      ok: true,
      result: { epoch: 1, lines: ['started', 'serving'], truncated: true },
    });
  });
});
