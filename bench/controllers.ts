// Several controllers on etcd (issue 6): the time for a follower to lead after the leader is
// SIGKILLed, and for every agent to be back with the new leader, over `runs` kills, with any move
// of the demo workload counted (there must be none); then the time to restore service after a
// node crash with two controllers on etcd, and on the multi-host cluster in network namespaces
// (bench/multihost.ts, where root and the tools allow), against one controller on SQLite, in the
// same run.
import { EtcdProcess, etcdMissingReason } from '../src/store/etcd-process.js';
import { waitFor } from '../test/harness/cluster.js';
import { startDemo, type Demo } from '../test/harness/demo.js';
import { benchMultihostRestore } from './multihost.js';
import { nodeCrash, stats, summarize, type Sample } from './restore.js';

export interface ControllersBenchOptions {
  /** Leader kills, and node crashes on each cluster. */
  runs: number;
  /** Controllers sharing etcd (2 or 3). */
  controllers: number;
  leaderLeaseMs: number;
}

interface Takeover {
  /** SIGKILL of the leader to another controller's /healthz saying leader. */
  takeoverMs: number;
  /** SIGKILL to every node connected to the new leader. */
  agentsBackMs: number;
}

async function roleOf(url: string): Promise<string | undefined> {
  try {
    const response = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(500) });
    return ((await response.json()) as { role?: string }).role;
  } catch {
    return undefined;
  }
}

async function killLeader(demo: Demo): Promise<Takeover> {
  const cluster = demo.cluster;
  const old = await cluster.leader();
  const others = cluster.urls.filter((_, index) => index !== old.index);
  const t0 = performance.now();
  cluster.signalProcess(old.name, 'SIGKILL');
  const takeoverMs = await waitFor(
    'a follower to lead',
    30_000,
    async () => {
      const roles = await Promise.all(others.map(roleOf));
      return roles.includes('leader') ? performance.now() - t0 : undefined;
    },
    10,
  );
  await cluster.leader();
  const agentsBackMs = await waitFor(
    'every agent with the new leader',
    30_000,
    async () => {
      const nodes = await cluster.api<{ items: { state: string; connected: boolean }[] }>(
        'GET',
        '/v1/nodes',
      );
      return nodes.body.items.every((n) => n.state === 'up' && n.connected)
        ? performance.now() - t0
        : undefined;
    },
    10,
  );
  // The killed controller comes back as a follower, so every run starts with the same cluster.
  await cluster.waitExit(old.name);
  await cluster.startController(old.index);
  return { takeoverMs, agentsBackMs };
}

async function nodeCrashes(demo: Demo, runs: number): Promise<Sample[]> {
  const samples: Sample[] = [];
  for (let i = 0; i < runs; i++) samples.push(await nodeCrash(demo));
  return samples;
}

export async function benchControllers(
  options: ControllersBenchOptions,
): Promise<Record<string, unknown>> {
  const missing = etcdMissingReason();
  if (missing !== undefined) return { skipped: missing };
  const etcd = await EtcdProcess.start();
  try {
    const demo = await startDemo({
      etcd: {
        endpoints: [etcd.endpoint],
        controllers: options.controllers,
        leaderLeaseMs: options.leaderLeaseMs,
      },
    });
    const takeovers: Takeover[] = [];
    let etcdNodeCrash: Sample[] = [];
    let moves = 0;
    try {
      const before = await demo.cluster.workload('kv');
      for (let i = 0; i < options.runs; i++) takeovers.push(await killLeader(demo));
      const after = await demo.cluster.workload('kv');
      moves = after.epoch - before.epoch;
      etcdNodeCrash = await nodeCrashes(demo, options.runs);
    } finally {
      await demo.cluster.close();
    }
    const single = await startDemo();
    let singleNodeCrash: Sample[] = [];
    try {
      singleNodeCrash = await nodeCrashes(single, options.runs);
    } finally {
      await single.cluster.close();
    }
    const multi = summarize(etcdNodeCrash);
    const one = summarize(singleNodeCrash);
    const hosts = await benchMultihostRestore({ runs: options.runs });
    return {
      controllers: options.controllers,
      leaderLeaseMs: options.leaderLeaseMs,
      etcdMembers: 1,
      leaderKill: {
        runs: takeovers.length,
        takeoverMs: stats(takeovers.map((t) => t.takeoverMs)),
        agentsBackMs: stats(takeovers.map((t) => t.agentsBackMs)),
        workloadMoves: moves,
      },
      nodeCrashRestore: {
        etcdControllers: multi,
        singleControllerSqlite: one,
        medianRatio: multi.restoreMs.median / one.restoreMs.median,
        namespaces:
          'skipped' in hosts
            ? hosts
            : {
                ...hosts,
                medianRatioToSingle: hosts.restoreMs.median / one.restoreMs.median,
              },
      },
      samples: { takeovers, etcdNodeCrash, singleNodeCrash },
    };
  } finally {
    await etcd.stop();
  }
}

/** The lines `npm run bench` prints for this section. */
export function formatControllersBench(result: Record<string, unknown>): string {
  if ('skipped' in result) return `controllers: skipped (${String(result.skipped)})`;
  const r = result as {
    controllers: number;
    leaderKill: {
      runs: number;
      takeoverMs: ReturnType<typeof stats>;
      agentsBackMs: ReturnType<typeof stats>;
      workloadMoves: number;
    };
    nodeCrashRestore: {
      etcdControllers: ReturnType<typeof summarize>;
      singleControllerSqlite: ReturnType<typeof summarize>;
      medianRatio: number;
      namespaces:
        | { skipped: string }
        | { runs: number; restoreMs: ReturnType<typeof stats>; medianRatioToSingle: number };
    };
  };
  const ms = (v: number) => `${Math.round(v)} ms`;
  const k = r.leaderKill;
  const n = r.nodeCrashRestore;
  return [
    `controllers: ${r.controllers} on etcd, leader SIGKILLed ${k.runs} times`,
    `  new leader:           median ${ms(k.takeoverMs.median)}, max ${ms(k.takeoverMs.max)}`,
    `  agents back with it:  median ${ms(k.agentsBackMs.median)}, max ${ms(k.agentsBackMs.max)}`,
    `  workload moves:       ${k.workloadMoves}`,
    `  node crash restore:   median ${ms(n.etcdControllers.restoreMs.median)} with etcd, ` +
      `${ms(n.singleControllerSqlite.restoreMs.median)} with one controller on SQLite ` +
      `(ratio ${n.medianRatio.toFixed(2)})`,
    'skipped' in n.namespaces
      ? `  on hosts as namespaces: skipped (${n.namespaces.skipped})`
      : `  on hosts as namespaces (3 control hosts, 3 nodes): median ` +
        `${ms(n.namespaces.restoreMs.median)}, max ${ms(n.namespaces.restoreMs.max)} ` +
        `over ${n.namespaces.runs} host crashes (ratio to one controller on SQLite ` +
        `${n.namespaces.medianRatioToSingle.toFixed(2)})`,
  ].join('\n');
}
