// The volume servers of the replication benchmark: `continuum volume serve` processes on loopback,
// each with its own data directory and a fixed replication port (so that a restarted replica is
// found at the address its primary already knows), driven over their jobs sockets the way the
// agent drives them (src/agent/volume-jobs.ts). The benchmark plays the controller's part by hand:
// it sends the duties and reads the primary's reports. Every process started here is ended by its
// PID, also when the benchmark fails or exits early.
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { callVolumeServer, type VolumeControl } from '../src/agent/volume-jobs.js';
import type { PrimaryReportMessage, VolumeDutyMessage } from '../src/core/protocol.js';
import { cliPath, freePort, repoRoot, waitFor } from '../test/harness/cluster.js';
import { serverProcessEnv } from '../src/platform/malloc-tunables.js';

/** How long a volume server may take to answer its first hello (opening its store). */
export const serverStartTimeoutMs = 30_000;
/** How long a volume server may take to stop after SIGTERM before it is killed. */
export const serverStopTimeoutMs = 10_000;
/** Waits between `reports` calls after one failed (the server is not up). */
const reportsRetryDelayMs = 100;

/** One `continuum volume serve` process; it can be killed and started again on any data dir. */
export class VolumeServerProcess {
  private child: ChildProcess | undefined;

  constructor(
    readonly node: string,
    readonly port: number,
    private readonly registry: Set<VolumeServerProcess>,
    /** The data directory of the next start (a fresh one makes a replica with an empty disk). */
    public dataDir: string,
    /** More `volume serve` options, the same at every start. */
    private readonly serveArgs: readonly string[] = [],
  ) {}

  /** Where primaries reach this node's replicas, as duties name it. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get pid(): number {
    const pid = this.child?.pid;
    if (pid === undefined || !this.running) throw new Error(`volume server ${this.node} is down`);
    return pid;
  }

  get running(): boolean {
    return (
      this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null
    );
  }

  /** The NBD URI of a volume exported by this server, for fio's nbd engine. */
  nbdUri(volume: string): string {
    return `nbd+unix:///${volume}?socket=${join(this.dataDir, 'run', 'nbd.sock')}`;
  }

  /** Starts the server and resolves once this very process answers on its jobs socket. */
  async start(): Promise<void> {
    if (this.running) throw new Error(`volume server ${this.node} is running already`);
    mkdirSync(this.dataDir, { recursive: true });
    const log = openSync(join(this.dataDir, 'volume-server.log'), 'a');
    const args = ['volume', 'serve', '--node', this.node, '--data-dir', this.dataDir];
    const child = spawn(
      process.execPath,
      [cliPath, ...args, '--replication-listen', this.address, ...this.serveArgs],
      { cwd: repoRoot, stdio: ['ignore', log, log], env: serverProcessEnv() },
    );
    closeSync(log);
    this.child = child;
    this.registry.add(this);
    await waitFor(`volume server ${this.node} to answer`, serverStartTimeoutMs, async () => {
      if (!this.running)
        throw new Error(
          `volume server ${this.node} exited (see ${this.dataDir}/volume-server.log)`,
        );
      const answer = await callVolumeServer(this.dataDir, { op: 'hello' });
      return (answer?.result as { pid?: number } | undefined)?.pid === child.pid;
    });
  }

  /** SIGKILL, as when the node's volume server crashes: nothing is flushed or closed. */
  async crash(): Promise<void> {
    const child = this.child;
    if (child === undefined || !this.running) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    process.kill(child.pid!, 'SIGKILL');
    await exited;
  }

  /** SIGTERM (the server drains and closes its volumes), SIGKILL if it takes too long. */
  async stop(): Promise<void> {
    const child = this.child;
    if (child !== undefined && this.running) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      process.kill(child.pid!, 'SIGTERM');
      const timer = setTimeout(() => this.killNow(), serverStopTimeoutMs);
      await exited;
      clearTimeout(timer);
    }
    this.registry.delete(this);
  }

  /** Synchronous last resort, for the exit hook. */
  killNow(): void {
    if (this.running) process.kill(this.child!.pid!, 'SIGKILL');
  }

  /** One control call; throws when nothing answers. */
  async control(control: VolumeControl): Promise<unknown> {
    const answer = await callVolumeServer(this.dataDir, control);
    if (answer === null) throw new Error(`volume server ${this.node} does not answer`);
    return answer.result;
  }
}

/** The servers of one benchmark case: started, tracked, and all stopped by close(). */
export class ServerGroup {
  private readonly started = new Set<VolumeServerProcess>();
  private readonly killAll = () => this.started.forEach((server) => server.killNow());

  constructor(
    private readonly dir: string,
    /** More `volume serve` options for every server of the group. */
    private readonly serveArgs: readonly string[] = [],
  ) {
    process.on('exit', this.killAll);
  }

  /** A server for `node` on a free loopback port, with its data under the group's directory. */
  async add(node: string): Promise<VolumeServerProcess> {
    const port = await freePort();
    return new VolumeServerProcess(node, port, this.started, join(this.dir, node), this.serveArgs);
  }

  async close(): Promise<void> {
    for (const server of [...this.started]) await server.stop();
    process.off('exit', this.killAll);
  }
}

export interface Membership {
  isr: string[];
  isrVersion: number;
}

/**
 * Gives every server its duty for one replicated volume at epoch 1: the first server is the
 * primary, the others replicas (what the controller's dutiesByNode derives from the record).
 * Replicas go first, so that the primary finds them listening and does not wait out a backoff.
 */
export async function giveDuties(
  servers: VolumeServerProcess[],
  duty: { volume: string; sizeBytes: number; membership: Membership; only?: string[] },
): Promise<void> {
  const replicas = servers.map((server) => ({ node: server.node, address: server.address }));
  const membership = { ...duty.membership, replicas };
  const ordered = [...servers.slice(1), servers[0]!];
  for (const server of ordered) {
    if (duty.only !== undefined && !duty.only.includes(server.node)) continue;
    const role = server === servers[0] ? ('primary' as const) : ('replica' as const);
    const message: VolumeDutyMessage = {
      volume: duty.volume,
      sizeBytes: duty.sizeBytes,
      role,
      epoch: 1,
      membership,
    };
    await server.control({ op: 'set-duties', duties: [message] });
  }
}

export interface TimedReport {
  /** performance.now() when the benchmark received it. */
  atMs: number;
  report: PrimaryReportMessage;
}

/** Long-polls a primary's reports (as the agent does) and keeps each with its time of arrival. */
export class ReportLog {
  readonly entries: TimedReport[] = [];
  private stopped = false;
  private readonly loop: Promise<void>;

  constructor(private readonly server: VolumeServerProcess) {
    this.loop = this.poll();
  }

  /** The first report from index `from` on that matches, waiting for it up to timeoutMs. */
  next(
    what: string,
    options: { from: number; timeoutMs: number },
    match: (report: PrimaryReportMessage) => boolean,
  ): Promise<TimedReport> {
    return waitFor(
      what,
      options.timeoutMs,
      () => this.entries.slice(options.from).find((entry) => match(entry.report)),
      10,
    );
  }

  /** The reports from index `from` on that say a write path stalled or stopped. */
  incidents(from: number): PrimaryReportMessage[] {
    return this.entries
      .slice(from)
      .map((entry) => entry.report)
      .filter((report) => ['unresponsive', 'fenced', 'unclean'].includes(report.kind));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  private async poll(): Promise<void> {
    while (!this.stopped) {
      try {
        const answer = (await this.server.control({ op: 'reports' })) as {
          reports: PrimaryReportMessage[];
        };
        const atMs = performance.now();
        for (const report of answer.reports) this.entries.push({ atMs, report });
      } catch {
        await new Promise((resolve) => setTimeout(resolve, reportsRetryDelayMs));
      }
    }
  }
}

/** Whether a report says the resync (or verify) pass of `node` completed. */
export function passDone(node: string) {
  return (report: PrimaryReportMessage) =>
    report.kind === 'resync' && report.node === node && report.done;
}

/** How long a new primary may take to open and verify its in-sync replicas. */
export const primaryReadyTimeoutMs = 120_000;

/**
 * Opens a replicated volume with every server in the ISR at epoch 1 and resolves once the
 * primary serves it (the agent's `ensure`) and has verified every replica (their first passes).
 */
export async function openReplicatedVolume(
  servers: VolumeServerProcess[],
  volume: { name: string; sizeMiB: number; reports: ReportLog },
): Promise<void> {
  const sizeBytes = volume.sizeMiB * 2 ** 20;
  const isr = servers.map((server) => server.node);
  await giveDuties(servers, { volume: volume.name, sizeBytes, membership: { isr, isrVersion: 1 } });
  await servers[0]!.control({
    op: 'ensure',
    name: volume.name,
    sizeMiB: volume.sizeMiB,
    replicas: servers.length,
    epoch: 1,
  });
  for (const replica of servers.slice(1)) {
    await volume.reports.next(
      `the verify pass of ${replica.node}`,
      { from: 0, timeoutMs: primaryReadyTimeoutMs },
      passDone(replica.node),
    );
  }
}
