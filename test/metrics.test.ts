// Metrics on a real cluster (issue 8, "Show"): the controller's /metrics (API token) and an agent's
// (--metrics-listen) pass promtool; killing the node that runs kv moves the failover counter and
// the restore-time histogram; the controller's metrics history answers with samples.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { demoNodes } from '../src/cli/demo-spec.js';
import {
  promtoolMissing,
  promtoolProblems,
  sampleValue,
} from '../src/platform/prom-test-support.js';
import { freePort, waitFor } from './harness/cluster.js';
import { activeOn, serves, startDemo, type Demo } from './harness/demo.js';

describe('metrics on a real cluster', () => {
  let demo: Demo;
  const agentMetrics = new Map<string, string>();
  before(async () => {
    const nodes = [];
    for (const node of demoNodes) {
      const address = `127.0.0.1:${await freePort()}`;
      agentMetrics.set(node.name, `http://${address}/metrics`);
      nodes.push({ ...node, args: ['--metrics-listen', address] });
    }
    demo = await startDemo({ nodes });
  });
  after(() => demo.cluster.close());

  async function controllerMetrics(): Promise<string> {
    const response = await fetch(`${demo.cluster.url}/metrics`, {
      headers: { authorization: `Bearer ${demo.cluster.apiToken()}` },
    });
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    return response.text();
  }

  function assertValid(t: { skip(message: string): void }, text: string): void {
    const missing = promtoolMissing();
    if (missing !== undefined) return t.skip(missing);
    assert.deepEqual(promtoolProblems(text), []);
  }

  it('serves controller metrics only with the API token, in text promtool accepts', async (t) => {
    const refused = await fetch(`${demo.cluster.url}/metrics`);
    assert.equal(refused.status, 401);
    await refused.text();
    const text = await controllerMetrics();
    assert.equal(sampleValue(text, 'continuum_workloads', { phase: 'active' }), 1);
    assert.equal(sampleValue(text, 'continuum_agent_sessions'), 3);
    assert.equal(sampleValue(text, 'continuum_controller_leader'), 1);
    assert.equal(sampleValue(text, 'continuum_controller_elections_total'), 1);
    assertValid(t, text);
  });

  it('serves the metrics of the agent running kv, in text promtool accepts', async (t) => {
    const owner = (await demo.cluster.workload('kv')).node!;
    const text = await (await fetch(agentMetrics.get(owner)!)).text();
    assert.equal(sampleValue(text, 'continuum_agent_instances', { state: 'healthy' }), 1);
    assert.equal(sampleValue(text, 'continuum_agent_session_connected'), 1);
    const memory = sampleValue(text, 'continuum_agent_instance_resident_memory_bytes', {
      workload: 'kv',
    });
    assert.ok(memory !== undefined && memory > 0, `kv resident memory ${memory}`);
    assertValid(t, text);
  });

  it('counts the failover and its time to restore when the node running kv is killed', async () => {
    const before = await controllerMetrics();
    const failovers = sampleValue(before, 'continuum_failovers_total') ?? 0;
    const restoreCount = (text: string) =>
      sampleValue(text, 'continuum_restore_duration_seconds_count', { kind: 'failover' }) ?? 0;
    const restoresBefore = restoreCount(before);
    const kv = await demo.cluster.workload('kv');
    demo.cluster.signalGroup(kv.node!, 'SIGKILL');
    await activeOn(demo.cluster, (w) => w.node !== kv.node, 'kv to be active elsewhere');
    await waitFor('the endpoint to serve', 10_000, () => serves(demo.endpoint));
    const text = await waitFor('the restore to be counted', 10_000, async () => {
      const now = await controllerMetrics();
      return restoreCount(now) > restoresBefore ? now : undefined;
    });
    assert.equal(sampleValue(text, 'continuum_failovers_total'), failovers + 1);
    assert.equal(restoreCount(text), restoresBefore + 1);
    assert.equal(sampleValue(text, 'continuum_nodes', { state: 'down', role: 'production' }), 1);
  });

  it('answers the metrics history with samples', async () => {
    const { status, body } = await demo.cluster.api<{
      items: { labels: Record<string, string>; samples: [number, number][] }[];
    }>('GET', '/v1/metrics/history?series=instances&state=healthy');
    assert.equal(status, 200);
    assert.deepEqual(
      body.items.map((i) => i.labels),
      [{ state: 'healthy' }],
    );
    const [at, value] = body.items[0]!.samples[0]!;
    assert.ok(at > 0 && value >= 0, `first sample ${at}, ${value}`);
  });
});
