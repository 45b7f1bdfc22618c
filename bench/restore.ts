// Time to restore service, measured from the kill to the first successful request through the
// endpoint: for a process crash (restart in place) and a node crash (failover), with the
// controller's breakdown (detect, decide, start, healthy); then false failovers while both cores
// are loaded by CPU hogs. Results go to bench/results/ and to stdout.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, waitFor } from '../test/harness/cluster.js';
import { info, startDemo, type Demo } from '../test/harness/demo.js';

export interface Sample {
  restoreMs: number;
  breakdown: Record<string, number>;
}

export interface RestoreOptions {
  runs: number;
  hogSeconds: number;
}

export function stats(values: number[]): { median: number; max: number; min: number; p90: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) =>
    sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
  return { median: at(0.5), max: sorted.at(-1) ?? NaN, min: sorted[0] ?? NaN, p90: at(0.9) };
}

/** Polls the endpoint every 5 ms until a request succeeds from an instance other than `oldPid`. */
async function untilServedByNew(demo: Demo, oldPid: number, t0: number): Promise<number> {
  return waitFor(
    'service restored',
    30_000,
    async () => {
      try {
        const now = await info(demo.endpoint);
        return now.pid !== oldPid ? performance.now() - t0 : undefined;
      } catch {
        return undefined;
      }
    },
    5,
  );
}

async function processCrash(demo: Demo): Promise<Sample> {
  const before = await demo.cluster.workload('kv');
  const pid = before.instance!.pid!;
  const afterSeq = (await demo.cluster.events()).at(-1)?.seq ?? 0;
  const t0 = performance.now();
  const killedAt = Date.now();
  process.kill(pid, 'SIGKILL');
  const restoreMs = await untilServedByNew(demo, pid, t0);
  const events = (await demo.cluster.events()).filter(
    (e) => e.seq > afterSeq && e.subject.name === `kv/${before.node}`,
  );
  const at = (kind: string) => events.find((e) => e.kind === kind)?.at;
  const breakdown: Record<string, number> = {};
  const restarting = at('instance.restarting');
  const starting = events.filter((e) => e.kind === 'instance.starting').at(-1)?.at;
  const healthy = at('instance.healthy');
  if (restarting !== undefined) breakdown.detectMs = restarting - killedAt;
  if (restarting !== undefined && starting !== undefined) breakdown.startMs = starting - restarting;
  if (starting !== undefined && healthy !== undefined) breakdown.healthyMs = healthy - starting;
  await waitFor(
    'kv active',
    20_000,
    async () => (await demo.cluster.workload('kv')).phase === 'active',
  );
  return { restoreMs, breakdown };
}

export async function nodeCrash(demo: Demo): Promise<Sample> {
  const before = await demo.cluster.workload('kv');
  const node = before.node!;
  const pid = before.instance!.pid!;
  const afterSeq = (await demo.cluster.events()).at(-1)?.seq ?? 0;
  const t0 = performance.now();
  demo.cluster.signalGroup(node, 'SIGKILL');
  const restoreMs = await untilServedByNew(demo, pid, t0);
  const completed = await waitFor('failover.completed', 10_000, async () =>
    (await demo.cluster.events('failover.completed')).find((e) => e.seq > afterSeq),
  );
  const d = completed.data ?? {};
  const breakdown: Record<string, number> = {};
  for (const k of ['detectMs', 'decideMs', 'startMs', 'healthyMs', 'restoreMs'])
    if (typeof d[k] === 'number') breakdown[k] = d[k];
  // Bring the node back (a repaired host), so the next run has the same capacity.
  await demo.cluster.waitExit(node);
  await demo.cluster.startAgent({
    name: node,
    role: node.startsWith('spare') ? 'spare' : 'production',
  });
  await waitFor(
    'kv active',
    20_000,
    async () => (await demo.cluster.workload('kv')).phase === 'active',
  );
  return { restoreMs, breakdown };
}

export function summarize(samples: Sample[]) {
  const keys = [...new Set(samples.flatMap((s) => Object.keys(s.breakdown)))];
  return {
    runs: samples.length,
    restoreMs: stats(samples.map((s) => s.restoreMs)),
    breakdownMedianMs: Object.fromEntries(
      keys.map((k) => [
        k,
        stats(samples.map((s) => s.breakdown[k]).filter((v): v is number => v !== undefined))
          .median,
      ]),
    ),
  };
}

async function falseFailovers(
  demo: Demo,
  seconds: number,
): Promise<{ seconds: number; hogs: number; failovers: number; suspects: number }> {
  const afterSeq = (await demo.cluster.events()).at(-1)?.seq ?? 0;
  const hogs: ChildProcess[] = [0, 1].map(() =>
    spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }),
  );
  try {
    await new Promise((r) => setTimeout(r, seconds * 1000));
  } finally {
    for (const hog of hogs) hog.kill('SIGKILL');
  }
  const events = (await demo.cluster.events()).filter((e) => e.seq > afterSeq);
  return {
    seconds,
    hogs: hogs.length,
    failovers: events.filter((e) => e.kind === 'failover.decided').length,
    suspects: events.filter((e) => e.kind === 'node.suspect').length,
  };
}

/** Each process crash is the first in its restart window, so backoff and the ladder's limit do not colour the figure. */
const benchRestartPolicy = {
  maxRestarts: 3,
  windowMs: 1000,
  backoffInitialMs: 100,
  backoffMaxMs: 2000,
};

export async function benchRestore(options: RestoreOptions): Promise<Record<string, unknown>> {
  const demo = await startDemo({ restart: benchRestartPolicy });
  try {
    const processSamples: Sample[] = [];
    for (let i = 0; i < options.runs; i++) {
      processSamples.push(await processCrash(demo));
      // Let the restart window pass (a benchmark pause, not a condition wait).
      await new Promise((r) => setTimeout(r, benchRestartPolicy.windowMs + 100));
    }
    const nodeSamples: Sample[] = [];
    for (let i = 0; i < options.runs; i++) nodeSamples.push(await nodeCrash(demo));
    const underLoad = await falseFailovers(demo, options.hogSeconds);
    const result = {
      processCrash: summarize(processSamples),
      nodeCrash: summarize(nodeSamples),
      falseFailoversUnderCpuLoad: underLoad,
      targets: { nodeCrashMedianMs: 2000, processCrashMedianMs: 500, falseFailovers: 0 },
      references: {
        keepalivedVrrpTakeoverMs: 3500,
        corosyncMembershipChangeMs: 2200,
        kubernetesPodReplacementMs: 360_000,
      },
    };
    return {
      ...result,
      ratios: {
        nodeCrashVsKeepalived: result.nodeCrash.restoreMs.median / 3500,
        nodeCrashVsCorosync: result.nodeCrash.restoreMs.median / 2200,
        processCrashVsTarget: result.processCrash.restoreMs.median / 500,
      },
      samples: { processCrash: processSamples, nodeCrash: nodeSamples },
    };
  } finally {
    await demo.cluster.close();
  }
}

export function saveResult(name: string, result: unknown): string {
  const dir = join(repoRoot, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  return file;
}
