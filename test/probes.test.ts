// Application probes on real processes: the demo service made slow is caught by a latency probe
// (p95 over a window) and restarted, as its action says; a dependency the node loses (a server
// the test runs, closed for real) is reported as failing and then recovered, while the instance
// keeps serving, since that probe's action is to alert.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { freePort, waitFor } from './harness/cluster.js';
import { activeOn, info, serves, startDemo, type Demo } from './harness/demo.js';

/** A stand-in for a database the service needs: it accepts connections and closes them. */
async function listenDependency(port: number): Promise<Server> {
  const server = createServer((socket) => socket.end());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return server;
}

const closeServer = (server: Server) => new Promise((resolve) => server.close(resolve));

describe('application probes', () => {
  let demo: Demo;
  let dependencyPort: number;
  let dependency: Server | undefined;

  before(async () => {
    dependencyPort = await freePort();
    dependency = await listenDependency(dependencyPort);
    demo = await startDemo({
      extraProbes: [
        {
          name: 'latency',
          type: 'http',
          endpoint: 'http',
          path: '/health',
          intervalMs: 200,
          timeoutMs: 2000,
          latency: { thresholdMs: 400, quantile: 0.9, windowMs: 3000, samplesMin: 5 },
          action: 'restart',
        },
        {
          name: 'database',
          type: 'dependency',
          tcp: `127.0.0.1:${dependencyPort}`,
          intervalMs: 200,
          failureThreshold: 3,
        },
      ],
    });
  });
  after(async () => {
    await demo?.cluster.close();
    if (dependency !== undefined) await closeServer(dependency);
  });

  it('restarts a service whose response time stays above the latency threshold', async () => {
    const before = await demo.cluster.workload('kv');
    const slowed = await fetch(`${demo.endpoint}/admin/slow`, {
      method: 'POST',
      body: JSON.stringify({ delayMs: 900 }),
    });
    assert.equal(slowed.status, 204);
    const failed = await waitFor('the latency probe to fail', 20_000, async () =>
      (await demo.cluster.events('probe.failed')).find((e) => e.data?.probe === 'latency'),
    );
    assert.match(
      failed.message,
      /p90 response time \d+ ms over the last \d+ checks .* above 400 ms/,
    );
    assert.equal(failed.data?.action, 'restart');
    const after = await activeOn(
      demo.cluster,
      (w) => w.instance?.pid !== before.instance?.pid,
      'kv to be active with a new pid',
    );
    assert.equal(after.node, before.node, 'restarted in place, not failed over');
    assert.equal(after.epoch, before.epoch);
    await waitFor('the endpoint to serve', 10_000, () => serves(demo.endpoint));
    // The slow switch was not persisted: the restarted service answers at once.
    const now = (await (await fetch(`${demo.endpoint}/info`)).json()) as { slowDelayMs: number };
    assert.equal(now.slowDelayMs, 0);
    const restarting = await demo.cluster.events('instance.restarting');
    assert.ok(restarting.some((e) => /probe latency: p90 response time/.test(e.message)));
  });

  it('alerts on a lost dependency and its recovery, leaving the instance alone', async () => {
    const before = await demo.cluster.workload('kv');
    await closeServer(dependency!);
    dependency = undefined;
    const failed = await waitFor('the dependency probe to fail', 20_000, async () =>
      (await demo.cluster.events('probe.failed')).find((e) => e.data?.probe === 'database'),
    );
    assert.match(failed.message, /probe database of kv on .* is failing: 3 checks in a row failed/);
    assert.match(failed.message, /ECONNREFUSED/);
    assert.equal(failed.data?.action, 'alert');
    const during = await demo.cluster.workload('kv');
    assert.equal(during.instance?.pid, before.instance?.pid, 'the instance was not restarted');
    assert.ok(await serves(demo.endpoint), 'the service still serves');
    assert.equal((await info(demo.endpoint)).pid, before.instance?.pid);
    dependency = await listenDependency(dependencyPort);
    const recovered = await waitFor('the dependency probe to recover', 20_000, async () =>
      (await demo.cluster.events('probe.recovered')).find((e) => e.data?.probe === 'database'),
    );
    assert.ok(recovered.seq > failed.seq);
    assert.equal((await demo.cluster.workload('kv')).instance?.pid, before.instance?.pid);
  });
});
