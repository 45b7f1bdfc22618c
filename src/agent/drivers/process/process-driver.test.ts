// The process driver: the shared driver contract, then what only real processes show: process
// groups, pdeathsig, log rotation, grandchildren, and a command that cannot be executed.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  contractFixture,
  exitOf,
  runDriverContract,
  waitFor,
  withDeadline,
} from '../driver.contract.js';
import { isProcessAlive, readProcStat } from './proc-fs.js';
import { ProcessDriver } from './process-driver.js';

runDriverContract('process', () => new ProcessDriver());

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Already gone, as it should be.
  }
}

test('the workload leads its own process group, apart from the agent', async (t) => {
  const fixture = contractFixture(t);
  const driver = new ProcessDriver();
  const handle = fixture.track(driver, await driver.start(fixture.request(['sleep', '60'])));
  const stat = readProcStat(handle.pid);
  assert.ok(stat !== null);
  assert.equal(stat.processGroup, handle.pid);
  assert.notEqual(stat.processGroup, readProcStat(process.pid)?.processGroup);
  // The shim, by contrast, stays in our group: killing the group (a node crash) reaches it.
  const shimPid = handle.attach.shimPid as number;
  assert.equal(readProcStat(shimPid)?.processGroup, readProcStat(process.pid)?.processGroup);
});

test('killing the shim with SIGKILL kills the workload (pdeathsig) and reports an exit', async (t) => {
  const fixture = contractFixture(t);
  const driver = new ProcessDriver();
  const handle = fixture.track(driver, await driver.start(fixture.request(['sleep', '60'])));
  const start = handle.attach.procStartTime as number;
  const exited = exitOf(driver, handle);
  process.kill(handle.attach.shimPid as number, 'SIGKILL');
  await waitFor(() => !isProcessAlive(handle.pid, start), 'workload gone after its shim');
  const exit = await exited;
  assert.equal(exit.code, null);
  assert.equal((await driver.inspect(handle)).running, false);
});

test('output goes to logs/output.log and rotates past the size limit', async (t) => {
  const fixture = contractFixture(t);
  const driver = new ProcessDriver({ logFileBytesMax: 1000, logFilesKept: 2 });
  // Separate writes with pauses so the shim sees several chunks, each 601 bytes.
  const script =
    'for i in 1 2 3 4 5; do head -c 600 /dev/zero | tr "\\0" x; echo; sleep 0.05; done';
  const request = fixture.request(['sh', '-c', script]);
  const handle = fixture.track(driver, await driver.start(request));
  assert.equal((await exitOf(driver, handle)).code, 0);
  const logs = join(request.runDir, 'logs');
  await waitFor(() => existsSync(join(logs, 'output.log.2')), 'two rotations');
  assert.equal(
    existsSync(join(logs, 'output.log.3')),
    false,
    'only logFilesKept rotated files stay',
  );
  const current = readFileSync(join(logs, 'output.log'), 'utf8');
  assert.equal(current, `${'x'.repeat(600)}\n`);
});

test('stop ends grandchildren too: the whole process group', async (t) => {
  const fixture = contractFixture(t);
  const driver = new ProcessDriver();
  const script = 'sleep 60 & echo $! > grandchild.pid; wait';
  const handle = fixture.track(driver, await driver.start(fixture.request(['sh', '-c', script])));
  const pidFile = join(fixture.cwd, 'grandchild.pid');
  await waitFor(
    () => existsSync(pidFile) && readFileSync(pidFile, 'utf8').endsWith('\n'),
    'pid file',
  );
  const grandchild = Number(readFileSync(pidFile, 'utf8'));
  t.after(() => killQuietly(grandchild));
  assert.ok(isProcessAlive(grandchild));
  await withDeadline(driver.stop(handle, { graceMs: 5000 }), 'stop');
  assert.equal(isProcessAlive(grandchild), false);
});

test('a command that cannot be executed exits with code 127 instead of throwing', async (t) => {
  const fixture = contractFixture(t);
  const driver = new ProcessDriver();
  const request = fixture.request(['/nonexistent/continuum-no-such-command']);
  const handle = fixture.track(driver, await driver.start(request));
  assert.equal((await exitOf(driver, handle)).code, 127);
  assert.match(readFileSync(join(request.runDir, 'logs', 'output.log'), 'utf8'), /No such file/);
});

test('stats measure the running group; env.json is gone once read', async (t) => {
  const fixture = contractFixture(t);
  const driver = new ProcessDriver();
  const request = fixture.request(['sleep', '60'], { SECRET: 'x' });
  const handle = fixture.track(driver, await driver.start(request));
  const stats = await driver.stats(handle);
  assert.ok(stats.rssBytes > 0);
  assert.ok(stats.cpuSeconds >= 0);
  await waitFor(() => !existsSync(join(request.runDir, 'env.json')), 'env.json removed');
});

test('options are checked when the driver is made', () => {
  assert.throws(() => new ProcessDriver({ shimStartTimeoutMs: 0 }), /shimStartTimeoutMs/);
});
