// Controller loss: workloads keep running and serving while no controller answers; a restarted
// controller resumes without moving anything healthy.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { waitFor } from './harness/cluster.js';
import { info, serves, startDemo, type Demo } from './harness/demo.js';

/** GET over one kept-alive connection, so the test proves an existing connection keeps working. */
function getOver(agent: http.Agent, url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      })
      .on('error', reject);
  });
}

describe('controller down', () => {
  let demo: Demo;
  before(async () => (demo = await startDemo()));
  after(() => demo.cluster.close());

  it('keeps instances serving through existing and new connections, and moves nothing after a restart', async () => {
    const before = await demo.cluster.workload('kv');
    const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 });
    assert.equal(await getOver(keepAlive, `${demo.endpoint}/health`), 200);

    demo.cluster.signalProcess('controller', 'SIGKILL');
    await demo.cluster.waitExit('controller');
    await waitFor(
      'the API to be gone',
      5_000,
      async () =>
        !(await fetch(`${demo.cluster.url}/healthz`).then(
          () => true,
          () => false,
        )),
    );

    // Well past the failover timeout: with no controller nothing may stop or move.
    const deadline = Date.now() + 3_000;
    while (Date.now() < deadline) {
      assert.equal(
        await getOver(keepAlive, `${demo.endpoint}/health`),
        200,
        'existing connection serves',
      );
      assert.ok(await serves(demo.endpoint), 'new connections serve through the redirector');
    }
    assert.equal((await info(demo.endpoint)).pid, before.instance!.pid, 'the same instance serves');

    await demo.cluster.startController();
    await waitFor('every node to be up again', 10_000, async () => {
      const nodes = await demo.cluster.api<{ items: { state: string }[] }>('GET', '/v1/nodes');
      return nodes.body.items.every((n) => n.state === 'up');
    });
    // Observe for longer than the down timeout: a controller that wrongly judged nodes lost would move kv now.
    const observeUntil = Date.now() + 2_500;
    while (Date.now() < observeUntil) {
      const now = await demo.cluster.workload('kv');
      assert.equal(now.epoch, before.epoch, 'no change of owner');
      assert.equal(now.node, before.node);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal((await demo.cluster.workload('kv')).instance?.pid, before.instance!.pid);
    assert.equal(await getOver(keepAlive, `${demo.endpoint}/health`), 200);
    keepAlive.destroy();
    const decided = (await demo.cluster.events()).filter(
      (e) => e.kind.endsWith('.decided') && e.kind !== 'placement.decided',
    );
    assert.deepEqual(decided, [], 'no failover or move was decided');
  });
});
