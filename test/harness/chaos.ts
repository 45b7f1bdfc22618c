// A seeded chaos run on real processes: a controller, four agents, the redirector and the demo kv
// service; a client sending requests through the endpoint; and a seeded schedule of SIGKILL,
// SIGSTOP and SIGCONT of nodes, agents, the workload and the controller. It reports the share of
// requests that succeeded, every failover with its time to restore, and any moment at which two
// instances ran at one epoch. The schedule's draws come from the seed; which node holds kv when an
// action fires is observed, so two runs of one seed take the same draws but not always the same path.
import { mulberry32 } from '../../src/sim/rng.js';
import { cpSync, lstatSync } from 'node:fs';
import type { FailoverView } from '../../src/controller/queries.js';
import { scanWorkloads, waitFor, type AgentSpec, type TestCluster } from './cluster.js';
import { EndpointClient, serves, startDemo } from './demo.js';
import { DoubleActiveSampler } from './sampler.js';

export interface ChaosOptions {
  seed: number;
  durationMs: number;
  log?: (line: string) => void;
  /** Copies the cluster directory (logs, journal) here before it is removed, for a post-mortem. */
  keepLogsTo?: string;
}

export interface ChaosAction {
  /** Milliseconds since the schedule began. */
  at: number;
  action: string;
  target: string;
}

/** A completed change of owner as GET /v1/failovers lists it, with its step times. */
export type ChaosFailover = Omit<FailoverView, 'seq' | 'at'>;

/** The client's counts (requests, successes, longest outage), then what the cluster did. */
export type ChaosReport = ReturnType<EndpointClient['counts']> & {
  seed: number;
  durationMs: number;
  /** From the end of the chaos until kv was active and the endpoint served; null if it did not. */
  settleMs: number | null;
  actions: ChaosAction[];
  failovers: ChaosFailover[];
  restoreMs: { median: number | null; max: number | null };
  doubleActive: DoubleActiveSampler['violations'];
  samples: number;
  epochsSeen: string[];
};

/** The cluster of the issue: three production nodes and a spare, so one can fail with room to spare. */
export const chaosNodes: AgentSpec[] = [
  { name: 'node-1', role: 'production' },
  { name: 'node-2', role: 'production' },
  { name: 'node-3', role: 'production' },
  { name: 'spare-1', role: 'spare' },
];

type NodeState = 'up' | 'down' | 'stopped' | 'agent-down';
type RecoveryKind = keyof typeof recoveryRank;
interface Recovery {
  dueAt: number;
  kind: RecoveryKind;
  target: string;
}

/**
 * What can happen to a node, how likely (for kv's node, for another), and how it comes back. Kept
 * as a table, one row per action, which is why prettier leaves it alone.
 */
// prettier-ignore
const nodeActions = [
  { action: 'kill-node', weights: [3, 0.5], state: 'down', signal: 'SIGKILL', agentOnly: false, recovery: 'restart-node', delayMs: [1000, 3000] },
  { action: 'stop-node', weights: [1.5, 0.4], state: 'stopped', signal: 'SIGSTOP', agentOnly: false, recovery: 'resume-node', delayMs: [1500, 4000] },
  { action: 'kill-agent', weights: [0.3, 0.3], state: 'agent-down', signal: 'SIGKILL', agentOnly: true, recovery: 'restart-agent', delayMs: [200, 1000] },
] as const;
type NodeAction = (typeof nodeActions)[number];

interface Candidate {
  action: string;
  target: string;
  weight: number;
  holdsKv: boolean;
  run: () => Promise<void>;
}

/** At the end, recoveries run in this order: the controller first, since agents report to it. */
const recoveryRank = {
  'restart-controller': 0,
  'resume-node': 1,
  'restart-node': 2,
  'restart-agent': 3,
};
/** Bounds the settling at the end: a cluster that has not recovered by then is a finding. */
const settleTimeoutMs = 60_000;

/** The schedule and its bookkeeping: which node is down, stopped or agentless, and what comes back when. */
class ChaosSchedule {
  readonly actions: ChaosAction[] = [];
  private readonly nodes = new Map<
    string,
    { spec: AgentSpec; state: NodeState; groups: number[] }
  >();
  private readonly recoveries: Recovery[] = [];
  private controllerUp = true;
  private readonly t0 = Date.now();

  constructor(
    private readonly cluster: TestCluster,
    private readonly random: () => number,
    private readonly log: (line: string) => void,
  ) {
    for (const spec of chaosNodes)
      this.nodes.set(spec.name, { spec, state: 'up', groups: [cluster.pidOf(spec.name)] });
  }

  private draw([minMs, maxMs]: readonly [number, number]): number {
    return Math.round(minMs + this.random() * (maxMs - minMs));
  }

  private record(action: string, target: string): void {
    const at = Date.now() - this.t0;
    this.actions.push({ at, action, target });
    this.log(`+${(at / 1000).toFixed(1)}s ${action} ${target}`);
  }

  /** Runs an action every 2-5 s, and recoveries when they are due, until untilAt. */
  async run(untilAt: number): Promise<void> {
    let nextActionAt = this.t0 + this.draw([2000, 5000]);
    let first = true;
    for (;;) {
      const next = Math.min(nextActionAt, ...this.recoveries.map((r) => r.dueAt));
      if (next >= untilAt) return;
      // The seeded pause between steps is the schedule itself, not a wait for a condition.
      await new Promise((r) => setTimeout(r, Math.max(0, next - Date.now())));
      await this.runDueRecoveries(Date.now());
      if (Date.now() < nextActionAt) continue;
      await this.act(first);
      first = false;
      nextActionAt = Date.now() + this.draw([2000, 5000]);
    }
  }

  /** Brings back everything still down or stopped, at once, controller first. */
  async recoverAll(): Promise<void> {
    this.recoveries.sort((a, b) => recoveryRank[a.kind] - recoveryRank[b.kind]);
    for (const recovery of this.recoveries.splice(0)) await this.recover(recovery);
    // Nothing may stay stopped, whatever the bookkeeping says.
    for (const name of this.nodes.keys()) this.signalNode(name, 'SIGCONT');
  }

  private async runDueRecoveries(now: number): Promise<void> {
    const controller = this.recoveries.find((r) => r.kind === 'restart-controller');
    for (const recovery of [...this.recoveries].sort((a, b) => a.dueAt - b.dueAt)) {
      if (recovery.dueAt > now) continue;
      // Starting an agent waits for the controller to see it, so it waits for the controller's restart.
      const needsController = recovery.kind === 'restart-node' || recovery.kind === 'restart-agent';
      if (needsController && !this.controllerUp && controller !== undefined) {
        recovery.dueAt = controller.dueAt + 1;
        continue;
      }
      this.recoveries.splice(this.recoveries.indexOf(recovery), 1);
      await this.recover(recovery);
    }
  }

  private async recover({ kind, target }: Recovery): Promise<void> {
    this.record(kind, target);
    if (kind === 'restart-controller') {
      await this.cluster.startController();
      this.controllerUp = true;
      return;
    }
    const node = this.nodes.get(target)!;
    if (kind === 'resume-node') this.signalNode(target, 'SIGCONT');
    else {
      await this.cluster.waitExit(target);
      await this.cluster.startAgent(node.spec);
      node.groups.push(this.cluster.pidOf(target));
    }
    node.state = 'up';
  }

  /**
   * Signals every process group a node has had: an agent restarted alone leaves its instances'
   * supervisors in the old agent's group, and they belong to the node all the same.
   */
  private signalNode(name: string, signal: NodeJS.Signals): void {
    const node = this.nodes.get(name)!;
    node.groups = node.groups.filter((pgid) => {
      try {
        process.kill(-pgid, signal);
        return true;
      } catch {
        return false; // The group is gone; forget it so its number is never signalled again.
      }
    });
  }

  private async impairNode(name: string, a: NodeAction): Promise<void> {
    this.nodes.get(name)!.state = a.state;
    if (a.agentOnly) this.cluster.signalProcess(name, a.signal);
    else this.signalNode(name, a.signal);
    const dueAt = Date.now() + this.draw(a.delayMs);
    this.recoveries.push({ kind: a.recovery, target: name, dueAt });
    if (a.signal === 'SIGKILL') await this.cluster.waitExit(name);
  }

  private async killController(): Promise<void> {
    this.controllerUp = false;
    this.cluster.signalProcess('controller', 'SIGKILL');
    const dueAt = Date.now() + this.draw([1000, 3000]);
    this.recoveries.push({ kind: 'restart-controller', target: 'controller', dueAt });
    await this.cluster.waitExit('controller');
  }

  /** kv's live process: the one the API names if it answers, else the highest epoch in /proc. */
  private async kvProcess(): Promise<{ pid: number; node: string } | undefined> {
    const live = scanWorkloads()
      .filter((p) => p.workload === 'kv' && p.cwd.startsWith(this.cluster.dir))
      .sort((a, b) => b.epoch - a.epoch);
    const pid = !this.controllerUp
      ? undefined
      : await this.cluster.workload('kv').then(
          (w) => w.instance?.pid,
          () => undefined,
        );
    return live.find((p) => p.pid === pid) ?? live[0];
  }

  private async candidates(): Promise<Candidate[]> {
    const kv = await this.kvProcess();
    const up = [...this.nodes.values()].filter((n) => n.state === 'up').map((n) => n.spec.name);
    const list: Candidate[] = [];
    // Never fewer than two healthy agents: impair a node only while three or more are up.
    for (const name of up.length >= 3 ? up : [])
      for (const a of nodeActions) {
        const holdsKv = kv?.node === name;
        const target = holdsKv ? `${name} (holds kv)` : name;
        const run = () => this.impairNode(name, a);
        list.push({ action: a.action, target, weight: a.weights[holdsKv ? 0 : 1], holdsKv, run });
      }
    if (kv !== undefined && this.nodes.get(kv.node)?.state === 'up') {
      const target = `kv pid ${kv.pid} on ${kv.node}`;
      const run = () => Promise.resolve(process.kill(kv.pid, 'SIGKILL')).then(() => {});
      list.push({ action: 'kill-workload', target, weight: 2, holdsKv: true, run });
    }
    const run = () => this.killController();
    if (this.controllerUp)
      list.push({
        action: 'kill-controller',
        target: 'controller',
        weight: 1,
        holdsKv: false,
        run,
      });
    return list;
  }

  /** One action, chosen by weight; the first always crashes kv's node, so every run fails over. */
  private async act(first: boolean): Promise<void> {
    const list = await this.candidates();
    const pick = this.random() * list.reduce((sum, c) => sum + c.weight, 0);
    let chosen = first ? list.find((c) => c.action === 'kill-node' && c.holdsKv) : undefined;
    for (let acc = 0, i = 0; chosen === undefined && i < list.length; i++) {
      acc += list[i]!.weight;
      if (pick < acc || i === list.length - 1) chosen = list[i];
    }
    if (chosen === undefined) return this.record('skip', 'nothing may be disturbed now');
    this.record(chosen.action, chosen.target);
    await chosen.run();
  }
}

/** Runs the chaos of the issue for durationMs, then lets the cluster settle and reports. */
export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  if (!Number.isInteger(options.seed))
    throw new RangeError(`seed: expected a whole number, got ${options.seed}`);
  if (!Number.isFinite(options.durationMs) || options.durationMs < 0)
    throw new RangeError(`durationMs: expected milliseconds >= 0, got ${options.durationMs}`);
  const log = options.log ?? (() => {});
  const { cluster, endpoint } = await startDemo({ nodes: chaosNodes });
  const sampler = new DoubleActiveSampler(cluster.dir);
  // Separate streams, so the client's draws never shift the schedule's.
  const client = new EndpointClient(endpoint, mulberry32(options.seed ^ 0x5eed), {
    requestTimeoutMs: 3000,
    pauseMs: 20,
    requestsMax: Math.ceil(options.durationMs / 10) + 10_000,
    runMs: options.durationMs + settleTimeoutMs + 30_000,
  });
  try {
    sampler.start();
    client.start();
    const schedule = new ChaosSchedule(cluster, mulberry32(options.seed), log);
    await schedule.run(Date.now() + options.durationMs);
    log('chaos over: resuming and restarting everything');
    await schedule.recoverAll();
    const settleMs = await settle(cluster, endpoint);
    await client.stop();
    sampler.stop();
    return {
      seed: options.seed,
      durationMs: options.durationMs,
      settleMs,
      ...client.counts(),
      actions: schedule.actions,
      ...(await failoversOf(cluster)),
      doubleActive: sampler.violations,
      samples: sampler.samples,
      epochsSeen: [...sampler.epochsSeen],
    };
  } finally {
    sampler.stop();
    await client.stop();
    if (options.keepLogsTo !== undefined) keepLogs(cluster.dir, options.keepLogsTo, log);
    await cluster.close();
  }
}

/** Copies directories and regular files only (the run dirs hold sockets); never stops close(). */
function keepLogs(from: string, to: string, log: (line: string) => void): void {
  try {
    cpSync(from, to, { recursive: true, filter: (path) => !lstatSync(path).isSocket() });
  } catch (err) {
    log(`could not keep the logs: ${err instanceof Error ? err.message : String(err)}`);
  }
}

async function settle(cluster: TestCluster, endpoint: string): Promise<number | null> {
  const startedAt = Date.now();
  try {
    const active = async () => (await cluster.workload('kv')).phase === 'active';
    await waitFor('kv to be active after the chaos', settleTimeoutMs, active, 100);
    await waitFor('the endpoint to serve after the chaos', settleTimeoutMs, () => serves(endpoint));
    return Date.now() - startedAt;
  } catch {
    return null;
  }
}

async function failoversOf(
  cluster: TestCluster,
): Promise<Pick<ChaosReport, 'failovers' | 'restoreMs'>> {
  const { body } = await cluster.api<{ items: (ChaosFailover & { seq: number; at: number })[] }>(
    'GET',
    '/v1/failovers',
  );
  const failovers = body.items.map(({ seq: _seq, at: _at, ...failover }) => failover);
  const restores = failovers
    .filter((f) => f.kind === 'failover')
    .flatMap((f) => (f.restoreMs === undefined ? [] : [f.restoreMs]))
    .sort((a, b) => a - b);
  return {
    failovers,
    restoreMs: {
      median: restores[Math.floor((restores.length - 1) / 2)] ?? null,
      max: restores.at(-1) ?? null,
    },
  };
}
