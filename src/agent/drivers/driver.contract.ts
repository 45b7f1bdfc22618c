// The driver contract (CONVENTIONS.md item 7): one suite that every Driver passes, the process
// driver on real processes and the simulator's fake driver on simulated ones. Each test starts
// from a fresh temp directory and cleans up every instance it started.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { describe, test, type TestContext } from 'node:test';
import { workloadSpecSchema } from '../../core/spec.js';
import type { Driver, ExitInfo, InstanceHandle, StartRequest } from './driver.js';

export interface DriverContractOptions {
  /** Real OS processes: file side effects and PID checks apply (false for a simulated driver). */
  realProcesses: boolean;
}

/** Longest any single wait in the suite may take before the test fails. */
export const contractDeadlineMs = 10_000;

/** The commands the suite runs, named so a fake driver can recognize and emulate them. */
export const contractCommands = {
  sleeper: ['sleep', '60'],
  exitWithSeven: ['sh', '-c', 'exit 7'],
  exitWithThree: ['sh', '-c', 'exit 3'],
  reportsEnvAndCwd: [
    'sh',
    '-c',
    'printf "%s-%s" "$SPEC_VAR" "$AGENT_VAR" > env.out; pwd > cwd.out',
  ],
  ignoresTerm: ['sh', '-c', 'trap "" TERM; touch term-ignored; sleep 60'],
} as const;

/** Resolves with the promise's value, or fails the test once deadlineMs has passed. */
export async function withDeadline<T>(
  promise: Promise<T>,
  what: string,
  deadlineMs = contractDeadlineMs,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what}: not done within ${deadlineMs} ms`)),
      deadlineMs,
    );
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls condition until it holds; fails the test after deadlineMs. */
export async function waitFor(
  condition: () => boolean,
  what: string,
  deadlineMs = contractDeadlineMs,
): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what}: not true within ${deadlineMs} ms`);
    await delay(10);
  }
}

export function exitOf(driver: Driver, handle: InstanceHandle): Promise<ExitInfo> {
  return withDeadline(new Promise<ExitInfo>((resolve) => driver.onExit(handle, resolve)), 'exit');
}

export interface ContractFixture {
  dir: string;
  cwd: string;
  request(command: readonly string[], env?: Record<string, string>): StartRequest;
  /** Remembers a driver and its handles so that the test's end destroys them. */
  track(driver: Driver, handle: InstanceHandle): InstanceHandle;
}

export function contractFixture(t: TestContext, prefix = 'continuum-driver-'): ContractFixture {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const cwd = join(dir, 'cwd');
  mkdirSync(cwd);
  const started: Array<{ driver: Driver; handle: InstanceHandle }> = [];
  let runs = 0;
  t.after(async () => {
    for (const { driver, handle } of started) {
      await driver.destroy(handle).catch(() => undefined);
      (driver as { close?: () => void }).close?.();
    }
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    dir,
    cwd,
    request(command, env = {}) {
      const spec = workloadSpecSchema.parse({
        name: 'contract',
        driver: 'process',
        process: { command: [...command], env },
      });
      return {
        workload: 'contract',
        epoch: 1,
        spec,
        runDir: join(dir, `run-${++runs}`),
        cwd,
        env: {},
      };
    },
    track(driver, handle) {
      started.push({ driver, handle });
      return handle;
    },
  };
}

export function runDriverContract(
  name: string,
  makeDriver: () => Driver,
  options: DriverContractOptions = { realProcesses: true },
): void {
  describe(`driver contract: ${name}`, () => {
    test('start runs the command with the env and cwd it was given', async (t) => {
      const fixture = contractFixture(t);
      const driver = makeDriver();
      const request = fixture.request(contractCommands.reportsEnvAndCwd, { SPEC_VAR: 'from-spec' });
      request.env = { AGENT_VAR: 'from-agent' };
      const handle = fixture.track(driver, await driver.start(request));
      assert.equal(handle.driver, driver.name);
      assert.ok(handle.pid > 0);
      assert.equal((await exitOf(driver, handle)).code, 0);
      if (options.realProcesses) {
        assert.equal(readFileSync(join(fixture.cwd, 'env.out'), 'utf8'), 'from-spec-from-agent');
        assert.equal(readFileSync(join(fixture.cwd, 'cwd.out'), 'utf8').trim(), fixture.cwd);
      }
    });

    test('onExit fires once with the exit code', async (t) => {
      const fixture = contractFixture(t);
      const driver = makeDriver();
      const handle = fixture.track(
        driver,
        await driver.start(fixture.request(contractCommands.exitWithSeven)),
      );
      let calls = 0;
      driver.onExit(handle, () => calls++);
      const exit = await exitOf(driver, handle);
      assert.equal(exit.code, 7);
      assert.equal(exit.signal, null);
      assert.equal(calls, 1);
    });

    test('stop ends a running instance with SIGTERM within the grace', async (t) => {
      const fixture = contractFixture(t);
      const driver = makeDriver();
      const handle = fixture.track(
        driver,
        await driver.start(fixture.request(contractCommands.sleeper)),
      );
      const exit = await withDeadline(driver.stop(handle, { graceMs: 5000 }), 'stop');
      assert.equal(exit.signal, 'SIGTERM');
      assert.equal((await driver.inspect(handle)).running, false);
    });

    test('stop escalates to SIGKILL when the process ignores SIGTERM', async (t) => {
      const fixture = contractFixture(t);
      const driver = makeDriver();
      const handle = fixture.track(
        driver,
        await driver.start(fixture.request(contractCommands.ignoresTerm)),
      );
      if (options.realProcesses) {
        // Only once the trap is set does SIGTERM test the escalation rather than kill the shell.
        await waitFor(() => existsSync(join(fixture.cwd, 'term-ignored')), 'trap set');
      }
      const exit = await withDeadline(driver.stop(handle, { graceMs: 200 }), 'stop');
      assert.equal(exit.signal, 'SIGKILL');
      assert.equal((await driver.inspect(handle)).running, false);
    });

    test('a new driver object recovers a running instance with the same pid', async (t) => {
      const fixture = contractFixture(t);
      const first = makeDriver();
      const handle = await first.start(fixture.request(contractCommands.sleeper));
      const restarted = makeDriver();
      fixture.track(restarted, handle);
      fixture.track(first, handle);
      const recovered = await withDeadline(restarted.recover(handle), 'recover');
      assert.ok(recovered !== null);
      assert.equal(recovered.pid, handle.pid);
      assert.equal((await restarted.inspect(recovered)).running, true);
      const exited = exitOf(restarted, recovered);
      await withDeadline(restarted.stop(recovered, { graceMs: 5000 }), 'stop');
      assert.equal((await exited).signal, 'SIGTERM');
    });

    test('recover returns null for an exited instance and onExit still reports its exit', async (t) => {
      const fixture = contractFixture(t);
      const first = makeDriver();
      const handle = fixture.track(
        first,
        await first.start(fixture.request(contractCommands.exitWithThree)),
      );
      assert.equal((await exitOf(first, handle)).code, 3);
      const restarted = makeDriver();
      fixture.track(restarted, handle);
      assert.equal(await withDeadline(restarted.recover(handle), 'recover'), null);
      assert.equal((await exitOf(restarted, handle)).code, 3);
    });

    test('stop of an exited instance resolves with its exit', async (t) => {
      const fixture = contractFixture(t);
      const driver = makeDriver();
      const handle = fixture.track(
        driver,
        await driver.start(fixture.request(contractCommands.exitWithSeven)),
      );
      await exitOf(driver, handle);
      const exit = await withDeadline(driver.stop(handle, { graceMs: 1000 }), 'stop');
      assert.equal(exit.code, 7);
    });
  });
}
