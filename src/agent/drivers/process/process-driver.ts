// The process driver: runs any command as a workload, each under its own shim (see shim-main.ts
// and docs/agent-process-driver.md). The driver keeps no state that matters across an agent
// restart: the handle, the shim's socket and the run directory's files are enough to re-attach.
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { ContinuumError } from '../../../core/errors.js';
import type {
  Driver,
  ExitInfo,
  InstanceHandle,
  InstanceInspection,
  InstanceStats,
  LogTail,
  LogTailOptions,
  StartRequest,
} from '../driver.js';
import { workloadEnvironment } from './environment.js';
import {
  InstanceWatch,
  readExitRecord,
  writeExitRecord,
  type WatchTarget,
} from './instance-watch.js';
import {
  clockTicksPerSecond,
  isProcessAlive,
  processGroupMembers,
  readProcStat,
  readResidentBytes,
  countOpenFiles,
} from './proc-fs.js';
import { logTail } from './log-tail.js';
import { ShimClient } from './shim-client.js';
import { launchShim } from './shim-launch.js';
import { runFiles, shimDefaults, socketPathBytesMax } from './shim-protocol.js';

export interface ProcessDriverOptions {
  /** How long start waits for the shim's hello. */
  shimStartTimeoutMs?: number;
  /** Size at which a workload's output.log rotates. */
  logFileBytesMax?: number;
  /** Rotated output files kept (output.log.1 ... .N). */
  logFilesKept?: number;
  /** How long a shim stays after its workload's exit for a driver to hear of it. */
  shimExitLingerMs?: number;
  /** How long stop and destroy wait for the group to vanish after SIGKILL before failing. */
  killTimeoutMs?: number;
  /** How often to look again while waiting on /proc (a group has no exit event). */
  pollIntervalMs?: number;
}

const defaults: Required<ProcessDriverOptions> = {
  shimStartTimeoutMs: 5000,
  logFileBytesMax: shimDefaults.logFileBytesMax,
  logFilesKept: shimDefaults.logFilesKept,
  shimExitLingerMs: shimDefaults.exitLingerMs,
  killTimeoutMs: 5000,
  pollIntervalMs: 20,
};

function validated(options: ProcessDriverOptions): Required<ProcessDriverOptions> {
  const merged = { ...defaults, ...options };
  for (const [name, value] of Object.entries(merged)) {
    const least = name === 'logFilesKept' ? 0 : 1;
    if (!Number.isInteger(value) || value < least) {
      throw new RangeError(
        `ProcessDriver ${name}: expected a whole number >= ${least}, got ${value}`,
      );
    }
  }
  return merged;
}

/** Reads what re-attaching needs from a handle; a missing start time disables PID-reuse checks. */
function watchTarget(handle: InstanceHandle): WatchTarget {
  const start = handle.attach.procStartTime;
  return {
    runDir: handle.runDir,
    pid: handle.pid,
    procStartTime: typeof start === 'number' && start > 0 ? start : undefined,
  };
}

export class ProcessDriver implements Driver {
  readonly name = 'process';
  private readonly options: Required<ProcessDriverOptions>;
  private readonly watches = new Map<string, Promise<InstanceWatch>>();

  constructor(options: ProcessDriverOptions = {}) {
    this.options = validated(options);
  }

  start(request: StartRequest): Promise<InstanceHandle> {
    return held(() => this.startNow(request));
  }

  private async startNow(request: StartRequest): Promise<InstanceHandle> {
    const processSpec = request.spec.process;
    if (processSpec === undefined) {
      throw new ContinuumError(
        'CONTINUUM_ERR_DRIVER',
        `workload ${request.workload} has no process section`,
      );
    }
    const socketPath = join(request.runDir, runFiles.socket);
    if (Buffer.byteLength(socketPath) > socketPathBytesMax) {
      throw new ContinuumError(
        'CONTINUUM_ERR_DRIVER',
        `run directory path too long for a unix socket (${socketPath} is over ${socketPathBytesMax} bytes)`,
      );
    }
    mkdirSync(join(request.runDir, runFiles.logDir), { recursive: true });
    // Records of a previous incarnation in the same run directory would be mistaken for this one's.
    for (const name of [runFiles.exitRecord, runFiles.shimRecord, runFiles.socket]) {
      rmSync(join(request.runDir, name), { force: true });
    }
    const launched = await launchShim(
      {
        runDir: request.runDir,
        cwd: request.cwd,
        command: processSpec.command,
        env: workloadEnvironment(processSpec.env, request.env),
        logFileBytesMax: this.options.logFileBytesMax,
        logFilesKept: this.options.logFilesKept,
        exitLingerMs: this.options.shimExitLingerMs,
      },
      {
        startTimeoutMs: this.options.shimStartTimeoutMs,
        pollIntervalMs: this.options.pollIntervalMs,
      },
    );
    const { record } = launched;
    const handle: InstanceHandle = {
      driver: this.name,
      workload: request.workload,
      epoch: request.epoch,
      runDir: request.runDir,
      pid: record.pid,
      startedAt: record.startedAt,
      attach: { shimPid: record.shimPid, socketPath, procStartTime: record.procStartTime },
    };
    const watch = new InstanceWatch(
      watchTarget(handle),
      launched.client,
      this.options.pollIntervalMs,
    );
    this.watches.set(watchKey(handle), Promise.resolve(watch));
    return handle;
  }

  recover(handle: InstanceHandle): Promise<InstanceHandle | null> {
    return held(() => this.recoverNow(handle));
  }

  private async recoverNow(handle: InstanceHandle): Promise<InstanceHandle | null> {
    const target = watchTarget(handle);
    const watch = await this.watch(handle);
    if (watch.exit !== undefined) return null;
    if (!isProcessAlive(target.pid, target.procStartTime)) {
      // Dead, and the watch is settling it (shim event, exit record, or an unknown exit).
      await watch.exited;
      return null;
    }
    if (!watch.connected) {
      // Alive but its shim is gone: nothing would log its output or report its exit, and its
      // stdout is a broken pipe. End it and report the exit, so the agent starts a supervised one.
      await this.killGroupAndWait(handle, watch);
      return null;
    }
    return handle;
  }

  onExit(handle: InstanceHandle, listener: (exit: ExitInfo) => void): () => void {
    let listening = true;
    void this.watch(handle)
      .then((watch) => watch.exited)
      .then((exit) => {
        if (!listening) return;
        listening = false;
        listener(exit);
      });
    return () => {
      listening = false;
    };
  }

  stop(handle: InstanceHandle, options: { graceMs: number }): Promise<ExitInfo> {
    return held(() => this.stopNow(handle, options));
  }

  private async stopNow(handle: InstanceHandle, options: { graceMs: number }): Promise<ExitInfo> {
    const watch = await this.watch(handle);
    if (!this.isGone(handle, watch)) {
      this.signalGroup(handle, 'SIGTERM');
      if (!(await this.waitUntil(() => this.isGone(handle, watch), options.graceMs))) {
        await this.killGroupAndWait(handle, watch);
      }
    }
    return watch.exited;
  }

  destroy(handle: InstanceHandle): Promise<void> {
    return held(() => this.destroyNow(handle));
  }

  private async destroyNow(handle: InstanceHandle): Promise<void> {
    const watch = await this.watch(handle);
    if (!this.isGone(handle, watch)) await this.killGroupAndWait(handle, watch);
    await watch.exited;
    watch.close();
    this.watches.delete(watchKey(handle));
    // The shim leaves once no client is connected (or after its linger); wait so that "destroyed"
    // means nothing of the instance is left running. Logs and records stay in the run directory.
    const shimPid = handle.attach.shimPid;
    if (typeof shimPid === 'number') {
      const lingerBoundMs = this.options.shimExitLingerMs + this.options.killTimeoutMs;
      await this.waitUntil(() => !isProcessAlive(shimPid), lingerBoundMs);
    }
  }

  inspect(handle: InstanceHandle): Promise<InstanceInspection> {
    return held(() => this.inspectNow(handle));
  }

  private async inspectNow(handle: InstanceHandle): Promise<InstanceInspection> {
    const known = this.watches.has(watchKey(handle)) ? await this.watch(handle) : undefined;
    const exit = known?.exit ?? readExitRecord(handle.runDir) ?? undefined;
    if (exit !== undefined) return { running: false, pid: handle.pid, exit };
    const target = watchTarget(handle);
    return { running: isProcessAlive(target.pid, target.procStartTime), pid: handle.pid };
  }

  stats(handle: InstanceHandle): Promise<InstanceStats> {
    const stats = { cpuSeconds: 0, rssBytes: 0, openFiles: 0 } satisfies InstanceStats;
    if (!this.ownsGroup(handle)) return Promise.resolve(stats);
    // The whole process group: a workload that forks workers is measured as one.
    for (const member of processGroupMembers(handle.pid)) {
      stats.cpuSeconds += (member.userTicks + member.systemTicks) / clockTicksPerSecond;
      stats.rssBytes += readResidentBytes(member.pid);
      stats.openFiles += countOpenFiles(member.pid);
    }
    return Promise.resolve(stats);
  }

  /** The last lines the instance wrote: output.log, then the newest rotated file before it. */
  logTail(runDir: string, options: LogTailOptions): Promise<LogTail> {
    const current = join(runDir, runFiles.logDir, runFiles.outputLog);
    return Promise.resolve(logTail([current, `${current}.1`], options));
  }

  /** Drops every connection and timer; instances keep running (agent shutdown, tests). */
  close(): void {
    for (const pending of this.watches.values()) void pending.then((watch) => watch.close());
    this.watches.clear();
  }

  /** One watch per instance per driver object, created on first use (after a restart, lazily). */
  private watch(handle: InstanceHandle): Promise<InstanceWatch> {
    const key = watchKey(handle);
    let pending = this.watches.get(key);
    if (pending === undefined) {
      pending = this.openWatch(handle);
      this.watches.set(key, pending);
    }
    return pending;
  }

  private async openWatch(handle: InstanceHandle): Promise<InstanceWatch> {
    const target = watchTarget(handle);
    const exit = readExitRecord(handle.runDir);
    let client: ShimClient | undefined;
    if (exit === null) {
      try {
        client = await ShimClient.connect(
          join(handle.runDir, runFiles.socket),
          this.options.shimStartTimeoutMs,
        );
        const hello = await client.hello;
        if (hello.pid !== handle.pid) throw new Error('the shim runs another instance');
      } catch {
        client?.close();
        client = undefined;
      }
    }
    return new InstanceWatch(target, client, this.options.pollIntervalMs);
  }

  /** Gone: the exit is settled and no process of its group is left (grandchildren included). */
  private isGone(handle: InstanceHandle, watch: InstanceWatch): boolean {
    return (
      watch.exit !== undefined &&
      (!this.ownsGroup(handle) || processGroupMembers(handle.pid).length === 0)
    );
  }

  /**
   * Whether the group named by handle.pid is still this instance's. While the main process lives
   * with its recorded start time, yes; once it is gone, the group id cannot be handed out again
   * as long as any member remains, so remaining members are ours. A live process with that PID
   * but another start time is a stranger that reused the number: never signal it.
   */
  private ownsGroup(handle: InstanceHandle): boolean {
    const target = watchTarget(handle);
    const stat = readProcStat(target.pid);
    if (stat === null || target.procStartTime === undefined) return true;
    return stat.startTime === target.procStartTime;
  }

  private signalGroup(handle: InstanceHandle, signal: NodeJS.Signals): void {
    if (!this.ownsGroup(handle)) return;
    try {
      process.kill(-handle.pid, signal);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  }

  private async killGroupAndWait(handle: InstanceHandle, watch: InstanceWatch): Promise<void> {
    this.signalGroup(handle, 'SIGKILL');
    if (await this.waitUntil(() => this.isGone(handle, watch), this.options.killTimeoutMs)) return;
    if (watch.exit === undefined && processGroupMembers(handle.pid).length === 0) {
      // Killed, but the exit was never reported (the shim went first); record it so all agree.
      writeExitRecord(handle.runDir, { code: null, signal: 'SIGKILL', at: Date.now() });
      if (await this.waitUntil(() => watch.exit !== undefined, this.options.killTimeoutMs)) return;
    }
    throw new ContinuumError(
      'CONTINUUM_ERR_DRIVER',
      `process group ${handle.pid} of ${handle.workload} still present ${this.options.killTimeoutMs} ms after SIGKILL`,
      { details: { pid: handle.pid } },
    );
  }

  /** Polls condition until it holds (true) or timeoutMs passes (false). */
  private async waitUntil(condition: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() >= deadline) return false;
      await delay(this.options.pollIntervalMs);
    }
    return true;
  }
}

/**
 * Keeps the event loop alive while an operation is in flight. Shim sockets and poll timers are
 * unref'd so that watching never keeps an agent from exiting, but an agent awaiting recover()
 * at startup, with nothing else open yet, must not exit in the middle of it.
 */
async function held<T>(work: () => Promise<T>): Promise<T> {
  const keepAlive = setInterval(() => undefined, 60_000);
  try {
    return await work();
  } finally {
    clearInterval(keepAlive);
  }
}

function watchKey(handle: InstanceHandle): string {
  return `${handle.runDir}\0${handle.pid}`;
}
