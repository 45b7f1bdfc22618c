// Replicated against unreplicated writes (issue 5, "Measure"): the same volume server process
// (`continuum volume serve`) serves a plain volume alone, then the primary of a volume with 2 and
// 3 synchronous copies (replicas on other volume servers on loopback, all in the ISR at epoch 1),
// and fio's nbd engine runs the jobs of bench/nbd.ts against the primary's NBD socket. Each
// volume is written once end to end first, so that reads find data and writes overwrite blocks
// the engine has already allocated (no first-write allocation in one case and not the other).
import { dirname, join } from 'node:path';
import type { PrimaryReportMessage } from '../src/core/protocol.js';
import { type FioTarget, JOBS, type Job, measure, type Measure, median, runFio } from './fio.js';
import { cpuSeconds, syncFileSystemOf } from './nbd.js';
import {
  openReplicatedVolume,
  ReportLog,
  ServerGroup,
  type VolumeServerProcess,
} from './replication-servers.js';

/** The jobs of bench/nbd.ts this benchmark runs by default. */
export const replicationJobNamesDefault = [
  'randwrite-4k-qd1',
  'randwrite-4k-qd32',
  'randread-4k-qd1',
  'seqwrite-1m-qd8',
  'write-4k-fsync-qd1',
];
const volumeName = 'bench';
/** Writes the whole volume once, in 1 MiB requests, and flushes it. */
const fillJob: Job = {
  name: 'fill',
  args: ['--rw=write', '--bs=1m', '--iodepth=8', '--end_fsync=1'],
};
/** How long to let the primary's reports of the last job arrive before counting them. */
const reportsSettleMs = 50;

export interface ThroughputOptions {
  /** Length of each fio run. */
  seconds: number;
  /** Runs of each job; the median is reported. */
  rounds: number;
  volumeMiB: number;
  /** Copies of the volume per case; 1 is the plain, unreplicated volume. */
  copies: number[];
  jobs: string[];
  /** Where the cases keep their data directories. */
  dir: string;
  /** The servers' `--loop-poll-us` (their default when absent). */
  loopPollUs?: number;
}

export interface ThroughputRow {
  copies: number;
  job: string;
  /** cpuUsPerIo counts every server of the case (the primary and its replicas). */
  median: Measure;
  runs: Measure[];
  /** The primary's own CPU per I/O (median): the rest of cpuUsPerIo is the replicas'. */
  primaryCpuUsPerIo: number;
  /** Reports during the job that say writes stalled (an ISR member unresponsive) or stopped. */
  incidents: PrimaryReportMessage[];
}

export interface ThroughputCase {
  copies: number;
  /** From the duties to the primary serving with every replica verified (0 for a plain volume). */
  readySeconds: number;
  /** The first write of the whole volume, 1 MiB requests at depth 8. */
  fillMiBPerSecond: number;
  rows: ThroughputRow[];
}

/** One case while it runs: its servers, the primary's reports and where fio reaches it. */
interface RunningCase {
  copies: number;
  group: ServerGroup;
  servers: VolumeServerProcess[];
  reports: ReportLog;
  target: FioTarget;
  readySeconds: number;
  fillMiBPerSecond: number;
}

/**
 * Starts every case at once, then runs each job on each case in turn, the order rotated from job
 * to job and round to round (as bench/nbd.ts does with its servers), so that a slow spell of the
 * shared machine does not fall on one case only.
 */
export async function benchThroughput(options: ThroughputOptions): Promise<ThroughputCase[]> {
  const jobs = options.jobs.map((name) => {
    const job = JOBS.find((candidate) => candidate.name === name);
    if (job === undefined)
      throw new RangeError(`replication bench: unknown fio job ${name} (see bench/nbd.ts JOBS)`);
    return job;
  });
  const running: RunningCase[] = [];
  try {
    for (const copies of options.copies) running.push(await startCase(copies, options));
    const rows: ThroughputRow[] = [];
    for (const [jobIndex, job] of jobs.entries()) {
      const runs = new Map<RunningCase, JobRun[]>(running.map((c) => [c, []]));
      const from = new Map(running.map((c) => [c, c.reports.entries.length]));
      for (let round = 0; round < options.rounds; round++) {
        const shift = (jobIndex + round) % running.length;
        for (const c of [...running.slice(shift), ...running.slice(0, shift)])
          runs.get(c)!.push(runJob(c, job, options.seconds));
      }
      // Reports sent during the job wait in their server until the next poll: let them come in.
      await new Promise((resolve) => setTimeout(resolve, reportsSettleMs));
      for (const [c, jobRuns] of runs) {
        const measures = jobRuns.map((run) => run.measure);
        const primaryCpu = jobRuns.map((run) => run.primaryCpuUsPerIo).sort((a, b) => a - b);
        rows.push({
          copies: c.copies,
          job: job.name,
          median: median(measures),
          runs: measures,
          primaryCpuUsPerIo: primaryCpu[Math.floor(primaryCpu.length / 2)]!,
          incidents: c.reports.incidents(from.get(c)!),
        });
      }
      process.stderr.write(`replication bench: ${job.name} done\n`);
    }
    return running.map((c) => ({
      copies: c.copies,
      readySeconds: c.readySeconds,
      fillMiBPerSecond: c.fillMiBPerSecond,
      rows: rows.filter((row) => row.copies === c.copies),
    }));
  } finally {
    for (const c of running) {
      await c.reports.stop();
      await c.group.close();
    }
  }
}

/** Starts the servers of one case, opens its volume and writes it once. */
async function startCase(copies: number, options: ThroughputOptions): Promise<RunningCase> {
  const dir = join(options.dir, `copies-${copies}`);
  const poll = options.loopPollUs === undefined ? [] : ['--loop-poll-us', `${options.loopPollUs}`];
  const group = new ServerGroup(dir, poll);
  let reports: ReportLog | undefined;
  try {
    const servers: VolumeServerProcess[] = [];
    for (let index = 1; index <= copies; index++) servers.push(await group.add(`node-${index}`));
    for (const server of servers) await server.start();
    const primary = servers[0]!;
    reports = new ReportLog(primary);
    const readyStarted = performance.now();
    if (copies === 1) {
      const request = { op: 'create' as const, name: volumeName, sizeMiB: options.volumeMiB };
      await primary.control({ op: 'volume', request });
    } else {
      await openReplicatedVolume(servers, {
        name: volumeName,
        sizeMiB: options.volumeMiB,
        reports,
      });
    }
    const readySeconds = copies === 1 ? 0 : (performance.now() - readyStarted) / 1000;
    const target = {
      uri: primary.nbdUri(volumeName),
      sizeBytes: options.volumeMiB * 2 ** 20,
      output: join(dir, 'fio.json'),
    };
    const fillStarted = performance.now();
    runFio(fillJob, target);
    const fillMiBPerSecond = options.volumeMiB / ((performance.now() - fillStarted) / 1000);
    process.stderr.write(`replication bench: ${copies} copies ready, volume written once\n`);
    return { copies, group, servers, reports, target, readySeconds, fillMiBPerSecond };
  } catch (error) {
    await reports?.stop();
    await group.close();
    throw error;
  }
}

interface JobRun {
  measure: Measure;
  primaryCpuUsPerIo: number;
}

function runJob(c: RunningCase, job: Job, seconds: number): JobRun {
  syncFileSystemOf(dirname(c.target.output));
  const primaryBefore = cpuSeconds(c.servers[0]!.pid);
  const cpuBefore = cpuOf(c.servers);
  const fio = runFio(job, { ...c.target, seconds });
  const cpu = cpuOf(c.servers) - cpuBefore;
  const primaryCpu = cpuSeconds(c.servers[0]!.pid) - primaryBefore;
  const ios = fio.read.total_ios + fio.write.total_ios + (fio.sync?.total_ios ?? 0);
  const primaryCpuUsPerIo = ios > 0 ? (primaryCpu * 1e6) / ios : NaN;
  return { measure: measure(job, fio, cpu, ios), primaryCpuUsPerIo };
}

/** CPU seconds of every server of the case: the primary and the replicas it copies to. */
function cpuOf(servers: VolumeServerProcess[]): number {
  return servers.reduce((sum, server) => sum + cpuSeconds(server.pid), 0);
}

export interface ThroughputRatio {
  copies: number;
  job: string;
  /** replicated / unreplicated: IOPS and MiB/s (higher is better), latency (lower is better). */
  iops: number;
  mibPerSecond: number;
  p50: number;
  p99: number;
  cpuPerIo: number;
}

export function throughputRatios(cases: ThroughputCase[]): ThroughputRatio[] {
  const plain = cases.find((c) => c.copies === 1);
  if (plain === undefined) return [];
  const ratio = (a: number, b: number) => Math.round((a / b) * 1000) / 1000;
  const out: ThroughputRatio[] = [];
  for (const replicated of cases.filter((c) => c.copies > 1)) {
    for (const row of replicated.rows) {
      const base = plain.rows.find((candidate) => candidate.job === row.job);
      if (base === undefined) continue;
      out.push({
        copies: replicated.copies,
        job: row.job,
        iops: ratio(row.median.iops, base.median.iops),
        mibPerSecond: ratio(row.median.mibPerSecond, base.median.mibPerSecond),
        p50: ratio(row.median.p50Us, base.median.p50Us),
        p99: ratio(row.median.p99Us, base.median.p99Us),
        cpuPerIo: ratio(row.median.cpuUsPerIo, base.median.cpuUsPerIo),
      });
    }
  }
  return out;
}
