// Fixtures for the volume attach tests: a real NBD server (qemu-nbd on a unix socket over a sparse
// raw file) in a fresh directory, a logger that keeps what it is told, and the leftover check
// every test ends with: no loop device, mount or process of ours may outlive the test.
import { spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { Logger, LogLevel } from '../../src/core/ports.js';

export async function waitFor(
  what: string,
  timeoutMs: number,
  condition: () => boolean,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() >= deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(20);
  }
}

export interface LogLine {
  level: LogLevel;
  message: string;
  fields: Record<string, unknown>;
}

export function recordingLogger(
  lines: LogLine[] = [],
  bound: Record<string, unknown> = {},
): Logger & { lines: LogLine[] } {
  return {
    lines,
    log(level, message, fields = {}) {
      lines.push({ level, message, fields: { ...bound, ...fields } });
    },
    child(fields) {
      return recordingLogger(lines, { ...bound, ...fields });
    },
  };
}

export interface NbdServer {
  readonly pid: number;
  readonly socketPath: string;
  readonly imagePath: string;
  readonly exportName: string;
  stop(): Promise<void>;
}

/** qemu-nbd serving a new sparse raw file; persistent (-t), so it outlives each client. */
export async function startQemuNbd(
  dir: string,
  sizeBytes: number,
  exportName = 'export',
): Promise<NbdServer> {
  const imagePath = join(dir, 'volume.raw');
  const socketPath = join(dir, 'nbd.sock');
  if (!existsSync(imagePath)) {
    writeFileSync(imagePath, '');
    truncateSync(imagePath, sizeBytes);
  }
  const child = spawn(
    'qemu-nbd',
    ['-f', 'raw', '-t', '-k', socketPath, '-x', exportName, imagePath],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  let exited = false;
  child.once('exit', () => (exited = true));
  await waitFor('qemu-nbd to listen', 10_000, () => {
    if (exited) throw new Error(`qemu-nbd exited: ${stderr}`);
    return existsSync(socketPath);
  });
  return {
    pid: child.pid!,
    socketPath,
    imagePath,
    exportName,
    async stop() {
      if (exited) return;
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await gone;
    },
  };
}

/** A fresh directory by its real path (the kernel reports mounts and loop files by real path). */
export function freshDirectory(): string {
  return realpathSync(mkdtempSync(join(tmpdir(), 'continuum-attach-')));
}

function loopDevicesUnder(dir: string): string[] {
  const found: string[] = [];
  for (const name of readdirSync('/sys/block').filter((n) => n.startsWith('loop'))) {
    try {
      const backing = readFileSync(`/sys/block/${name}/loop/backing_file`, 'utf8').trim();
      if (backing.startsWith(dir)) found.push(`/dev/${name} over ${backing}`);
    } catch {
      // Not bound.
    }
  }
  return found;
}

/** Mount points below `dir`, from the kernel's table. */
export function mountPointsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4] ?? '')
    .filter((path) => path.startsWith(`${dir}/`));
}

function mountsUnder(dir: string): string[] {
  return mountPointsUnder(dir).map((path) => `mount: ${path}`);
}

function processesUnder(dir: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      const commandLine = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
      const state = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0];
      if (commandLine.includes(dir) && state !== 'Z') found.push(`process ${pid}: ${commandLine}`);
    } catch {
      // Gone while we looked.
    }
  }
  return found;
}

/** Loop devices, mounts and processes that still refer to dir. */
export function leftovers(dir: string): string[] {
  return [...loopDevicesUnder(dir), ...mountsUnder(dir), ...processesUnder(dir)];
}

/**
 * The last resort after a failed test, independent of the code under test: unmounts, releases and
 * ends whatever still refers to dir, so that one broken run does not leave the host dirty. Every
 * such process was started by this test: its command line names the test's own fresh directory.
 */
export async function forceCleanup(dir: string): Promise<void> {
  const mountPoints = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4] ?? '')
    .filter((mountPoint) => mountPoint.startsWith(dir))
    .reverse(); // Last mounted first: the file system before the FUSE file under its loop device.
  const releaseLoopDevices = (): void => {
    for (const line of loopDevicesUnder(dir)) {
      spawnSync('losetup', ['--detach', line.split(' ')[0] ?? ''], { stdio: 'ignore' });
    }
  };
  for (const mountPoint of mountPoints) {
    // A loop device holds the nbdfuse file open; it has to go before that mount can.
    if (mountPoint.endsWith('/nbdfuse')) releaseLoopDevices();
    if (spawnSync('umount', [mountPoint], { stdio: 'ignore' }).status !== 0) {
      spawnSync('umount', ['--lazy', mountPoint], { stdio: 'ignore' });
    }
  }
  releaseLoopDevices();
  for (const line of processesUnder(dir)) {
    const pid = Number(/^process (\d+):/.exec(line)?.[1]);
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  await waitFor('leftovers to go', 10_000, () => leftovers(dir).length === 0).catch(() => {});
}

/** `e2fsck -fn` (forced, read-only) on the raw file: exit 0 means a clean file system. */
export function e2fsckReadOnly(imagePath: string): { exitCode: number | null; output: string } {
  const result = spawnSync('e2fsck', ['-fn', imagePath], { encoding: 'utf8' });
  return { exitCode: result.status, output: `${result.stdout}${result.stderr}` };
}

/** The signature blkid finds on a file or device ('' when none). */
export function blkidType(path: string): string {
  const result = spawnSync('blkid', ['-p', '-o', 'value', '-s', 'TYPE', path], {
    encoding: 'utf8',
  });
  return result.stdout.trim();
}

/** Writes a file and makes it durable: the file, then its directory. */
export function writeDurably(path: string, content: string | Buffer): void {
  writeFileSync(path, content);
  const fd = openSync(path, 'r');
  fsyncSync(fd);
  closeSync(fd);
  const directory = openSync(join(path, '..'), 'r');
  fsyncSync(directory);
  closeSync(directory);
}

export function removeDirectory(dir: string): void {
  // Only once nothing is mounted below it: rm -r through a live mount would delete the volume's files.
  if (mountsUnder(dir).length === 0) rmSync(dir, { recursive: true, force: true });
}

export function onPath(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status === 0;
}
