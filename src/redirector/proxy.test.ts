// Tests of the redirector with real sockets on 127.0.0.1: piping, waiting for a target, failover
// to a new target, route removal, the pending limit, and hostile clients.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { Redirector, type RedirectorOptions } from './proxy.js';
import {
  captureLogger,
  freePort,
  route,
  startTaggedEchoServer,
  TestClient,
  waitFor,
  type TestServer,
} from './test-support.js';

const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const loggers = new WeakMap<Redirector, ReturnType<typeof captureLogger>>();

function redirector(options: Partial<RedirectorOptions> = {}): Redirector {
  const logger = captureLogger();
  const instance = new Redirector({ logger, listenRetryDelayMs: 20, ...options });
  loggers.set(instance, logger);
  cleanups.push(() => instance.close());
  return instance;
}

function logOf(proxy: Redirector): ReturnType<typeof captureLogger> {
  const logger = loggers.get(proxy);
  assert.ok(logger);
  return logger;
}

async function server(name: string): Promise<TestServer> {
  const started = await startTaggedEchoServer(name);
  cleanups.push(() => started.kill());
  return started;
}

function client(port: number): TestClient {
  const started = new TestClient(port);
  cleanups.push(async () => {
    started.socket.destroy();
    await started.waitClosed();
  });
  return started;
}

async function listening(proxy: Redirector): Promise<void> {
  await waitFor('the listener', () => proxy.stats().every((entry) => entry.listening));
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.on('connect', () => (socket.destroy(), resolve(false)));
    socket.on('error', () => resolve(true));
  });
}

describe('Redirector', () => {
  it('pipes bytes both ways and passes a half-close on', async () => {
    const a = await server('a');
    const proxy = redirector();
    const port = await freePort();
    assert.equal(proxy.applyRoutes({ revision: 1, routes: [route(port, a)] }), true);
    await listening(proxy);
    const c = client(port);
    c.socket.write('hello');
    await c.expectReceived('a:hello');
    c.socket.end();
    await waitFor('the end from the target', () => c.ended);
    await c.waitClosed();
    const [stats] = proxy.stats();
    assert.equal(stats?.inboundBytesTotal, 5);
    assert.equal(stats?.outboundBytesTotal, 7);
    assert.equal(stats?.connectionsAcceptedTotal, 1);
    await waitFor('no active connection', () => proxy.stats()[0]?.connectionsActive === 0);
  });

  it('holds a client while no target is routable and serves it, early bytes included, once one is', async () => {
    const a = await server('a');
    const proxy = redirector();
    const port = await freePort();
    proxy.applyRoutes({ revision: 1, routes: [route(port, null)] });
    await listening(proxy);
    const c = client(port);
    c.socket.write('early');
    await waitFor('a pending client', () => proxy.stats()[0]?.connectionsPending === 1);
    assert.equal(c.received, '');
    proxy.applyRoutes({ revision: 2, routes: [route(port, a, { epoch: 2 })] });
    await c.expectReceived('a:early');
    assert.equal(proxy.stats()[0]?.connectionsActive, 1);
  });

  it('closes a waiting client after connectWaitMs', async () => {
    const proxy = redirector({ connectWaitMs: 50 });
    const port = await freePort();
    proxy.applyRoutes({ revision: 1, routes: [route(port, null)] });
    await listening(proxy);
    const startedAt = performance.now();
    const c = client(port);
    await c.waitDisconnected();
    // Only a lower bound: a slow machine may close later, never sooner.
    assert.ok(performance.now() - startedAt >= 45);
    assert.equal(proxy.stats()[0]?.connectionsTimedOutTotal, 1);
    assert.ok(logOf(proxy).has('no target answered within connectWaitMs'));
  });

  it('with connectWaitMs 0, still tries a routable target once and closes at once without one', async () => {
    const a = await server('a');
    const proxy = redirector({ connectWaitMs: 0 });
    const [routed, unrouted] = [await freePort(), await freePort()];
    proxy.applyRoutes({
      revision: 1,
      routes: [route(routed, a), route(unrouted, null, { endpoint: 'other' })],
    });
    await listening(proxy);
    const served = client(routed);
    served.socket.write('x');
    await served.expectReceived('a:x');
    const closed = client(unrouted);
    await closed.waitDisconnected();
    assert.equal(proxy.stats()[1]?.connectionsTimedOutTotal, 1);
  });

  it('retries a refused target until the route moves to a live one (failover)', async () => {
    const a = await server('a');
    const b = await server('b');
    const proxy = redirector({ retryDelayMs: 5 });
    const port = await freePort();
    proxy.applyRoutes({ revision: 1, routes: [route(port, a)] });
    await listening(proxy);
    await a.kill();
    const c = client(port);
    c.socket.write('ping');
    await waitFor('refused connects', () => (proxy.stats()[0]?.connectFailuresTotal ?? 0) >= 2);
    proxy.applyRoutes({
      revision: 2,
      routes: [route(port, { port: b.port, node: 'b' }, { epoch: 2 })],
    });
    await c.expectReceived('b:ping');
  });

  it('keeps existing connections on their target at an epoch change; new ones go to the new target', async () => {
    const a = await server('a');
    const b = await server('b');
    const proxy = redirector();
    const port = await freePort();
    proxy.applyRoutes({ revision: 1, routes: [route(port, a)] });
    await listening(proxy);
    const old = client(port);
    old.socket.write('1');
    await old.expectReceived('a:1');
    proxy.applyRoutes({
      revision: 2,
      routes: [route(port, { port: b.port, node: 'b' }, { epoch: 2 })],
    });
    const fresh = client(port);
    fresh.socket.write('2');
    await fresh.expectReceived('b:2');
    old.socket.write('3');
    await old.expectReceived('a:3');
  });

  it('ignores a table older than the one in force', async () => {
    const a = await server('a');
    const b = await server('b');
    const proxy = redirector();
    const port = await freePort();
    assert.equal(proxy.applyRoutes({ revision: 5, routes: [route(port, a)] }), true);
    assert.equal(proxy.applyRoutes({ revision: 4, routes: [route(port, b)] }), false);
    assert.equal(proxy.appliedRevision(), 5);
    await listening(proxy);
    const c = client(port);
    c.socket.write('x');
    await c.expectReceived('a:x');
  });

  it('closes the listener of a removed route but lets its piped connections finish', async () => {
    const a = await server('a');
    const proxy = redirector();
    const port = await freePort();
    proxy.applyRoutes({ revision: 1, routes: [route(port, a)] });
    await listening(proxy);
    const c = client(port);
    c.socket.write('1');
    await c.expectReceived('a:1');
    proxy.applyRoutes({ revision: 2, routes: [] });
    await waitFor('the port to refuse connections', () => refused(port));
    c.socket.write('2');
    await c.expectReceived('a:2');
    assert.equal(proxy.stats()[0]?.listenPort, null);
    c.socket.end();
    await c.waitClosed();
    await waitFor('the removed endpoint to leave stats', () => proxy.stats().length === 0);
  });

  it('closes new clients beyond pendingConnectionsMax, and logs it once', async () => {
    const proxy = redirector({ pendingConnectionsMax: 2 });
    const port = await freePort();
    proxy.applyRoutes({ revision: 1, routes: [route(port, null)] });
    await listening(proxy);
    client(port);
    client(port);
    await waitFor('two pending clients', () => proxy.stats()[0]?.connectionsPending === 2);
    const third = client(port);
    const fourth = client(port);
    await third.waitDisconnected();
    await fourth.waitDisconnected();
    const [stats] = proxy.stats();
    assert.equal(stats?.connectionsRejectedTotal, 2);
    assert.equal(stats?.connectionsPending, 2);
    assert.equal(
      logOf(proxy).entries.filter((e) => e.message.includes('too many clients')).length,
      1,
    );
  });

  it('is not disturbed by a client that sends garbage and resets', async () => {
    const a = await server('a');
    const proxy = redirector();
    const port = await freePort();
    proxy.applyRoutes({ revision: 1, routes: [route(port, a)] });
    await listening(proxy);
    const good = client(port);
    good.socket.write('before');
    await good.expectReceived('a:before');
    for (let round = 0; round < 5; round += 1) {
      const hostile = client(port);
      await waitFor('the hostile client to connect', () => !hostile.socket.connecting);
      hostile.socket.write(Buffer.from([0xff, 0x00, 0xfe, 0x13, 0x37]));
      hostile.socket.resetAndDestroy();
      await hostile.waitClosed();
    }
    good.socket.write('after');
    await good.expectReceived('a:after');
    await waitFor(
      'only the good connection active',
      () => proxy.stats()[0]?.connectionsActive === 1,
    );
  });

  it('retries a listen address in use until it is free, without crashing', async () => {
    const holder = await server('holder');
    const proxy = redirector();
    proxy.applyRoutes({ revision: 1, routes: [route(holder.port, null)] });
    await waitFor('the listen error to be logged', () => logOf(proxy).has('cannot listen'));
    assert.equal(proxy.stats()[0]?.listening, false);
    await holder.kill();
    await listening(proxy);
  });

  it('validates its options and names the bad value', () => {
    const logger = captureLogger();
    assert.throws(() => new Redirector({ logger, connectWaitMs: -1 }), {
      name: 'RangeError',
      message: /connectWaitMs.*got -1/,
    });
    assert.throws(
      () => new Redirector({ logger, pendingConnectionsMax: 0 }),
      /pendingConnectionsMax.*got 0/,
    );
    assert.throws(
      () => new Redirector({ logger, retryDelayMs: Number.NaN }),
      /retryDelayMs.*got NaN/,
    );
    assert.throws(() => new Redirector({ logger, connectAttemptTimeoutMs: 1.5 }), /got 1.5/);
  });

  it('close() destroys waiting and piped connections', async () => {
    const a = await server('a');
    const proxy = redirector();
    const [portA, portB] = [await freePort(), await freePort()];
    proxy.applyRoutes({
      revision: 1,
      routes: [route(portA, a), route(portB, null, { endpoint: 'other' })],
    });
    await listening(proxy);
    const piped = client(portA);
    piped.socket.write('x');
    await piped.expectReceived('a:x');
    const waiting = client(portB);
    await waitFor('a pending client', () => proxy.stats()[1]?.connectionsPending === 1);
    await proxy.close();
    await piped.waitDisconnected();
    await waiting.waitDisconnected();
    assert.deepEqual(proxy.stats(), []);
  });
});
