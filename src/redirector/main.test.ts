// End-to-end test of runRedirector: a stand-in controller publishes routes over SSE, clients reach
// the instance through the stable address, follow a failover, and keep routing (from the cache
// after a restart) while the controller is down.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
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

describe('runRedirector', () => {
  const cleanups: (() => Promise<void>)[] = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('routes by the controller, follows a failover, and survives the controller and a restart', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'continuum-redirector-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const [a, b] = [await startTaggedEchoServer('a'), await startTaggedEchoServer('b')];
    cleanups.push(
      () => a.kill(),
      () => b.kill(),
    );
    const stub = await new ControllerStub().start();
    cleanups.push(() => stub.stop());
    const port = await freePort();
    stub.current = { revision: 1, routes: [route(port, a)] };
    const options = {
      controllerUrls: [stub.url],
      token: 't',
      cacheFile: join(dir, 'routes.json'),
      logger: captureLogger(),
      retryDelayMs: 5,
      listenRetryDelayMs: 20,
      reconnectDelayMsInitial: 10,
      reconnectDelayMsMax: 40,
    };
    const first = await runRedirector(options);
    cleanups.push(() => first.close());
    await waitFor('the listener', () => first.redirector.stats()[0]?.listening === true);
    const one = new TestClient(port);
    one.socket.write('1');
    await one.expectReceived('a:1');

    await a.kill();
    stub.publish({ revision: 2, routes: [route(port, { port: b.port, node: 'b' }, { epoch: 2 })] });
    const two = new TestClient(port);
    two.socket.write('2');
    await two.expectReceived('b:2');
    two.socket.end();
    await two.waitClosed();

    await stub.stop();
    await first.close();
    const second = await runRedirector(options);
    cleanups.push(() => second.close());
    assert.equal(second.redirector.appliedRevision(), 2);
    await waitFor('the listener', () => second.redirector.stats()[0]?.listening === true);
    const three = new TestClient(port);
    three.socket.write('3');
    await three.expectReceived('b:3');
    three.socket.destroy();
    await waitFor('stats to count the connection', () =>
      second.redirector.stats().some((s) => s.connectionsAcceptedTotal === 1),
    );
  });
});
