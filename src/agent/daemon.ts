// The agent daemon: joins the controller with a token, reports inventory and usage, runs its
// instances through the process driver, starts (or finds) this node's volume server and mounts
// volumes into the instances that declare them, and writes its PID where `continuum up` and tests
// find it.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createServer } from 'node:net';
import { cpus, hostname, loadavg, totalmem, freemem } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { pathOnNode, type Capacity, type NodeRole } from '../core/spec.js';
import type { Logger } from '../core/ports.js';
import { agentProtocolVersion } from '../core/protocol.js';
import { checkLoopPollWindowUs } from '../platform/loop-poll.js';
import { serverProcessEnv } from '../platform/malloc-tunables.js';
import { systemClock } from '../platform/real-ports.js';
import { describeAttachDetection, detectAttachMethods } from '../storage/attach/index.js';
import { AgentCore, type AgentHost } from './agent.js';
import { AgentMetrics } from './agent-metrics.js';
import { listenMetrics, parseMetricsListen } from '../platform/metrics-listener.js';
import { loadAgentState, saveAgentState } from './agent-state.js';
import { ProcessDriver } from './drivers/process/process-driver.js';
import { VolumeDriver } from './drivers/volume-driver.js';
import { VolumeServerClient } from './volume-client.js';
import { formatListenAddress, parseListenAddress } from './volume-replication.js';
import { realProbeRunner } from './probes/probe-runner.js';
import { AgentSession } from './session.js';
import { agentFenceTimeoutMsDefault } from './self-fence.js';
import { VipManager, vipTakeoverMarginMs } from './vip.js';
import { realCommandRunner } from './vip-commands.js';

export const agentVersion = '0.1.0';

export interface AgentDaemonOptions {
  node: string;
  site: string;
  role: NodeRole;
  labels: Record<string, string>;
  /** Address at which this node's instances are reachable. */
  address: string;
  capacity?: Partial<Capacity>;
  dataDir: string;
  controllerUrls: string[];
  token: string;
  logger: Logger;
  /**
   * Where the volume server it starts takes other nodes' replication links, "host:port"
   * (default 127.0.0.1:0: this host, any free port). An unspecified host (0.0.0.0, ::) is
   * announced to the controller with this node's `address`.
   */
  replicationListen?: string;
  /** The volume server's `--loop-poll-us` (platform/loop-poll.ts; default: the server's own). */
  volumeLoopPollUs?: number;
  /** See AgentCoreOptions.fenceTimeoutMs (self-fence.ts). */
  fenceTimeoutMs?: number;
  /** Serve Prometheus metrics at http://<this>/metrics, "host:port" (default: not at all). */
  metricsListen?: string;
}

export const agentReplicationListenDefault = '127.0.0.1:0';

export interface RunningAgent {
  core: AgentCore;
  session: AgentSession;
  /** Where the metrics are served, with metricsListen. */
  metricsUrl?: string;
  close(): Promise<void>;
}

function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** `continuum volume serve` for this node, detached from the agent's stdio but in its group. */
function startVolumeServer(
  node: string,
  dataDir: string,
  options: { replicationListen: string; loopPollUs?: number },
): { exited(): boolean } {
  const built = fileURLToPath(new URL('../cli/main.js', import.meta.url));
  const cli = existsSync(built)
    ? [built]
    : ['--import', 'tsx', fileURLToPath(new URL('../cli/main.ts', import.meta.url))];
  const log = openSync(join(dataDir, 'volume-server.log'), 'a');
  const child = spawn(
    process.execPath,
    [
      ...cli,
      'volume',
      'serve',
      '--node',
      node,
      '--data-dir',
      dataDir,
      '--replication-listen',
      options.replicationListen,
      ...(options.loopPollUs === undefined ? [] : ['--loop-poll-us', String(options.loopPollUs)]),
      '--ignore-interrupt',
    ],
    // The malloc thresholds for a process that receives block payloads (malloc-tunables.ts).
    { stdio: ['ignore', log, log], env: serverProcessEnv() },
  );
  closeSync(log);
  child.unref();
  let exited = false;
  child.once('exit', () => (exited = true));
  return { exited: () => exited };
}

function fileHost(dataDir: string, address: string, node: string): AgentHost {
  const statePath = join(dataDir, 'agent-state.json');
  return {
    async prepare(workload, _epoch, spec) {
      const home = join(dataDir, 'workloads', workload);
      const asked =
        spec.process?.cwd === undefined ? undefined : pathOnNode(spec.process.cwd, node);
      const cwd = asked === undefined ? home : isAbsolute(asked) ? asked : join(home, asked);
      const runDir = join(dataDir, 'run', workload);
      mkdirSync(cwd, { recursive: true });
      mkdirSync(join(runDir, 'logs'), { recursive: true });
      // Nothing is removed here: prepare also runs when re-attaching, and the supervisor's socket
      // must survive it. The driver clears a previous incarnation's files when it starts anew.
      return Promise.resolve({ runDir, cwd });
    },
    async allocatePorts(spec) {
      const ports: Record<string, number> = {};
      // A VIP endpoint is served on the VIP itself, with no proxy to map ports: its own port.
      for (const endpoint of spec.endpoints)
        ports[endpoint.name] = endpoint.vip === undefined ? await freePort(address) : endpoint.port;
      return ports;
    },
    loadState: () => loadAgentState(statePath),
    saveState: (state) => saveAgentState(statePath, state),
  };
}

class UsageSampler {
  private last = cpus().map((c) => c.times);
  sample(): { cpuPercent: number; memoryUsedMiB: number; load1: number } {
    const now = cpus().map((c) => c.times);
    let busy = 0;
    let total = 0;
    now.forEach((t, i) => {
      const p = this.last[i] ?? t;
      const idle = t.idle - p.idle;
      const all = t.user - p.user + (t.nice - p.nice) + (t.sys - p.sys) + (t.irq - p.irq) + idle;
      busy += all - idle;
      total += all;
    });
    this.last = now;
    return {
      cpuPercent: total > 0 ? Math.round((busy / total) * 1000) / 10 : 0,
      memoryUsedMiB: Math.round((totalmem() - freemem()) / 1_048_576),
      load1: loadavg()[0] ?? 0,
    };
  }
}

export async function startAgent(input: AgentDaemonOptions): Promise<RunningAgent> {
  // Absolute, because the per-instance supervisors run with other working directories.
  const options = { ...input, dataDir: resolve(input.dataDir) };
  mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  writeFileSync(join(options.dataDir, 'agent.pid'), `${process.pid}\n`);
  const capacity: Capacity = {
    cpu: options.capacity?.cpu ?? cpus().length,
    memoryMiB: options.capacity?.memoryMiB ?? Math.floor(totalmem() / 1_048_576),
  };
  const usage = new UsageSampler();
  const replicationListen = options.replicationListen ?? agentReplicationListenDefault;
  parseListenAddress(replicationListen); // A bad value fails here, not in the spawned server.
  if (options.metricsListen !== undefined) parseMetricsListen(options.metricsListen);
  const loopPoll =
    options.volumeLoopPollUs === undefined
      ? {}
      : { loopPollUs: checkLoopPollWindowUs(options.volumeLoopPollUs, 'volumeLoopPollUs') };
  // The volume server runs as its own process in this agent's process group: it outlives an agent
  // restart (mounts stay up), and goes down with the group when the node does.
  const volumes = await VolumeServerClient.connect({
    dataDir: options.dataDir,
    logger: options.logger,
    clock: systemClock,
    startServer: () =>
      startVolumeServer(options.node, options.dataDir, { replicationListen, ...loopPoll }),
  });
  // Said once at start, so an operator sees why a volume workload would be refused here.
  const detection = await detectAttachMethods();
  options.logger.log(
    detection.preferred === null ? 'warn' : 'info',
    describeAttachDetection(detection),
  );
  const driver = new VolumeDriver(new ProcessDriver(), {
    provider: volumes,
    attachDir: join(options.dataDir, 'run', 'attach'),
    node: options.node,
    detection,
    logger: options.logger,
  });
  // The core needs a way to send before the session exists; it only sends once the session runs.
  const link: { session?: AgentSession } = {};
  const fenceTimeoutMs = options.fenceTimeoutMs ?? agentFenceTimeoutMsDefault;
  const vips = new VipManager({
    runner: realCommandRunner,
    logger: options.logger.child({ component: 'vip' }),
    clock: systemClock,
    // A holder cut off from the controller withdraws after fenceTimeoutMs; one that still answers
    // past this wait is taken over all the same (its agent is gone, say).
    takeoverWaitMs: fenceTimeoutMs + vipTakeoverMarginMs,
  });
  const core = new AgentCore({
    node: options.node,
    host: options.address,
    driver,
    volumes,
    replication: volumes,
    probes: realProbeRunner,
    clock: systemClock,
    logger: options.logger,
    env: fileHost(options.dataDir, options.address, options.node),
    fenceTimeoutMs,
    vips,
    send: (message) => link.session?.send(message),
  });
  const metrics = new AgentMetrics({
    statuses: () => core.statuses(),
    nbdCounters: () => volumes.nbdCounters(),
  });
  await core.recover();
  volumes.watchReports((report) => {
    metrics.volumeReport(report);
    core.volumeReport(report);
  });
  const session = new AgentSession({
    controllerUrls: options.controllerUrls,
    token: options.token,
    logger: options.logger,
    hello: () => ({
      type: 'hello',
      protocolVersion: agentProtocolVersion,
      node: options.node,
      site: options.site,
      role: options.role,
      labels: options.labels,
      address: options.address,
      ...replicationAddressOf(volumes.replicationAddress, options.address),
      capacity,
      inventory: {
        hostname: hostname(),
        cpuCount: cpus().length,
        memoryMiB: Math.floor(totalmem() / 1_048_576),
        agentVersion,
        agentPid: process.pid,
      },
      ...(core.clusterId === undefined ? {} : { clusterId: core.clusterId }),
      instances: core.statuses(),
      reportSeq: core.lastReportSeq,
    }),
    heartbeat: (seq) => ({
      type: 'heartbeat',
      seq,
      usage: usage.sample(),
      assignmentsRevision: core.assignmentsRevision,
      reportSeq: core.lastReportSeq,
    }),
    onMessage: (message) => core.handle(message),
    onContact: () => {
      metrics.sessionContact();
      core.controllerHeard();
    },
    onClosed: () => {
      metrics.sessionClosed();
    },
  });
  link.session = session;
  const metricsListener =
    options.metricsListen === undefined
      ? undefined
      : await listenMetrics(options.metricsListen, metrics, options.logger);
  session.start();
  return {
    core,
    session,
    ...(metricsListener === undefined ? {} : { metricsUrl: metricsListener.url }),
    async close() {
      await metricsListener?.close();
      session.close();
      core.detach();
      // The volume server stays: the instances the agent leaves running keep their mounts.
      await core.idle();
      await volumes.close();
    },
  };
}

/**
 * The replication address to announce: the server's bound one, with an unspecified host replaced
 * by the node's address (peers cannot connect to 0.0.0.0); none if the server did not say.
 */
function replicationAddressOf(
  bound: string | undefined,
  nodeAddress: string,
): { replicationAddress?: string } {
  if (bound === undefined) return {};
  const { host, port } = parseListenAddress(bound);
  if (host !== '0.0.0.0' && host !== '::') return { replicationAddress: bound };
  return { replicationAddress: formatListenAddress({ host: nodeAddress, port }) };
}
