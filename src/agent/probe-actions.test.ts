// What a failing probe does, per its action, on the instance runner with a fake clock: a slow
// response past the latency threshold restarts, an alert-only dependency probe reports without
// touching the instance, a script runs once before the ladder climbs, `failover` skips the
// restarts, and a resource probe judges the driver's stats.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { InstanceStatus } from '../core/model.js';
import { silentLogger } from '../core/ports.js';
import type { ProbeSpec } from '../core/probe-spec.js';
import { workloadSpecSchema, type WorkloadSpec } from '../core/spec.js';
import { FakeClock } from '../sim/fake-clock.js';
import type { InstanceStats } from './drivers/driver.js';
import { InstanceRunner } from './instance-runner.js';
import type { ProbeResult } from './probes/probe.js';
import { RecordingDriver } from './test-support.js';

type Answer = (probe: ProbeSpec) => ProbeResult;

function setup(probes: unknown[], answer: Answer, stats?: () => InstanceStats) {
  const clock = new FakeClock();
  const driver = new RecordingDriver();
  if (stats !== undefined) driver.stats = () => Promise.resolve(stats());
  const ran: ProbeSpec[] = [];
  const reports: InstanceStatus[] = [];
  const spec: WorkloadSpec = workloadSpecSchema.parse({
    name: 'kv',
    driver: 'process',
    process: { command: ['true'] },
    endpoints: [{ name: 'http', port: 8080 }],
    probes,
    availability: { restart: { maxRestarts: 2, windowMs: 600_000, backoffInitialMs: 100 } },
  });
  const runner = new InstanceRunner(
    {
      node: 'n1',
      host: '127.0.0.1',
      driver,
      probes: {
        run: (probe) => {
          ran.push(probe);
          return Promise.resolve(answer(probe));
        },
      },
      clock,
      logger: silentLogger,
      startupProbeIntervalMs: 50,
      startupTimeoutMs: 10_000,
      report: (status) => reports.push(structuredClone(status)),
      isCurrent: () => true,
      changed: () => undefined,
    },
    {
      workload: 'kv',
      epoch: 1,
      spec,
      restartNonce: 0,
      ports: { http: 40000 },
      runDir: '/run/kv',
      cwd: '/work/kv',
      env: {},
    },
  );
  /** Moves the clock in steps of 50 ms, letting each check's promise settle between them. */
  const run = async (ms: number) => {
    for (let t = 0; t < ms; t += 50) {
      clock.advance(50);
      for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
    }
  };
  /** Runs until the condition holds (or fails the test after maxMs). */
  const runUntil = async (condition: () => boolean, maxMs: number) => {
    for (let t = 0; t < maxMs && !condition(); t += 50) await run(50);
    assert.ok(condition(), `condition not met within ${maxMs} ms`);
  };
  return { clock, driver, runner, ran, reports, run, runUntil };
}

const ok = (durationMs = 5): ProbeResult => ({ ok: true, durationMs });
const down = (error: string): ProbeResult => ({ ok: false, durationMs: 1, error, answered: false });

describe('probe actions', () => {
  it('restarts an instance whose p95 response time stays above the threshold', async () => {
    let slowMs = 0;
    const health = {
      type: 'http',
      name: 'health',
      endpoint: 'http',
      intervalMs: 100,
      latency: { thresholdMs: 200, windowMs: 5000, samplesMin: 10 },
    };
    const t = setup([health], () => ok(slowMs === 0 ? 5 : slowMs));
    await t.runner.start();
    await t.run(3000);
    assert.equal(t.runner.status().state, 'healthy');
    slowMs = 800;
    await t.run(100);
    slowMs = 0;
    await t.run(1000);
    // One slow check among thirty fast ones is not a p95 above 200 ms.
    assert.equal(t.driver.started.length, 1);
    slowMs = 800;
    await t.runUntil(() => t.reports.some((r) => r.state === 'restarting'), 2000);
    const restarting = t.reports.find((r) => r.state === 'restarting')!;
    assert.match(
      restarting.message ?? '',
      /probe health: p95 response time 800 ms .* above 200 ms/,
    );
    slowMs = 0;
    await t.run(2000);
    assert.equal(t.driver.started.length, 2);
    assert.equal(t.runner.status().state, 'healthy');
  });

  it('only reports a failing alert-only dependency, and its recovery', async () => {
    let reachable = true;
    const t = setup(
      [
        { type: 'http', name: 'health', endpoint: 'http' },
        { type: 'dependency', name: 'db', tcp: '127.0.0.1:5432', failureThreshold: 2 },
      ],
      (probe) => (probe.type !== 'dependency' || reachable ? ok() : down('ECONNREFUSED')),
    );
    await t.runner.start();
    await t.run(2000);
    reachable = false;
    await t.run(3000);
    const status = t.runner.status();
    assert.equal(status.state, 'healthy');
    assert.equal(status.probes.db?.failing, true);
    assert.equal(status.probes.db?.action, 'alert');
    assert.match(status.probes.db?.reason ?? '', /checks in a row failed/);
    assert.equal(t.driver.started.length, 1);
    reachable = true;
    await t.run(1500);
    assert.equal(t.runner.status().probes.db?.failing, false);
    assert.ok(t.reports.some((r) => r.probes.db?.failing === true));
  });

  it('runs the remediation script first, then climbs to a restart', async () => {
    let failing = false;
    const t = setup(
      [
        {
          type: 'dependency',
          name: 'cache',
          http: 'http://127.0.0.1:6000/ping',
          failureThreshold: 2,
          action: 'script',
          remediation: { command: ['/usr/local/bin/restart-cache'], timeoutMs: 5000 },
        },
      ],
      (probe) => (probe.type === 'dependency' && failing ? down('status 503') : ok()),
    );
    await t.runner.start();
    await t.run(1000);
    failing = true;
    await t.run(3000);
    const scripts = t.ran.filter((p) => p.type === 'exec');
    assert.equal(scripts.length, 1);
    assert.deepEqual(scripts[0]?.type === 'exec' && scripts[0].command, [
      '/usr/local/bin/restart-cache',
    ]);
    assert.equal(t.runner.status().probes.cache?.remediation?.ok, true);
    assert.equal(t.driver.started.length, 1, 'the script rung comes before a restart');
    await t.run(3000);
    // Still failing after its script: the ladder climbs to a restart in place.
    assert.ok(t.reports.some((r) => r.state === 'restarting'));
  });

  it('asks for failover at once when the action is failover', async () => {
    let failing = false;
    const t = setup(
      [
        {
          type: 'http',
          name: 'health',
          endpoint: 'http',
          failureThreshold: 2,
          errorRate: { max: 0.3, windowMs: 10_000, samplesMin: 4 },
          action: 'failover',
        },
      ],
      () => (failing ? { ok: false, durationMs: 2, error: 'status 500', answered: true } : ok()),
    );
    await t.runner.start();
    await t.run(4000);
    failing = true;
    await t.run(3000);
    const status = t.runner.status();
    assert.equal(status.state, 'failed');
    assert.equal(status.failoverRequested, true);
    assert.equal(t.driver.started.length, 1, 'no restart in place');
    assert.match(status.message ?? '', /its action is failover, asking for failover/);
  });

  it('judges memory and open files of the instance from the driver', async () => {
    let rssBytes = 50 * 1024 * 1024;
    const t = setup(
      [
        { type: 'http', name: 'health', endpoint: 'http' },
        { type: 'resource', name: 'usage', memoryMiBMax: 100, openFilesMax: 64, action: 'alert' },
      ],
      () => ok(),
      () => ({ cpuSeconds: 0, rssBytes, openFiles: 10 }),
    );
    await t.runner.start();
    await t.run(2000);
    assert.equal(t.runner.status().probes.usage?.failing, false);
    rssBytes = 300 * 1024 * 1024;
    await t.run(4000);
    const usage = t.runner.status().probes.usage;
    assert.equal(usage?.failing, true);
    assert.match(usage?.lastError ?? '', /memory 300 MiB above 100 MiB/);
    assert.equal(t.runner.status().state, 'healthy');
  });

  it('watches with a probe added to the spec at once, without a restart', async () => {
    let reachable = true;
    const t = setup([{ type: 'http', name: 'health', endpoint: 'http' }], (probe) =>
      probe.type !== 'dependency' || reachable ? ok() : down('ECONNREFUSED'),
    );
    await t.runner.start();
    await t.run(2000);
    const spec = workloadSpecSchema.parse({
      ...t.runner.spec,
      probes: [
        ...t.runner.spec.probes,
        { type: 'dependency', name: 'db', tcp: '127.0.0.1:5432', failureThreshold: 2 },
      ],
    });
    t.runner.updateSpec(spec);
    reachable = false;
    await t.run(3000);
    assert.equal(t.runner.status().probes.db?.failing, true);
    assert.equal(t.driver.started.length, 1);
    // Removed again: its loop ends and it is no longer reported.
    t.runner.updateSpec(workloadSpecSchema.parse({ ...spec, probes: spec.probes.slice(0, 1) }));
    const checks = t.ran.length;
    await t.run(3000);
    assert.equal(t.runner.status().probes.db, undefined);
    assert.ok(t.ran.slice(checks).every((p) => p.type === 'http'));
  });
});
