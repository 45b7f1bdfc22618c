// Self-fencing: the agent fences its primary and stops the instance only when the primary's
// operations have waited fenceTimeoutMs and no controller was heard for as long; the instance does
// not start again at that epoch, says it was fenced, and the 'fenced' report made while cut off
// reaches the controller after the next welcome.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { silentLogger } from '../core/ports.js';
import type { AgentMessage, PrimaryReportMessage } from '../core/protocol.js';
import { workloadSpecSchema } from '../core/spec.js';
import { FakeClock } from '../sim/fake-clock.js';
import type { VolumeDuty, VolumeDutyPort } from '../storage/replication/types.js';
import { AgentCore } from './agent.js';
import { fencedReportResendMs, keptFencedReportsMax, SelfFence } from './self-fence.js';
import { memoryHost, RecordingDriver } from './test-support.js';

const fenceTimeoutMs = 5000;

const unresponsive = (waitingMs: number, epoch = 1): PrimaryReportMessage => ({
  kind: 'unresponsive',
  volume: 'data',
  epoch,
  node: 'n2',
  isrVersion: 1,
  waitingMs,
});

describe('SelfFence', () => {
  it('fences only when operations waited and no controller was heard, each for the timeout', () => {
    const fence = new SelfFence(fenceTimeoutMs, 0);
    assert.equal(fence.reasonFor(unresponsive(9000), 4999), undefined, 'heard at start');
    fence.heard(1000);
    assert.equal(fence.reasonFor(unresponsive(9000), 5999), undefined, 'heard 4999 ms ago');
    assert.equal(fence.reasonFor(unresponsive(4999), 6000), undefined, 'waited too little');
    const reason = fence.reasonFor(unresponsive(5000), 6000);
    assert.match(reason ?? '', /^self-fenced: operations waited 5000 ms \(in-sync replica n2/);
    assert.match(reason ?? '', /no controller was heard for 5000 ms \(fenceTimeoutMs 5000\)/);
    const unclean: PrimaryReportMessage = {
      kind: 'unclean',
      volume: 'data',
      epoch: 3,
      node: 'n1',
      isrVersion: 1,
      waitingMs: 8000,
    };
    assert.match(fence.reasonFor(unclean, 7000) ?? '', /not closed cleanly/);
    const caughtUp: PrimaryReportMessage = {
      kind: 'caught-up',
      volume: 'data',
      epoch: 4,
      node: 'n2',
      isrVersion: 1,
    };
    assert.equal(fence.reasonFor(caughtUp, 60_000), undefined);
  });

  it('keeps each fenced report until taken, sends it again when due, at most keptFencedReportsMax', () => {
    const fence = new SelfFence(fenceTimeoutMs, 0);
    const fenced = (epoch: number): PrimaryReportMessage => ({
      kind: 'fenced',
      volume: 'data',
      epoch,
      reason: 'x',
    });
    // Heard just now, and still kept: the session may be dead without the agent knowing yet.
    fence.heard(1);
    fence.keepUntilTaken(fenced(1), 1);
    const caughtUp = { kind: 'caught-up', volume: 'data', epoch: 1, node: 'n2', isrVersion: 2 };
    fence.keepUntilTaken(caughtUp as PrimaryReportMessage, 1);
    assert.deepEqual(fence.due(1 + fencedReportResendMs - 1), [], 'not due yet');
    assert.deepEqual(fence.due(1 + fencedReportResendMs), [fenced(1)], 'due, and no other kind');
    assert.deepEqual(fence.due(1 + fencedReportResendMs + 1), [], 'counted as sent again');
    assert.deepEqual(fence.due(2, true), [fenced(1)], 'every one on a new session');
    fence.taken('data', 1);
    assert.deepEqual(fence.due(10 * fencedReportResendMs, true), [], 'taken: never again');
    for (let epoch = 1; epoch <= keptFencedReportsMax + 1; epoch++)
      fence.keepUntilTaken(fenced(epoch), 0);
    fence.keepUntilTaken(fenced(5), 0);
    const kept = fence.due(0, true);
    assert.equal(kept.length, keptFencedReportsMax, 'bounded, and one per fence');
    assert.equal(kept[0]?.epoch, 2, 'the oldest went');
  });

  it('rejects a fence timeout that is not a positive whole number of milliseconds', () => {
    assert.throws(() => new SelfFence(0, 0), /fenceTimeoutMs: expected a positive whole number/);
    assert.throws(() => new SelfFence(1.5, 0), /got 1.5/);
  });
});

describe('agent self-fencing', () => {
  const spec = workloadSpecSchema.parse({
    name: 'kv',
    driver: 'process',
    process: { command: ['true'] },
    volumes: [{ name: 'data', sizeMiB: 64, replicas: 2, mountPath: '/srv/kv' }],
  });
  let revision = 0;
  const assign = (core: AgentCore, epoch: number) =>
    core.handle({
      type: 'assignments',
      revision: ++revision,
      assignments: [{ workload: 'kv', epoch, spec, restartNonce: 0 }],
      epochs: {},
    });

  function setup() {
    const clock = new FakeClock();
    const driver = new RecordingDriver();
    const sent: AgentMessage[] = [];
    const fenceCalls: [string, number, string][] = [];
    const replication: VolumeDutyPort = {
      setDuties: (_duties: readonly VolumeDuty[]) => undefined,
      selfFence: (volume, epoch, reason) => fenceCalls.push([volume, epoch, reason]),
    };
    const core = new AgentCore({
      node: 'n1',
      host: '127.0.0.1',
      driver,
      probes: { run: () => Promise.resolve({ ok: true, durationMs: 0 }) },
      clock,
      logger: silentLogger,
      env: memoryHost({}),
      replication,
      fenceTimeoutMs,
      send: (message) => sent.push(message),
    });
    return { clock, driver, sent, fenceCalls, core };
  }

  it('cut off with writes waiting: fences the primary, stops the instance, and starts it only at a new epoch', async () => {
    const { clock, driver, sent, fenceCalls, core } = setup();
    assign(core, 1);
    await core.idle();
    assert.deepEqual([...driver.running.keys()], ['kv@1']);
    clock.advance(fenceTimeoutMs);
    core.volumeReport(unresponsive(fenceTimeoutMs));
    await core.idle();
    // A report the volume server queued before the fence took effect fences nothing more.
    core.volumeReport(unresponsive(fenceTimeoutMs + 100));
    assert.equal(fenceCalls.length, 1);
    assert.deepEqual(fenceCalls[0]?.slice(0, 2), ['data', 1]);
    assert.deepEqual([...driver.running.keys()], [], 'the instance stopped');
    const status = core.statuses()[0];
    assert.equal(status?.state, 'stopped');
    assert.equal(status?.fenced, true);
    const last = sent.filter((m) => m.type === 'instance').at(-1);
    assert.ok(last?.type === 'instance' && last.status.fenced === true);

    // The volume server's 'fenced' report comes while still cut off: kept, sent after the welcome.
    const fenced: PrimaryReportMessage = {
      kind: 'fenced',
      volume: 'data',
      epoch: 1,
      reason: fenceCalls[0][2],
    };
    core.volumeReport(fenced);
    sent.length = 0;
    core.handle({ type: 'welcome', clusterId: 'c', controllerId: 'c1', heartbeatIntervalMs: 200 });
    assert.deepEqual(sent, [{ type: 'volume-report', report: fenced }]);
    // Not confirmed: sent again on the working session once due; confirmed: never again.
    sent.length = 0;
    clock.advance(fencedReportResendMs);
    core.controllerHeard();
    assert.deepEqual(sent, [{ type: 'volume-report', report: fenced }]);
    core.handle({ type: 'fenced-taken', volume: 'data', epoch: 1 });
    sent.length = 0;
    clock.advance(fencedReportResendMs);
    core.controllerHeard();
    assert.deepEqual(sent, []);

    assign(core, 1);
    await core.idle();
    assert.deepEqual([...driver.running.keys()], [], 'not started again at the fenced epoch');
    assign(core, 2);
    await core.idle();
    assert.deepEqual([...driver.running.keys()], ['kv@2']);
    assert.equal(core.statuses()[0]?.fenced, undefined);
  });

  it('does not fence while the controller is heard, however long the writes wait', async () => {
    const { clock, driver, fenceCalls, core } = setup();
    assign(core, 1);
    await core.idle();
    for (let i = 1; i <= 10; i++) {
      clock.advance(fenceTimeoutMs - 1);
      core.controllerHeard();
      core.volumeReport(unresponsive(i * fenceTimeoutMs));
    }
    await core.idle();
    assert.deepEqual(fenceCalls, []);
    assert.deepEqual([...driver.running.keys()], ['kv@1']);
  });

  it('does not fence while the writes flow, however long the controller is away', async () => {
    const { clock, driver, fenceCalls, core } = setup();
    assign(core, 1);
    await core.idle();
    clock.advance(10 * fenceTimeoutMs);
    core.volumeReport(unresponsive(fenceTimeoutMs - 1));
    core.volumeReport({
      kind: 'resync',
      volume: 'data',
      epoch: 1,
      node: 'n2',
      mode: 'delta',
      bytesCopied: 0,
      bytesToCopy: 1,
      blocksCompared: 0,
      done: false,
    });
    await core.idle();
    assert.deepEqual(fenceCalls, []);
    assert.deepEqual([...driver.running.keys()], ['kv@1']);
  });
});
