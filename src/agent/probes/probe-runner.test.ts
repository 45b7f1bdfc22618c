// The real probe runner against real local servers on 127.0.0.1: each kind of check passing, and
// each way it can fail, with the reason it gives.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { probeSpecSchema } from '../../core/spec.js';
import { waitFor } from '../drivers/driver.contract.js';
import { isProcessAlive } from '../drivers/process/proc-fs.js';
import type { ProbeTarget } from './probe.js';
import { realProbeRunner } from './probe-runner.js';

const host = '127.0.0.1';

async function listen(t: TestContext, server: Server | HttpServer): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  t.after(() => {
    server.close();
    (server as HttpServer).closeAllConnections?.();
  });
  return (server.address() as AddressInfo).port;
}

/** A port nothing listens on: bound, noted, and released. */
async function closedPort(): Promise<number> {
  const server = createTcpServer();
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function target(t: TestContext, ports: Record<string, number> = {}): ProbeTarget {
  const cwd = mkdtempSync(join(tmpdir(), 'continuum-probe-'));
  t.after(() => rmSync(cwd, { recursive: true, force: true }));
  return { host, ports, cwd, env: { PROBE_VAR: 'seen' } };
}

async function httpServer(t: TestContext): Promise<number> {
  const server = createHttpServer((request, response) => {
    if (request.url === '/slow') return; // never answers
    response.statusCode = request.url === '/broken' ? 503 : 200;
    response.end(request.url === '/health' ? 'status: ready' : 'status: starting');
  });
  return listen(t, server);
}

test('tcp: ok when something listens, refused when nothing does', async (t) => {
  const port = await listen(
    t,
    createTcpServer((socket) => socket.end()),
  );
  const probe = probeSpecSchema.parse({ type: 'tcp', endpoint: 'main' });
  assert.deepEqual((await realProbeRunner.run(probe, target(t, { main: port }))).ok, true);
  const refused = await realProbeRunner.run(probe, target(t, { main: await closedPort() }));
  assert.equal(refused.ok, false);
  assert.match(refused.error ?? '', /ECONNREFUSED/);
  assert.equal(refused.answered, false);
});

test('an unknown endpoint is a failed check with a clear reason, not a throw', async (t) => {
  const probe = probeSpecSchema.parse({ type: 'tcp', endpoint: 'admin' });
  const result = await realProbeRunner.run(probe, target(t, { main: 1 }));
  assert.equal(result.ok, false);
  assert.match(result.error ?? '', /endpoint "admin" has no port.*known: main/);
});

test('http: ok on the expected status and body', async (t) => {
  const ports = { web: await httpServer(t) };
  const probe = probeSpecSchema.parse({
    type: 'http',
    endpoint: 'web',
    path: '/health',
    bodyMatch: 'ready',
  });
  const result = await realProbeRunner.run(probe, target(t, ports));
  assert.equal(result.ok, true, result.error);
});

test('http: a wrong status, a body mismatch and a timeout each fail with their reason', async (t) => {
  const ports = { web: await httpServer(t) };
  const run = (spec: object) =>
    realProbeRunner.run(
      probeSpecSchema.parse({ type: 'http', endpoint: 'web', ...spec }),
      target(t, ports),
    );
  const status = await run({ path: '/broken' });
  assert.match(status.error ?? '', /status 503, expected 200/);
  assert.equal(status.answered, true, 'a wrong status is an answer');
  const body = await run({ path: '/', bodyMatch: 'ready' });
  assert.match(body.error ?? '', /body does not contain "ready"/);
  const slow = await run({ path: '/slow', timeoutMs: 100 });
  assert.match(slow.error ?? '', /no answer within 100 ms/);
  assert.equal(slow.answered, false);
  const refused = await realProbeRunner.run(
    probeSpecSchema.parse({ type: 'http', endpoint: 'web' }),
    target(t, { web: await closedPort() }),
  );
  assert.match(refused.error ?? '', /ECONNREFUSED/);
});

test('exec: ok on exit 0, with the target env and cwd', async (t) => {
  const probeTarget = target(t);
  const script = `test "$PROBE_VAR" = seen && test "$(pwd)" = "${probeTarget.cwd}"`;
  const result = await realProbeRunner.run(
    probeSpecSchema.parse({ type: 'exec', command: ['sh', '-c', script] }),
    probeTarget,
  );
  assert.equal(result.ok, true, result.error);
});

test('exec: a non-zero exit fails with the code and the output tail', async (t) => {
  const script = 'echo "database unreachable" >&2; exit 3';
  const result = await realProbeRunner.run(
    probeSpecSchema.parse({ type: 'exec', command: ['sh', '-c', script] }),
    target(t),
  );
  assert.equal(result.ok, false);
  assert.match(result.error ?? '', /exit code 3; output: database unreachable/);
  assert.equal(result.answered, true);
});

test('exec: a timeout kills the whole group and says so', async (t) => {
  const probeTarget = target(t);
  const script = 'sleep 60 & echo $! > child.pid; echo started; wait';
  const probe = probeSpecSchema.parse({
    type: 'exec',
    command: ['sh', '-c', script],
    timeoutMs: 300,
  });
  const result = await realProbeRunner.run(probe, probeTarget);
  assert.equal(result.ok, false);
  assert.match(result.error ?? '', /did not finish within 300 ms; output: started/);
  const child = Number(readFileSync(join(probeTarget.cwd, 'child.pid'), 'utf8'));
  t.after(() => {
    try {
      process.kill(child, 'SIGKILL');
    } catch {
      // Gone already, as the test expects.
    }
  });
  // The group got SIGKILL; its death is asynchronous, so wait for it with a deadline.
  await waitFor(() => !isProcessAlive(child), `background child ${child} gone`);
});

test('dependency: reached over tcp or http from the node, whatever the instance listens on', async (t) => {
  const tcpPort = await listen(
    t,
    createTcpServer((socket) => socket.end()),
  );
  const httpPort = await httpServer(t);
  const gone = await closedPort();
  const dependency = (extra: Record<string, unknown>) =>
    probeSpecSchema.parse({ type: 'dependency', ...extra });
  const run = (extra: Record<string, unknown>) => realProbeRunner.run(dependency(extra), target(t));
  assert.equal((await run({ tcp: `${host}:${tcpPort}` })).ok, true);
  assert.equal((await run({ http: `http://${host}:${httpPort}/health` })).ok, true);
  const refused = await run({ tcp: `${host}:${gone}` });
  assert.equal(refused.ok, false);
  assert.match(refused.error ?? '', new RegExp(`tcp ${host}:${gone}: ECONNREFUSED`));
  const wrongStatus = await run({ http: `http://${host}:${httpPort}/broken` });
  assert.equal(wrongStatus.answered, true);
  assert.match(wrongStatus.error ?? '', /status 503, expected 200/);
  const slow = await run({ http: `http://${host}:${httpPort}/slow`, timeoutMs: 200 });
  assert.match(slow.error ?? '', /no answer within 200 ms/);
  assert.equal(dependency({ tcp: 'db:5432' }).action, 'alert', 'a dependency alerts unless told');
});
