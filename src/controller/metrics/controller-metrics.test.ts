// The controller's /metrics and metrics history in-process, on the simulator: the exposition passes
// promtool, the state gauges describe the cluster, and crashing the node that runs kv moves the
// failover counter and the restore-time histogram, and the history records the failover.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  promtoolMissing,
  promtoolProblems,
  sampleValue,
} from '../../platform/prom-test-support.js';
import { checkSafety } from '../../sim/checkers.js';
import { World } from '../../sim/world.js';
import { createApi } from '../api/app.js';
import { ControllerMetrics } from './controller-metrics.js';

const token = 'metrics-token-0123456789abcdef';
const auth = { authorization: `Bearer ${token}` };

describe('controller metrics', () => {
  let world: World;
  let metrics: ControllerMetrics;
  let app: ReturnType<typeof createApi>;

  before(async () => {
    world = new World({
      seed: 7,
      nodes: [
        { name: 'node-1', site: 'a', role: 'production', cpu: 4, memoryMiB: 4096 },
        { name: 'spare-1', site: 'a', role: 'spare', cpu: 4, memoryMiB: 4096 },
      ],
      spec: {
        sites: [{ name: 'a' }],
        workloads: [
          {
            name: 'kv',
            driver: 'process',
            process: { command: ['sim-service'] },
            resources: { cpu: 1, memoryMiB: 256 },
            endpoints: [{ name: 'http', port: 8080 }],
            probes: [{ type: 'http', endpoint: 'http', intervalMs: 500, failureThreshold: 2 }],
          },
        ],
      },
      config: { metricsSampleIntervalMs: 1000, metricsHistoryMs: 60_000 },
    });
    await world.start();
    await world.run(3_000, () => checkSafety(world));
    metrics = new ControllerMetrics(world.controller!);
    metrics.start();
    app = createApi(world.controller!, { apiToken: token, metrics });
  });
  after(async () => {
    metrics.stop();
    await world.close();
  });

  async function scrape(): Promise<string> {
    const response = await app.request('/metrics', { headers: auth });
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    return response.text();
  }

  it('refuses /metrics without the API token', async () => {
    const variants: Record<string, string>[] = [
      {},
      { authorization: 'Bearer not-the-token-0123456789' },
    ];
    for (const headers of variants) {
      const response = await app.request('/metrics', { headers });
      assert.equal(response.status, 401);
    }
  });

  it('describes the cluster in text that promtool accepts', async (t) => {
    const text = await scrape();
    assert.equal(sampleValue(text, 'continuum_nodes', { state: 'up', role: 'production' }), 1);
    assert.equal(sampleValue(text, 'continuum_nodes', { state: 'up', role: 'spare' }), 1);
    assert.equal(sampleValue(text, 'continuum_workloads', { phase: 'active' }), 1);
    assert.equal(sampleValue(text, 'continuum_instances', { state: 'healthy' }), 1);
    assert.equal(sampleValue(text, 'continuum_agent_sessions'), 2);
    assert.equal(sampleValue(text, 'continuum_controller_leader'), 1);
    assert.equal(
      sampleValue(text, 'continuum_probe_up', { workload: 'kv', node: 'node-1', probe: 'http-0' }),
      1,
    );
    assert.equal(sampleValue(text, 'continuum_failovers_total'), 0);
    const missing = promtoolMissing();
    if (missing !== undefined) return t.skip(missing);
    assert.deepEqual(promtoolProblems(text), []);
  });

  it('counts a failover and its time to restore when the node running kv crashes', async () => {
    const before = await scrape();
    const restoreCount = (text: string) =>
      sampleValue(text, 'continuum_restore_duration_seconds_count', { kind: 'failover' }) ?? 0;
    assert.equal(restoreCount(before), 0);
    world.nodes.get('node-1')!.crash();
    await world.run(6_000, () => checkSafety(world));
    assert.equal(world.workloads.get('kv')!.node, 'spare-1');
    const text = await scrape();
    assert.equal(sampleValue(text, 'continuum_failovers_total'), 1);
    assert.equal(sampleValue(text, 'continuum_transitions_total', { kind: 'failover' }), 1);
    assert.equal(restoreCount(text), 1);
    const restoreSum = sampleValue(text, 'continuum_restore_duration_seconds_sum', {
      kind: 'failover',
    });
    assert.ok(restoreSum !== undefined && restoreSum > 0, `restore time ${restoreSum}`);
    assert.ok(
      (sampleValue(text, 'continuum_journal_events_total', { kind: 'node.down' }) ?? 0) >= 1,
    );
    assert.equal(sampleValue(text, 'continuum_nodes', { state: 'down', role: 'production' }), 1);
  });

  it('keeps a history that shows the failover and the instances, filtered by labels', async () => {
    const response = await app.request('/v1/metrics/history?series=failovers_total', {
      headers: auth,
    });
    assert.equal(response.status, 200);
    const body = (await response.json()) as {
      items: { labels: Record<string, string>; samples: [number, number][] }[];
    };
    const values = body.items[0]!.samples.map(([, value]) => value);
    assert.equal(values[0], 0, 'no failover at the first sample');
    assert.equal(values.at(-1), 1, 'one failover at the last');
    const healthy = (await (
      await app.request('/v1/metrics/history?series=instances&state=healthy', { headers: auth })
    ).json()) as { items: { labels: Record<string, string>; samples: [number, number][] }[] };
    assert.deepEqual(
      healthy.items.map((i) => i.labels),
      [{ state: 'healthy' }],
    );
    assert.ok(healthy.items[0]!.samples.length >= 5, 'sampled every second for six seconds');
  });

  it('refuses an unknown series or a malformed since with 400, and lists the series', async () => {
    for (const query of ['series=nope', 'series=instances&since=yesterday']) {
      const response = await app.request(`/v1/metrics/history?${query}`, { headers: auth });
      assert.equal(response.status, 400, query);
      const body = (await response.json()) as { error: { code: string } };
      assert.equal(body.error.code, 'CONTINUUM_ERR_BAD_REQUEST');
    }
    const listing = (await (
      await app.request('/v1/metrics/history', { headers: auth })
    ).json()) as { series: string[] };
    assert.ok(listing.series.includes('node_cpu_usage_ratio'));
  });
});
