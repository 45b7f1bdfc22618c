// The replication benchmark (issue 5, "Measure"; docs/replication-bench.md): synchronous
// replication with 2 and 3 copies against the same volume server unreplicated, with the fio jobs
// of bench/nbd.ts (replication-throughput.ts), checked against the targets, with the round
// trip of the replication link (sockperf, replication-floor.ts) as the floor of the depth-1
// latency; then the time of a delta resync against a full one after 1% of a 4 GiB volume changed
// (replication-resync.ts).
// Volume servers are `continuum volume serve` processes on loopback, one data directory each
// under one temporary directory that is removed at the end, also on failure. Figures only:
// nothing here asserts (CONVENTIONS.md item 19). Run alone:
// node --import tsx bench/replication.ts [--repl-seconds 5] [--repl-rounds 1] [--resync-gib 4]
//   [--loop-poll-us N]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseLoopPollWindowUs } from '../src/platform/loop-poll.js';
import { hostIdle } from './host-idle.js';
import { hasTool, version } from './nbd.js';
import { formatReplicationBench } from './replication-format.js';
import {
  benchLinkFloor,
  type FloorReading,
  floorJob,
  floorReadings,
  type LinkFloor,
} from './replication-floor.js';
import { benchResync, type ResyncResult } from './replication-resync.js';
import {
  benchThroughput,
  replicationJobNamesDefault,
  type ThroughputCase,
  type ThroughputRatio,
  throughputRatios,
} from './replication-throughput.js';

/** The targets: replicated IOPS at 4 KiB random write depth 32, p50 at depth 1. */
export const iopsRatioMin = 0.5;
export const p50RatioMax = 2;
const iopsTargetJob = 'randwrite-4k-qd32';
const latencyTargetJob = 'randwrite-4k-qd1';
/** DRBD's documented throughput overhead for protocol C on suitable links (section 15.2). */
export const drbdOverheadMax = 0.03;

export interface ReplicationBenchOptions {
  /** Length of each fio run; 0 skips the replicated-against-unreplicated part. */
  seconds: number;
  rounds: number;
  volumeMiB: number;
  copies: number[];
  jobs: string[];
  /** Size of the resync volume; 0 skips the resync part. */
  resyncGiB: number;
  changedPercent: number;
  /** The volume servers' `--loop-poll-us` in the throughput part (their default when absent). */
  loopPollUs?: number;
}

export const replicationBenchDefaults: ReplicationBenchOptions = Object.freeze({
  seconds: 5,
  rounds: 1,
  volumeMiB: 1024,
  copies: [1, 2, 3],
  jobs: replicationJobNamesDefault,
  resyncGiB: 4,
  changedPercent: 1,
});

export interface TargetCheck {
  copies: number;
  target: string;
  job: string;
  ratio: number;
  limit: number;
  pass: boolean;
}

export interface ReplicationBenchResult {
  settings: Record<string, unknown>;
  throughput?: { cases: ThroughputCase[]; ratios: ThroughputRatio[]; targets: TargetCheck[] };
  drbd?: string;
  /** The link's round trip, measured after the throughput part, and the depth-1 job against it. */
  floor?: { link: LinkFloor; readings: FloorReading[] } | { skipped: string };
  resync?: ResyncResult;
  skipped?: string;
}

export async function benchReplication(
  options: ReplicationBenchOptions,
): Promise<ReplicationBenchResult> {
  const settings = settingsOf(options);
  if (options.seconds > 0 && !hasTool('fio')) return { settings, skipped: 'fio is not installed' };
  const dir = mkdtempSync(join(tmpdir(), 'repl-bench-'));
  const result: ReplicationBenchResult = { settings };
  try {
    if (options.seconds > 0) {
      const cases = await benchThroughput({ ...options, dir });
      const ratios = throughputRatios(cases);
      result.throughput = { cases, ratios, targets: targetChecks(ratios) };
      result.drbd = drbdComparison(ratios);
      if (options.jobs.includes(floorJob)) {
        // A failed peer measurement is reported, not thrown: the figures above stand without it.
        const link = await benchLinkFloor(options).catch((error: unknown) => ({
          skipped: `the round trip could not be measured: ${(error as Error).message}`,
        }));
        result.floor = 'skipped' in link ? link : { link, readings: floorReadings(cases, link) };
      }
    }
    if (options.resyncGiB > 0) {
      result.resync = await benchResync({
        volumeGiB: options.resyncGiB,
        changedPercent: options.changedPercent,
        dir,
      });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return result;
}

function targetChecks(ratios: ThroughputRatio[]): TargetCheck[] {
  const checks: TargetCheck[] = [];
  for (const r of ratios) {
    if (r.job === iopsTargetJob) {
      const pass = r.iops >= iopsRatioMin;
      checks.push({
        copies: r.copies,
        target: 'IOPS >= 50%',
        job: r.job,
        ratio: r.iops,
        limit: iopsRatioMin,
        pass,
      });
    }
    if (r.job === latencyTargetJob) {
      const pass = r.p50 <= p50RatioMax;
      checks.push({
        copies: r.copies,
        target: 'p50 <= 2x',
        job: r.job,
        ratio: r.p50,
        limit: p50RatioMax,
        pass,
      });
    }
  }
  return checks;
}

/** How far the measured overhead is from DRBD's documented one, and why, in a sentence or three. */
function drbdComparison(ratios: ThroughputRatio[]): string | undefined {
  const sequential = ratios.find((r) => r.copies === 2 && r.job === 'seqwrite-1m-qd8');
  const random = ratios.find((r) => r.copies === 2 && r.job === iopsTargetJob);
  if (sequential === undefined || random === undefined) return undefined;
  const percent = (ratio: number) => `${Math.round((1 - ratio) * 100)}%`;
  return (
    `DRBD documents a throughput overhead under ${drbdOverheadMax * 100}% for protocol C ` +
    `(DRBD 8.4 User's Guide, 15.2), relative to the slower of the disk and a dedicated ` +
    `replication link. With 2 copies we lose ${percent(sequential.mibPerSecond)} of 1 MiB ` +
    `sequential write throughput and ${percent(random.iops)} of 4 KiB random write IOPS at ` +
    `depth 32, and a 4 KiB write costs ${random.cpuPerIo.toFixed(1)}x the CPU of an ` +
    `unreplicated one, counted over every server. Why: here every copy is a Node.js process on ` +
    `the same 2 cores as the primary and fio, so a replica's CPU is taken from the primary ` +
    `instead of added, and loopback TCP is memory copies on those cores rather than a link of ` +
    `its own; every write is copied through user space to each replica and acknowledged back in ` +
    `our own protocol before the client's reply, where DRBD replicates inside the kernel; and the ` +
    `unreplicated case is bound by CPU, not by a disk or a network, which is the bound DRBD's ` +
    `figure is measured against.`
  );
}

function settingsOf(options: ReplicationBenchOptions): Record<string, unknown> {
  return {
    ...options,
    fio: 'the jobs of bench/nbd.ts (fio --ioengine=nbd --time_based --norandommap --randrepeat=0)',
    server:
      'node dist/cli/main.js volume serve --node N --data-dir D --replication-listen 127.0.0.1:P',
    replicaKill: 'SIGKILL',
    versions: { node: process.version, fio: version('fio', ['--version']) },
    cpus: Number(spawnSync('nproc').stdout.toString().trim()),
    idle: hostIdle(),
  };
}

/** Standalone, with the flags of `npm run bench`: --repl-seconds, --repl-rounds, --resync-gib. */
async function main(): Promise<void> {
  const { parseArgs } = await import('node:util');
  const { saveResult } = await import('./restore.js');
  const { values } = parseArgs({
    options: {
      'repl-seconds': { type: 'string', default: String(replicationBenchDefaults.seconds) },
      'repl-rounds': { type: 'string', default: String(replicationBenchDefaults.rounds) },
      'resync-gib': { type: 'string', default: String(replicationBenchDefaults.resyncGiB) },
      'loop-poll-us': { type: 'string' },
    },
  });
  const result = await benchReplication(
    parseReplicationOptions({
      seconds: values['repl-seconds'],
      rounds: values['repl-rounds'],
      resyncGiB: values['resync-gib'],
      loopPollUs: values['loop-poll-us'],
    }),
  );
  process.stdout.write(formatReplicationBench(result));
  process.stdout.write(`saved ${saveResult('replication', result)}\n`);
}

/** The options from command-line text, each checked; a RangeError names the flag. */
export function parseReplicationOptions(text: {
  seconds: string;
  rounds: string;
  resyncGiB: string;
  loopPollUs?: string | undefined;
}): ReplicationBenchOptions {
  const whole = (flag: string, value: string, min: number) => {
    const number = Number(value);
    if (!Number.isInteger(number) || number < min)
      throw new RangeError(`${flag}: expected a whole number >= ${min}, got ${value}`);
    return number;
  };
  return {
    ...replicationBenchDefaults,
    seconds: whole('--repl-seconds', text.seconds, 0),
    rounds: whole('--repl-rounds', text.rounds, 1),
    resyncGiB: whole('--resync-gib', text.resyncGiB, 0),
    ...(text.loopPollUs === undefined
      ? {}
      : { loopPollUs: parseLoopPollWindowUs(text.loopPollUs, '--loop-poll-us') }),
  };
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1])
  await main();
