// runRedirector with --metrics-listen: real connections through the stable address move the
// connection and byte counters of their endpoint, and the text passes promtool.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { promtoolMissing, promtoolProblems, sampleValue } from '../platform/prom-test-support.js';
import { runRedirector } from './main.js';
import {
  captureLogger,
  ControllerStub,
  freePort,
  route,
  startTaggedEchoServer,
  TestClient,
  waitFor,
} from './test-support.js';

describe('redirector metrics', () => {
  const cleanups: (() => Promise<void>)[] = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('counts connections and bytes per endpoint at /metrics', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'continuum-redirector-metrics-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const target = await startTaggedEchoServer('a');
    cleanups.push(() => target.kill());
    const stub = await new ControllerStub().start();
    cleanups.push(() => stub.stop());
    const port = await freePort();
    stub.current = { revision: 1, routes: [route(port, target)] };
    const running = await runRedirector({
      controllerUrls: [stub.url],
      token: 't',
      cacheFile: join(dir, 'routes.json'),
      logger: captureLogger(),
      metricsListen: '127.0.0.1:0',
    });
    cleanups.push(() => running.close());
    assert.match(running.metricsUrl ?? '', /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    await waitFor('the listener', () => running.redirector.stats()[0]?.listening === true);
    const client = new TestClient(port);
    client.socket.write('hello');
    await client.expectReceived('a:hello');
    const scrape = async () => (await fetch(running.metricsUrl!)).text();
    const labels = { workload: route(port, target).workload };
    let text = await scrape();
    assert.equal(sampleValue(text, 'continuum_redirector_connections_active', labels), 1);
    assert.equal(sampleValue(text, 'continuum_redirector_connections_total', labels), 1);
    assert.equal(sampleValue(text, 'continuum_redirector_received_bytes_total', labels), 5);
    assert.equal(sampleValue(text, 'continuum_redirector_sent_bytes_total', labels), 7);
    client.socket.end();
    await client.waitClosed();
    await waitFor(
      'the connection to end',
      () => running.redirector.stats()[0]?.connectionsActive === 0,
    );
    text = await scrape();
    assert.equal(sampleValue(text, 'continuum_redirector_connections_active', labels), 0);
    const missing = promtoolMissing();
    if (missing !== undefined) return t.skip(missing);
    assert.deepEqual(promtoolProblems(text), []);
  });

  it('refuses a malformed --metrics-listen before it starts anything', async () => {
    await assert.rejects(
      runRedirector({
        controllerUrls: ['http://127.0.0.1:1'],
        token: 't',
        cacheFile: join(tmpdir(), 'unused-routes.json'),
        logger: captureLogger(),
        metricsListen: 'localhost',
      }),
      /--metrics-listen: expected host:port/,
    );
  });
});
