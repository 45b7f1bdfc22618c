// The shim: a small per-instance supervisor that the process driver starts as its own Node
// process. It stays in the agent's process group (so a whole-node kill takes it down) and runs the
// workload in a new session under `setpriv --pdeathsig KILL` (so the workload dies with its shim
// but outlives an agent that alone is killed). It keeps the workload's output in a rotated log,
// records the workload's identity and exit in the run directory, and tells connected drivers at
// once when the workload exits. See docs/agent-process-driver.md.
//
// Usage: shim-main --run-dir <dir> --cwd <dir> [--log-file-bytes-max N] [--log-files-kept N]
//        [--exit-linger-ms N] -- <command...>      (environment in <run-dir>/env.json)
// Imports are Node builtins and builtin-only siblings, so the shim starts fast.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { constants } from 'node:os';
import { join } from 'node:path';
import { readProcStat } from './proc-fs.js';
import { RotatingLog } from './rotating-log.js';
import {
  messageBytesMax,
  runFiles,
  shimDefaults,
  type ExitRecord,
  type ShimEvent,
  type ShimRecord,
} from './shim-protocol.js';

interface ShimArgs {
  runDir: string;
  cwd: string;
  command: string[];
  logFileBytesMax: number;
  logFilesKept: number;
  exitLingerMs: number;
}

function parseArgs(argv: string[]): ShimArgs {
  const separator = argv.indexOf('--');
  const command = separator < 0 ? [] : argv.slice(separator + 1);
  const flags = new Map<string, string>();
  const options = separator < 0 ? argv : argv.slice(0, separator);
  for (let index = 0; index < options.length; index += 2) {
    flags.set(options[index] ?? '', options[index + 1] ?? '');
  }
  const count = (name: string, fallback: number): number => {
    const value = flags.has(name) ? Number(flags.get(name)) : fallback;
    if (!Number.isInteger(value) || value < 0) fail(`${name}: expected a whole number`);
    return value;
  };
  const runDir = flags.get('--run-dir');
  const cwd = flags.get('--cwd');
  if (runDir === undefined || runDir === '') fail('--run-dir: expected a directory');
  if (cwd === undefined || cwd === '') fail('--cwd: expected a directory');
  if (command.length === 0) fail('expected a command after "--"');
  return {
    runDir,
    cwd,
    command,
    logFileBytesMax: count('--log-file-bytes-max', shimDefaults.logFileBytesMax),
    logFilesKept: count('--log-files-kept', shimDefaults.logFilesKept),
    exitLingerMs: count('--exit-linger-ms', shimDefaults.exitLingerMs),
  };
}

/** The shim's own stdout/stderr go to shim.log, where the driver reads them on a failed start. */
function fail(message: string): never {
  process.stderr.write(`continuum shim: ${message}\n`);
  process.exit(2);
}

function writeAtomically(path: string, value: unknown): void {
  const temporary = `${path}.tmp`;
  writeFileSync(temporary, `${JSON.stringify(value)}\n`, { mode: 0o644 });
  renameSync(temporary, path);
}

/** Reads the workload's environment and removes the file at once: it may hold secrets. */
function takeEnvironment(runDir: string): Record<string, string> {
  const path = join(runDir, runFiles.env);
  const parsed: unknown = JSON.parse(readFileSync(path, 'utf8'));
  rmSync(path, { force: true });
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    fail(`${runFiles.env}: expected an object of NAME: value`);
  }
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(parsed)) {
    if (typeof value !== 'string') fail(`${runFiles.env}: ${name}: expected a string value`);
    env[name] = value;
  }
  return env;
}

class Shim {
  private readonly clients = new Set<Socket>();
  private exit: ExitRecord | undefined;
  private exitDelivered = false;
  /** Output pipes still open; the shim drains them before it leaves (bounded by the linger). */
  private pipesOpen = 2;
  private finishing = false;
  private readonly server: Server;
  private readonly log: RotatingLog;
  private readonly child: ChildProcess;
  private readonly record: ShimRecord;

  constructor(private readonly args: ShimArgs) {
    const env = takeEnvironment(args.runDir);
    this.log = new RotatingLog(join(args.runDir, runFiles.logDir, runFiles.outputLog), {
      fileBytesMax: args.logFileBytesMax,
      filesKept: args.logFilesKept,
    });
    // setpriv sets the parent-death signal and then execs, so the workload keeps setpriv's PID;
    // it also reports a command that cannot be executed as exit 127, like a shell.
    // detached: a new session, so the workload leads its own process group (pgid == pid).
    this.child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', ...args.command], {
      cwd: args.cwd,
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const pid = this.child.pid;
    if (pid === undefined) {
      // The spawn itself failed (no setpriv, bad cwd); the error event carries the reason.
      this.child.once('error', (err) => fail(`could not start the workload: ${err.message}`));
      throw new SpawnFailed();
    }
    this.record = {
      shimPid: process.pid,
      pid,
      startedAt: Date.now(),
      procStartTime: readProcStat(pid)?.startTime ?? 0,
    };
    writeAtomically(join(args.runDir, runFiles.shimRecord), this.record);
    this.child.stdout?.on('data', (chunk: Buffer) => this.log.write(chunk));
    this.child.stderr?.on('data', (chunk: Buffer) => this.log.write(chunk));
    for (const pipe of [this.child.stdout, this.child.stderr]) {
      pipe?.on('close', () => {
        this.pipesOpen--;
        this.maybeFinish();
      });
    }
    this.child.on('exit', (code, signal) => this.workloadExited(code, signal));
    this.server = createServer((socket) => this.accept(socket));
    this.server.on('error', (err) => {
      // Without its socket nobody can watch the workload; end it rather than leave it unseen.
      process.stderr.write(`continuum shim: socket: ${err.message}\n`);
      this.signalGroup('SIGKILL');
      process.exit(1);
    });
    const socketPath = join(args.runDir, runFiles.socket);
    rmSync(socketPath, { force: true });
    this.server.listen(socketPath);
  }

  private accept(socket: Socket): void {
    this.clients.add(socket);
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      this.clients.delete(socket);
      this.maybeFinish();
    });
    this.send(socket, { ev: 'hello', ...this.record });
    if (this.exit !== undefined) {
      this.send(socket, { ev: 'exited', pid: this.record.pid, ...this.exit });
      this.exitDelivered = true;
    }
    let buffered = '';
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      buffered += text;
      if (buffered.length > messageBytesMax) return this.reject(socket, 'message too long');
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        if (line.trim() !== '') this.command(socket, line);
      }
    });
  }

  private command(socket: Socket, line: string): void {
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch {
      return this.reject(socket, 'a message that is not JSON');
    }
    const { op, signal } = (message ?? {}) as { op?: unknown; signal?: unknown };
    if (op !== 'signal' || typeof signal !== 'string' || !(signal in constants.signals)) {
      return this.reject(socket, 'expected {"op":"signal","signal":"SIG..."}');
    }
    this.signalGroup(signal as NodeJS.Signals);
  }

  /** A malformed message closes that connection with a logged reason, never the shim. */
  private reject(socket: Socket, reason: string): void {
    process.stderr.write(`continuum shim: closing a client connection: ${reason}\n`);
    socket.destroy();
  }

  private signalGroup(signal: NodeJS.Signals): void {
    try {
      process.kill(-this.record.pid, signal);
    } catch {
      // ESRCH: the group is already gone, which is what the sender wants.
    }
  }

  private send(socket: Socket, event: ShimEvent): void {
    if (!socket.destroyed) socket.write(`${JSON.stringify(event)}\n`);
  }

  private workloadExited(code: number | null, signal: NodeJS.Signals | null): void {
    this.exit = { code, signal, at: Date.now() };
    writeAtomically(join(this.args.runDir, runFiles.exitRecord), this.exit);
    for (const socket of this.clients) {
      this.send(socket, { ev: 'exited', pid: this.record.pid, ...this.exit });
      this.exitDelivered = true;
    }
    // Stay a little for a driver that has not connected yet; the exit record covers later ones.
    setTimeout(() => this.finish(), this.args.exitLingerMs).unref();
    this.maybeFinish();
  }

  private maybeFinish(): void {
    if (this.exit === undefined) return;
    if (this.clients.size === 0 && this.exitDelivered && this.pipesOpen === 0) this.finish();
  }

  private finish(): void {
    if (this.finishing) return;
    this.finishing = true;
    for (const socket of this.clients) socket.end();
    this.server.close();
    rmSync(join(this.args.runDir, runFiles.socket), { force: true });
    this.log.close();
    process.exit(0);
  }
}

class SpawnFailed extends Error {}

function main(): void {
  // A closing terminal or a Ctrl-C at the agent must not end workloads; SIGTERM to the shim does
  // nothing either, because the agent stops workloads explicitly. SIGKILL still ends the shim, and
  // pdeathsig then ends the workload: that is the whole-node crash emulation.
  for (const signal of ['SIGINT', 'SIGHUP', 'SIGPIPE', 'SIGTERM'] as const) {
    process.on(signal, () => undefined);
  }
  const args = parseArgs(process.argv.slice(2));
  try {
    new Shim(args);
  } catch (err) {
    if (!(err instanceof SpawnFailed)) throw err;
  }
}

main();
