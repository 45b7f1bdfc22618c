// fio with its nbd engine, as the benchmarks run it: the jobs of bench/nbd.ts (bench/replication.ts
// runs a subset of the same list), one run's JSON report, and the figures read from it.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** One fio job: its name in the results and the fio arguments that define it. */
export interface Job {
  name: string;
  args: string[];
}
/** The fio jobs of this benchmark; bench/replication.ts runs a subset of the same list. */
export const JOBS: readonly Job[] = [
  { name: 'randread-4k-qd1', args: ['--rw=randread', '--bs=4k', '--iodepth=1'] },
  { name: 'randread-4k-qd32', args: ['--rw=randread', '--bs=4k', '--iodepth=32'] },
  { name: 'randwrite-4k-qd1', args: ['--rw=randwrite', '--bs=4k', '--iodepth=1'] },
  { name: 'randwrite-4k-qd32', args: ['--rw=randwrite', '--bs=4k', '--iodepth=32'] },
  { name: 'seqread-1m-qd8', args: ['--rw=read', '--bs=1m', '--iodepth=8'] },
  { name: 'seqwrite-1m-qd8', args: ['--rw=write', '--bs=1m', '--iodepth=8'] },
  { name: 'write-4k-fsync-qd1', args: ['--rw=randwrite', '--bs=4k', '--iodepth=1', '--fsync=1'] },
];

export interface Measure {
  iops: number;
  mibPerSecond: number;
  p50Us: number;
  p99Us: number;
  cpuUsPerIo: number;
}

type Percentiles = Record<string, number>;
interface FioSide {
  total_ios: number;
  iops: number;
  bw_bytes: number;
  clat_ns: { percentile: Percentiles };
}
/** The parts of one fio job's JSON report that the benchmark reads. */
export interface FioJob {
  read: FioSide;
  write: FioSide;
  sync?: { total_ios: number; lat_ns: { percentile: Percentiles } };
}

export interface FioTarget {
  uri: string;
  /** The region fio works over (--size). */
  sizeBytes: number;
  /** Time-based run of this length; without it, one pass over the region (or --io_size). */
  seconds?: number;
  /** Where fio writes its JSON report. */
  output: string;
}

/** Runs one fio job with the nbd engine and returns its JSON report; throws with fio's stderr. */
export function runFio(job: Job, target: FioTarget): FioJob {
  const timing =
    target.seconds === undefined ? [] : ['--time_based', `--runtime=${target.seconds}`];
  const args = [
    '--name=bench',
    '--ioengine=nbd',
    `--uri=${target.uri}`,
    ...job.args,
    `--size=${target.sizeBytes}`,
    ...timing,
    '--norandommap',
    '--randrepeat=0',
    '--output-format=json',
    `--output=${target.output}`,
  ];
  // A pass over the region has no runtime to bound it: allow it ten minutes.
  const timeoutSeconds = (target.seconds ?? 540) + 60;
  const result = spawnSync('fio', args, { encoding: 'utf8', timeout: timeoutSeconds * 1000 });
  if (result.status !== 0)
    throw new Error(`fio ${job.name} on ${target.uri} failed: ${result.stderr}`);
  return (JSON.parse(readFileSync(target.output, 'utf8')) as { jobs: FioJob[] }).jobs[0]!;
}

/** IOPS, throughput and latency of one fio report; `cpu` seconds spent by the server(s) for `ios`. */
export function measure(job: Job, fio: FioJob, cpu: number, ios: number): Measure {
  const side = fio.read.total_ios > 0 ? fio.read : fio.write;
  const fsync = job.args.includes('--fsync=1');
  // For write+flush the flush is where a server's durability path shows, so its latency is reported.
  const latency =
    fsync && fio.sync !== undefined ? fio.sync.lat_ns.percentile : side.clat_ns.percentile;
  return {
    iops: side.iops,
    mibPerSecond: side.bw_bytes / 1048576,
    p50Us: (latency['50.000000'] ?? NaN) / 1000,
    p99Us: (latency['99.000000'] ?? NaN) / 1000,
    cpuUsPerIo: ios > 0 ? (cpu * 1e6) / ios : NaN,
  };
}

/** The median of each figure on its own. */
export function median(values: Measure[]): Measure {
  const pick = (key: keyof Measure) => {
    const sorted = values.map((v) => v[key]).sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)]!;
  };
  return {
    iops: pick('iops'),
    mibPerSecond: pick('mibPerSecond'),
    p50Us: pick('p50Us'),
    p99Us: pick('p99Us'),
    cpuUsPerIo: pick('cpuUsPerIo'),
  };
}
