// Starts a shim for one instance and waits for its hello. Finds the shim's entry file both in the
// compiled package (dist/.../shim-main.js) and in the source tree run under tsx (src/.../shim-main.ts).
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { ContinuumError } from '../../../core/errors.js';
import { readExitRecord } from './instance-watch.js';
import { ShimClient } from './shim-client.js';
import { runFiles, type ShimRecord } from './shim-protocol.js';

export interface ShimLaunchRequest {
  runDir: string;
  cwd: string;
  command: string[];
  env: Record<string, string>;
  logFileBytesMax: number;
  logFilesKept: number;
  exitLingerMs: number;
}

export interface ShimLaunchLimits {
  startTimeoutMs: number;
  pollIntervalMs: number;
}

export interface LaunchedShim {
  record: ShimRecord;
  /** Undefined when the workload was already gone (and so was its shim) before we connected. */
  client: ShimClient | undefined;
}

/** Bytes of shim.log quoted in a start error. */
const shimLogTailBytes = 2000;

/** Node arguments that run the shim: the compiled file, or the source file through tsx. */
export function shimNodeArguments(): string[] {
  const compiled = new URL('./shim-main.js', import.meta.url);
  if (existsSync(compiled)) return [fileURLToPath(compiled)];
  const source = new URL('./shim-main.ts', import.meta.url);
  if (existsSync(source)) {
    // Resolved here, not by the shim: the shim runs in the run directory, where "tsx" is unknown.
    return ['--import', import.meta.resolve('tsx'), fileURLToPath(source)];
  }
  throw new ContinuumError('CONTINUUM_ERR_DRIVER', `shim entry not found next to ${compiled.href}`);
}

export async function launchShim(
  request: ShimLaunchRequest,
  limits: ShimLaunchLimits,
): Promise<LaunchedShim> {
  const { runDir } = request;
  // The environment travels in a file readable only by us, not in argv where `ps` shows it.
  const envPath = join(runDir, runFiles.env);
  writeFileSync(`${envPath}.tmp`, JSON.stringify(request.env), { mode: 0o600 });
  renameSync(`${envPath}.tmp`, envPath);
  const shimLog = openSync(join(runDir, runFiles.shimLog), 'a', 0o640);
  // Not detached: the shim stays in the agent's process group, so killing that group (a node
  // crash) takes the shim and, through pdeathsig, the workload with it.
  const child = spawn(
    process.execPath,
    [
      ...shimNodeArguments(),
      ...['--run-dir', runDir, '--cwd', request.cwd],
      ...['--log-file-bytes-max', String(request.logFileBytesMax)],
      ...['--log-files-kept', String(request.logFilesKept)],
      ...['--exit-linger-ms', String(request.exitLingerMs)],
      '--',
      ...request.command,
    ],
    { cwd: runDir, stdio: ['ignore', shimLog, shimLog] },
  );
  closeSync(shimLog);
  let shimGone = false;
  child.once('exit', () => (shimGone = true));
  child.once('error', () => (shimGone = true));
  child.unref();
  const deadline = Date.now() + limits.startTimeoutMs;
  for (;;) {
    const launched = await tryConnect(runDir, deadline);
    if (launched !== null) return launched;
    if (shimGone) return launchedFromFiles(runDir);
    if (Date.now() >= deadline) {
      child.kill('SIGKILL');
      throw startError(runDir, `no hello from the shim within ${limits.startTimeoutMs} ms`);
    }
    await delay(limits.pollIntervalMs);
  }
}

async function tryConnect(runDir: string, deadline: number): Promise<LaunchedShim | null> {
  const remainingMs = Math.max(1, deadline - Date.now());
  let client: ShimClient;
  try {
    client = await ShimClient.connect(join(runDir, runFiles.socket), remainingMs);
  } catch {
    return null; // Not listening yet (ENOENT, ECONNREFUSED) or already gone.
  }
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<null>((resolve) => (timer = setTimeout(resolve, remainingMs, null)));
  try {
    const record = await Promise.race([client.hello, timeout]);
    if (record !== null) return { record, client };
  } catch {
    // Closed before hello: the caller looks at the files or tries again.
  } finally {
    clearTimeout(timer);
  }
  client.close();
  return null;
}

/** The shim left before we connected: fine if it recorded both the workload and its exit. */
function launchedFromFiles(runDir: string): LaunchedShim {
  let record: ShimRecord | undefined;
  try {
    record = JSON.parse(readFileSync(join(runDir, runFiles.shimRecord), 'utf8')) as ShimRecord;
  } catch {
    record = undefined;
  }
  if (record === undefined || readExitRecord(runDir) === null) {
    throw startError(runDir, 'the shim exited before starting the workload');
  }
  return { record, client: undefined };
}

function startError(runDir: string, reason: string): ContinuumError {
  let tail = '';
  try {
    tail = readFileSync(join(runDir, runFiles.shimLog), 'utf8').slice(-shimLogTailBytes).trim();
  } catch {
    tail = '';
  }
  return new ContinuumError(
    'CONTINUUM_ERR_DRIVER',
    `could not start the instance in ${runDir}: ${reason}${tail === '' ? '' : `: ${tail}`}`,
    { details: { runDir } },
  );
}
