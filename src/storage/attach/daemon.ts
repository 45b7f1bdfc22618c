// The long-lived helpers of an attachment (nbdfuse, fuse2fs): started in their own session so that
// a signal to the agent's terminal or an agent restart leaves the volume mounted under a running
// workload, and ended by PID only, after their own clean exit has had its chance.
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { ContinuumError } from '../../core/errors.js';
import type { CommandLine } from './command-lines.js';
import { commandText } from './command-runner.js';
import { isRecordedProcessAlive, processRecord } from './host-state.js';
import type { ProcessRecord } from './types.js';

/** Bytes of a daemon's log quoted in an error. */
const logTailBytes = 2000;

export interface StartedDaemon {
  record: ProcessRecord;
  /** Set once the process has exited (seen by this agent process only). */
  exit: { code: number | null; signal: string | null } | null;
}

/** Spawns a daemon with its output appended to logPath; returns once it has a PID. */
export function spawnDaemon(command: CommandLine, logPath: string): StartedDaemon {
  const log = openSync(logPath, 'a', 0o640);
  let child;
  try {
    child = spawn(command.file, [...command.args], { detached: true, stdio: ['ignore', log, log] });
  } finally {
    closeSync(log);
  }
  const pid = child.pid;
  if (pid === undefined) {
    // Spawn failures (ENOENT, EACCES) are reported asynchronously; without a PID nothing started.
    child.once('error', () => {});
    throw new ContinuumError('CONTINUUM_ERR_ATTACH_TOOL_MISSING', `cannot run ${command.file}`, {
      details: { command: command.file },
    });
  }
  const started: StartedDaemon = {
    // Read at once: the PID is ours until we reap it, so its start time is this process's.
    // Without /proc the start time stays 0 (unknown), and the PID alone identifies it.
    record: processRecord(pid) ?? { pid, startTime: 0 },
    exit: null,
  };
  child.once('exit', (code, signal) => (started.exit = { code, signal }));
  child.unref();
  return started;
}

export function readLogTail(logPath: string): string {
  try {
    return readFileSync(logPath, 'utf8').slice(-logTailBytes).trim();
  } catch {
    return '';
  }
}

/**
 * Waits until `ready()` holds. Fails fast when the daemon exits first (with its log, which says
 * why: connection refused, no such export...), and with a timeout error at the deadline.
 */
export async function waitUntilReady(
  daemon: StartedDaemon,
  options: {
    command: CommandLine;
    logPath: string;
    ready: () => boolean;
    timeoutMs: number;
    pollIntervalMs: number;
  },
): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    if (options.ready()) return;
    const exited = daemon.exit !== null || !isRecordedProcessAlive(daemon.record);
    if (exited || Date.now() >= deadline) {
      const tail = readLogTail(options.logPath);
      const what = commandText(options.command.file, options.command.args);
      const details = { command: options.command.file, args: [...options.command.args], log: tail };
      const said = tail === '' ? '' : `: ${tail}`;
      if (exited) {
        // The exit status is known only once Node has reaped the child; /proc may say so first.
        const exit = daemon.exit;
        const status = exit === null ? '' : ` (${exit.signal ?? `exit ${exit.code}`})`;
        throw new ContinuumError(
          'CONTINUUM_ERR_ATTACH_COMMAND_FAILED',
          `${what} exited${status} before it was serving${said}`,
          { details },
        );
      }
      throw new ContinuumError(
        'CONTINUUM_ERR_ATTACH_TIMEOUT',
        `${what} was not serving within ${options.timeoutMs} ms${said}`,
        { details },
      );
    }
    await delay(options.pollIntervalMs);
  }
}

/** Waits for a recorded process to be gone; false at the deadline. */
export async function waitForExit(
  record: ProcessRecord,
  options: { timeoutMs: number; pollIntervalMs: number },
): Promise<boolean> {
  const deadline = Date.now() + options.timeoutMs;
  while (isRecordedProcessAlive(record)) {
    if (Date.now() >= deadline) return false;
    await delay(options.pollIntervalMs);
  }
  return true;
}

function signal(record: ProcessRecord, name: NodeJS.Signals): void {
  // Checked just before: a PID whose start time differs is someone else's process now.
  if (!isRecordedProcessAlive(record)) return;
  try {
    process.kill(record.pid, name);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

/**
 * Ends a daemon we started: waits for it to leave by itself (it does after its unmount, once it
 * has flushed), then SIGTERM, then SIGKILL, each for up to exitTimeoutMs. `ownExit: false` skips
 * the first wait, for a daemon that has nothing mounted to leave for. Throws
 * CONTINUUM_ERR_ATTACH_TIMEOUT if it stays.
 */
export async function endDaemon(
  record: ProcessRecord | undefined,
  options: { name: string; ownExit: boolean; exitTimeoutMs: number; pollIntervalMs: number },
): Promise<void> {
  if (record === undefined) return;
  const wait = { timeoutMs: options.exitTimeoutMs, pollIntervalMs: options.pollIntervalMs };
  if (options.ownExit && (await waitForExit(record, wait))) return;
  if (!isRecordedProcessAlive(record)) return;
  signal(record, 'SIGTERM');
  if (await waitForExit(record, wait)) return;
  signal(record, 'SIGKILL');
  if (await waitForExit(record, wait)) return;
  throw new ContinuumError(
    'CONTINUUM_ERR_ATTACH_TIMEOUT',
    `${options.name} (pid ${record.pid}) is still running after SIGKILL`,
    { details: { pid: record.pid } },
  );
}
