// Tests of the demo key-value service, run as the real child process Continuum would start: data
// operations, the body limit, the health switch with and without persistence across a restart in
// place, /info, and the exit code for a missing PORT.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { dataFileName, slowMarkerName, unhealthyMarkerName, valueBytesMax } from './kv-service.js';

const entryFile = fileURLToPath(new URL('./kv-service.ts', import.meta.url));
// Resolved here because the service runs in a temporary directory with no node_modules of its own.
const tsxLoader = import.meta.resolve('tsx');
const deadlineMs = 15_000;

const children = new Set<ChildProcess>();
const dirs: string[] = [];

after(() => {
  for (const child of children) if (child.exitCode === null) process.kill(child.pid!, 'SIGKILL');
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'kv-service-'));
  dirs.push(dir);
  return dir;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

interface Running {
  child: ChildProcess;
  base: string;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

/** Spawns the service and, unless told not to, waits with a deadline for its start line. */
async function startService(
  dir: string,
  env: Record<string, string | undefined>,
  options: { waitForStart?: boolean } = {},
): Promise<Running> {
  const fullEnv: NodeJS.ProcessEnv = { ...process.env, PORT: undefined, ...env };
  const child = spawn(process.execPath, ['--import', tsxLoader, entryFile], {
    cwd: dir,
    env: fullEnv,
  });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  const running = {
    child,
    base: `http://127.0.0.1:${env.PORT}`,
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
  };
  if (options.waitForStart ?? true) {
    await waitFor(() => stdout.includes('listening') || child.exitCode !== null, 'the start line');
    assert.equal(child.exitCode, null, `service exited early: ${stderr}`);
  }
  return running;
}

async function waitFor(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (!condition()) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Stops the service by its PID with SIGTERM and returns its exit code. */
async function stopService(running: Running): Promise<number | null> {
  process.kill(running.child.pid!, 'SIGTERM');
  const code = await Promise.race([
    running.exited,
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error('no exit after SIGTERM')), deadlineMs).unref(),
    ),
  ]);
  children.delete(running.child);
  return code;
}

async function setHealth(running: Running, body: Record<string, unknown>): Promise<void> {
  const res = await fetch(`${running.base}/admin/health`, {
    method: 'POST',
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 204, await res.text());
}

async function health(running: Running): Promise<[number, string]> {
  const res = await fetch(`${running.base}/health`);
  return [res.status, await res.text()];
}

describe('kv-service', () => {
  it('puts, gets, lists and deletes keys, and keeps them across a restart in place', async () => {
    const dir = tempDir();
    const env = { PORT: String(await freePort()) };
    const first = await startService(dir, env);
    assert.match(
      first.stdout(),
      new RegExp(`127\\.0\\.0\\.1:${env.PORT} pid=${first.child.pid} epoch=`),
    );
    assert.equal((await fetch(`${first.base}/kv/a`)).status, 404);
    assert.equal((await fetch(`${first.base}/kv/a`, { method: 'PUT', body: 'one' })).status, 204);
    assert.equal(
      (await fetch(`${first.base}/kv/b%2Fc`, { method: 'PUT', body: 'two' })).status,
      204,
    );
    assert.equal((await fetch(`${first.base}/kv/gone`, { method: 'PUT', body: 'x' })).status, 204);
    assert.equal((await fetch(`${first.base}/kv/gone`, { method: 'DELETE' })).status, 204);
    const got = await fetch(`${first.base}/kv/a`);
    assert.deepEqual([got.status, await got.text()], [200, 'one']);
    assert.deepEqual(await (await fetch(`${first.base}/kv`)).json(), ['a', 'b/c']);
    assert.equal(await stopService(first), 0);
    assert.ok(existsSync(join(dir, dataFileName)));

    const second = await startService(dir, { PORT: String(await freePort()) });
    assert.deepEqual(await (await fetch(`${second.base}/kv`)).json(), ['a', 'b/c']);
    assert.equal(await (await fetch(`${second.base}/kv/b%2Fc`)).text(), 'two');
    assert.equal((await fetch(`${second.base}/kv/gone`)).status, 404);
    assert.equal(await stopService(second), 0);
  });

  it('accepts a value of exactly 1 MiB and rejects one byte more with 413', async () => {
    const running = await startService(tempDir(), { PORT: String(await freePort()) });
    const fits = Buffer.alloc(valueBytesMax, 'a');
    assert.equal(
      (await fetch(`${running.base}/kv/big`, { method: 'PUT', body: fits })).status,
      204,
    );
    const over = Buffer.alloc(valueBytesMax + 1, 'b');
    const res = await fetch(`${running.base}/kv/big`, { method: 'PUT', body: over });
    assert.equal(res.status, 413);
    assert.match(await res.text(), /larger than 1048576 bytes/);
    // The rejected value changed nothing.
    assert.equal((await (await fetch(`${running.base}/kv/big`)).text()).length, valueBytesMax);
    assert.equal(await stopService(running), 0);
  });

  it('turns unhealthy until restarted when the switch is not persisted', async () => {
    const dir = tempDir();
    const first = await startService(dir, { PORT: String(await freePort()) });
    assert.deepEqual(await health(first), [200, 'ok']);
    await setHealth(first, { healthy: false, reason: 'disk stalls' });
    assert.deepEqual(await health(first), [503, 'unhealthy: disk stalls']);
    assert.equal(existsSync(join(dir, unhealthyMarkerName)), false);
    assert.equal(await stopService(first), 0);

    const second = await startService(dir, { PORT: String(await freePort()) });
    assert.deepEqual(await health(second), [200, 'ok']);
    assert.equal(await stopService(second), 0);
  });

  it('stays unhealthy across a restart in place when the switch is persisted, until cleared', async () => {
    const dir = tempDir();
    const first = await startService(dir, { PORT: String(await freePort()) });
    await fetch(`${first.base}/kv/k`, { method: 'PUT', body: 'v' });
    await setHealth(first, { healthy: false, reason: 'bad nic', persist: true });
    assert.equal(readFileSync(join(dir, unhealthyMarkerName), 'utf8').trim(), 'bad nic');
    assert.equal(await stopService(first), 0);

    const second = await startService(dir, { PORT: String(await freePort()) });
    assert.deepEqual(await health(second), [503, 'unhealthy: bad nic']);
    assert.equal(await (await fetch(`${second.base}/kv/k`)).text(), 'v');
    await setHealth(second, { healthy: true });
    assert.deepEqual(await health(second), [200, 'ok']);
    assert.equal(existsSync(join(dir, unhealthyMarkerName)), false);
    assert.equal(await stopService(second), 0);

    const third = await startService(dir, { PORT: String(await freePort()) });
    assert.deepEqual(await health(third), [200, 'ok']);
    assert.equal(await stopService(third), 0);
  });

  it('rejects a malformed health switch with 400 and changes nothing', async () => {
    const running = await startService(tempDir(), { PORT: String(await freePort()) });
    const res = await fetch(`${running.base}/admin/health`, {
      method: 'POST',
      body: '{"healthy":"no"}',
    });
    assert.equal(res.status, 400);
    assert.match(await res.text(), /expected "healthy" as true or false/);
    assert.deepEqual(await health(running), [200, 'ok']);
    assert.equal(await stopService(running), 0);
  });

  it('answers slowly while the slow switch is on, and a restart cures it unless persisted', async () => {
    const dir = tempDir();
    const first = await startService(dir, { PORT: String(await freePort()) });
    const slow = (body: Record<string, unknown>) =>
      fetch(`${first.base}/admin/slow`, { method: 'POST', body: JSON.stringify(body) });
    const bad = await slow({ delayMs: -1 });
    assert.equal(bad.status, 400);
    assert.match(await bad.text(), /expected "delayMs" as a whole number of milliseconds/);
    assert.equal((await slow({ delayMs: 300 })).status, 204);
    const startedAt = performance.now();
    assert.deepEqual(await health(first), [200, 'ok']);
    assert.ok(performance.now() - startedAt >= 300, 'the answer waited for the delay');
    assert.equal(existsSync(join(dir, slowMarkerName)), false);
    assert.equal(await stopService(first), 0);
    // Not persisted: the restarted service answers at once.
    const second = await startService(dir, { PORT: String(await freePort()) });
    const info = (await (await fetch(`${second.base}/info`)).json()) as Record<string, unknown>;
    assert.equal(info.slowDelayMs, 0);
    const persisted = await fetch(`${second.base}/admin/slow`, {
      method: 'POST',
      body: JSON.stringify({ delayMs: 250, persist: true }),
    });
    assert.equal(persisted.status, 204);
    assert.equal(readFileSync(join(dir, slowMarkerName), 'utf8').trim(), '250');
    assert.equal(await stopService(second), 0);
  });

  it('reports pid, node, workload, epoch and start time on /info', async () => {
    const env = {
      PORT: String(await freePort()),
      CONTINUUM_NODE: 'n1',
      CONTINUUM_WORKLOAD: 'web',
      CONTINUUM_EPOCH: '7',
    };
    const running = await startService(tempDir(), env);
    const info = (await (await fetch(`${running.base}/info`)).json()) as Record<string, unknown>;
    assert.equal(info.pid, running.child.pid);
    assert.deepEqual([info.node, info.workload, info.epoch], ['n1', 'web', 7]);
    assert.ok(!Number.isNaN(Date.parse(String(info.startedAt))));
    assert.match(running.stdout(), /epoch=7/);
    assert.equal(await stopService(running), 0);
  });

  for (const port of [undefined, 'abc', '0', '70000']) {
    it(`exits with code 2 and says why when PORT is ${port ?? 'missing'}`, async () => {
      const running = await startService(tempDir(), { PORT: port }, { waitForStart: false });
      assert.equal(await running.exited, 2);
      children.delete(running.child);
      assert.match(running.stderr(), /expected env PORT as a TCP port between 1 and 65535/);
    });
  }
});
