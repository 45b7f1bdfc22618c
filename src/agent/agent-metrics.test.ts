// The agent's metrics served by a real listener: instance states, probes, restarts, the process
// figures of a real process (this one, from /proc), NBD counters by volume, resync progress and
// session state; the text passes promtool.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { InstanceStatus, ProbeStatus } from '../core/model.js';
import { silentLogger } from '../core/ports.js';
import { listenMetrics, type MetricsListener } from '../platform/metrics-listener.js';
import { promtoolMissing, promtoolProblems, sampleValue } from '../platform/prom-test-support.js';
import { newCounters, countOp } from '../storage/nbd/counters.js';
import { AgentMetrics, procUsage } from './agent-metrics.js';

function status(workload: string, fields: Partial<InstanceStatus> = {}): InstanceStatus {
  return {
    workload,
    node: 'node-1',
    epoch: 3,
    state: 'healthy',
    ports: {},
    restarts: 0,
    restartNonce: 0,
    failoverRequested: false,
    probes: {},
    ...fields,
  };
}

describe('agent metrics', () => {
  let statuses: InstanceStatus[] = [];
  const nbd = newCounters();
  const metrics = new AgentMetrics({
    statuses: () => statuses,
    nbdCounters: () => Promise.resolve(nbd),
  });
  let listener: MetricsListener;
  before(async () => (listener = await listenMetrics('127.0.0.1:0', metrics, silentLogger)));
  after(() => listener.close());

  async function scrape(): Promise<string> {
    const response = await fetch(listener.url);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    return response.text();
  }

  it('reads CPU time and resident memory of a real process from /proc', () => {
    const usage = procUsage(process.pid);
    assert.ok(usage !== undefined, 'this process is in /proc');
    assert.ok(usage.residentBytes > 1_000_000, `resident ${usage.residentBytes}`);
    assert.ok(usage.cpuSeconds > 0);
    assert.equal(procUsage(2 ** 22 + 1), undefined, 'no such process');
  });

  it('shows instances, probes, volume I/O, resyncs and the session in text promtool accepts', async (t) => {
    // lastDurationMs comes with the probes that time themselves (src/agent/probes).
    const timedProbe: ProbeStatus & { lastDurationMs: number } = {
      ok: true,
      consecutiveFailures: 0,
      lastDurationMs: 12,
    };
    statuses = [
      status('kv', {
        pid: process.pid,
        probes: { 'http-0': timedProbe },
      }),
      status('db', {
        state: 'restarting',
        restarts: 2,
        probes: { 'tcp-0': { ok: false, consecutiveFailures: 3 } },
      }),
    ];
    countOp(nbd, 'data', 'write', 4096);
    countOp(nbd, 'data', 'flush');
    countOp(nbd, 'data', 'read', 512);
    metrics.volumeReport({
      kind: 'resync',
      volume: 'data',
      epoch: 3,
      node: 'node-2',
      mode: 'full',
      bytesCopied: 1024,
      bytesToCopy: 4096,
      blocksCompared: 0,
      done: false,
    });
    metrics.sessionContact();
    metrics.sessionContact(); // a pong in the same session
    const text = await scrape();
    assert.equal(sampleValue(text, 'continuum_agent_instances', { state: 'healthy' }), 1);
    assert.equal(sampleValue(text, 'continuum_agent_instances', { state: 'restarting' }), 1);
    assert.equal(
      sampleValue(text, 'continuum_agent_probe_duration_seconds', { workload: 'kv' }),
      0.012,
    );
    assert.equal(sampleValue(text, 'continuum_agent_probe_up', { workload: 'db' }), 0);
    assert.equal(
      sampleValue(text, 'continuum_agent_instance_restarts_total', { workload: 'db' }),
      2,
    );
    assert.ok(
      (sampleValue(text, 'continuum_agent_instance_resident_memory_bytes', { workload: 'kv' }) ??
        0) > 0,
    );
    assert.equal(
      sampleValue(text, 'continuum_agent_volume_written_bytes_total', { volume: 'data' }),
      4096,
    );
    assert.equal(sampleValue(text, 'continuum_agent_volume_flushes_total', { volume: 'data' }), 1);
    assert.equal(
      sampleValue(text, 'continuum_agent_resync_copied_bytes', { volume: 'data' }),
      1024,
    );
    assert.equal(sampleValue(text, 'continuum_agent_session_connected'), 1);
    assert.equal(sampleValue(text, 'continuum_agent_session_reconnects_total'), 0);
    const missing = promtoolMissing();
    if (missing !== undefined) return t.skip(missing);
    assert.deepEqual(promtoolProblems(text), []);
  });

  it('counts restarts across windows and a reconnect after a lost session', async () => {
    statuses = [status('db', { restarts: 1 })]; // the window rolled over: a fall adds nothing
    metrics.sessionClosed();
    let text = await scrape();
    assert.equal(sampleValue(text, 'continuum_agent_session_connected'), 0);
    assert.equal(
      sampleValue(text, 'continuum_agent_instance_restarts_total', { workload: 'db' }),
      2,
    );
    statuses = [status('db', { restarts: 2 })];
    metrics.sessionContact();
    text = await scrape();
    assert.equal(
      sampleValue(text, 'continuum_agent_instance_restarts_total', { workload: 'db' }),
      3,
    );
    assert.equal(sampleValue(text, 'continuum_agent_session_reconnects_total'), 1);
  });

  it('answers 404 for anything but GET /metrics', async () => {
    const response = await fetch(listener.url.replace('/metrics', '/other'));
    assert.equal(response.status, 404);
    await response.text();
  });
});
