// Delta against full resync (issue 5, "Measure"): a volume (4 GiB by default, sparse) with two
// copies, a quarter of it written (1 MiB in every 4 MiB, so a full resync has something to copy
// all over the volume). Then, twice, the replica's volume server is killed (SIGKILL: a crash, its
// copy left unclean), the benchmark does the controller's part by hand (the primary's membership
// without the replica, isrVersion + 1, as recordsAfterReport writes it after an 'unresponsive'
// report), 1% of the volume is written on the primary in 64 KiB blocks spread over all of it (one
// dirty-bitmap region each), and the replica comes back:
//
// - delta: its server restarts on the same data directory and gets its replica duty again; the
//   primary copies what its dirty bitmap marks, then verifies the whole volume by checksums;
// - full: its server restarts on a fresh, empty data directory; the primary compares every block
//   and copies every one that differs (everything written so far).
//
// Timed from the replica's duty to the primary's reports: the first progress report (the link
// is up and the first chunk went), the first block compared (the delta's copy is over, its verify
// pass begins), the pass done, and 'caught-up'. After each round the replica is admitted to the
// ISR again (isrVersion + 1), as the controller does on 'caught-up'.
import { join } from 'node:path';
import type { PrimaryReportMessage } from '../src/core/protocol.js';
import { replicationLimitsDefault } from '../src/storage/replication/limits.js';
import { type FioTarget, type Job, runFio } from './fio.js';
import {
  giveDuties,
  type Membership,
  openReplicatedVolume,
  passDone,
  primaryReadyTimeoutMs,
  ReportLog,
  ServerGroup,
  type VolumeServerProcess,
} from './replication-servers.js';

const volumeName = 'resync';
/** The fill writes 1 MiB in every this many MiB. */
const fillStrideMiB = 4;
/** The block of the changed writes: one dirty-bitmap region (bitmapRegionBytes). */
const changeBlockBytes = replicationLimitsDefault.bitmapRegionBytes;
/** How long one resync may take before the benchmark gives up on it. */
const resyncTimeoutMs = 600_000;
const round3 = (value: number) => Math.round(value * 1000) / 1000;

export interface ResyncOptions {
  volumeGiB: number;
  /** Share of the volume written while the replica is away. */
  changedPercent: number;
  dir: string;
}

export interface ResyncRound {
  mode: 'delta' | 'full';
  /** The mode the primary reported for the pass. */
  modeReported: string;
  changedBytes: number;
  /** From the start of the replica's server to its first answer. */
  restartSeconds: number;
  /** From the replica's duty to the first progress report (reconnect backoff, hello, a chunk). */
  firstReportSeconds: number;
  /** From the duty to the first block compared; for a delta, the end of the bitmap copy. */
  copyEndSeconds: number;
  /** From the duty to the pass reported done. */
  passSeconds: number;
  /** From the duty to 'caught-up' (acks drained, the replica flushed, made required). */
  caughtUpSeconds: number;
  bytesCopied: number;
  bytesToCopy: number;
  blocksCompared: number;
  /** bytesCopied at resyncBytesPerSecondMax: the least the throttle allows. */
  throttleFloorSeconds: number;
  /** The floor over the pass from its first report to done: near 1, the throttle sets the pace. */
  throttleShare: number;
}

export interface ResyncResult {
  volumeBytes: number;
  filledBytes: number;
  fillMiBPerSecond: number;
  resyncBytesPerSecondMax: number;
  delta: ResyncRound;
  full: ResyncRound;
  /** full / delta, from the duty to 'caught-up'. */
  fullOverDelta: number;
  /** full / delta, from the first progress report to 'caught-up' (no reconnect backoff). */
  fullOverDeltaFromFirstReport: number;
}

interface Scene {
  servers: VolumeServerProcess[];
  reports: ReportLog;
  target: FioTarget;
  sizeBytes: number;
  membership: Membership;
}

export async function benchResync(options: ResyncOptions): Promise<ResyncResult> {
  const dir = join(options.dir, 'resync');
  const group = new ServerGroup(dir);
  let reports: ReportLog | undefined;
  try {
    const servers = [await group.add('node-1'), await group.add('node-2')];
    for (const server of servers) await server.start();
    reports = new ReportLog(servers[0]!);
    const sizeMiB = options.volumeGiB * 1024;
    const sizeBytes = sizeMiB * 2 ** 20;
    await openReplicatedVolume(servers, { name: volumeName, sizeMiB, reports });
    const target = {
      uri: servers[0]!.nbdUri(volumeName),
      sizeBytes,
      output: join(dir, 'fio.json'),
    };
    const filledBytes = sizeBytes / fillStrideMiB;
    const fill: Job = {
      name: 'fill',
      args: [
        `--rw=write:${fillStrideMiB - 1}m`,
        '--bs=1m',
        '--iodepth=8',
        `--io_size=${filledBytes}`,
        // Durable on both copies: a crashed replica loses what it had not flushed, and its verify
        // pass would copy that again, which is not the change this benchmark times.
        '--end_fsync=1',
      ],
    };
    const fillStarted = performance.now();
    runFio(fill, target);
    const fillMiBPerSecond = filledBytes / 2 ** 20 / ((performance.now() - fillStarted) / 1000);
    const scene: Scene = {
      servers,
      reports,
      target,
      sizeBytes,
      membership: { isr: servers.map((server) => server.node), isrVersion: 1 },
    };
    const delta = await awayAndBack(scene, {
      mode: 'delta',
      changedPercent: options.changedPercent,
    });
    const full = await awayAndBack(scene, {
      mode: 'full',
      changedPercent: options.changedPercent,
      freshDataDir: join(dir, 'node-2-fresh'),
    });
    return {
      volumeBytes: sizeBytes,
      filledBytes,
      fillMiBPerSecond,
      resyncBytesPerSecondMax: replicationLimitsDefault.resyncBytesPerSecondMax,
      delta,
      full,
      fullOverDelta: Math.round((full.caughtUpSeconds / delta.caughtUpSeconds) * 10) / 10,
      fullOverDeltaFromFirstReport:
        Math.round(
          ((full.caughtUpSeconds - full.firstReportSeconds) /
            (delta.caughtUpSeconds - delta.firstReportSeconds)) *
            10,
        ) / 10,
    };
  } finally {
    await reports?.stop();
    await group.close();
  }
}

/** The replica crashes, the primary writes without it, the replica returns and catches up. */
async function awayAndBack(
  scene: Scene,
  round: { mode: 'delta' | 'full'; changedPercent: number; freshDataDir?: string },
): Promise<ResyncRound> {
  const [primary, replica] = scene.servers as [VolumeServerProcess, VolumeServerProcess];
  await replica.crash();
  // The controller's part on 'unresponsive': the replica leaves the ISR.
  await setMembership(scene, [primary.node], [primary.node]);
  const changedBytes = writeChange(scene, round.changedPercent);
  if (round.freshDataDir !== undefined) replica.dataDir = round.freshDataDir;
  const restartStarted = performance.now();
  await replica.start();
  const restartSeconds = (performance.now() - restartStarted) / 1000;
  const timed = await timeResync(scene, round.mode);
  // The controller's part on 'caught-up': the replica joins the ISR again.
  await setMembership(scene, [primary.node, replica.node], [replica.node, primary.node]);
  process.stderr.write(`replication bench: ${round.mode} resync done\n`);
  return { mode: round.mode, changedBytes, restartSeconds: round3(restartSeconds), ...timed };
}

/** A new membership (isrVersion + 1) with this ISR, given to the servers named by `to`. */
async function setMembership(scene: Scene, isr: string[], to: string[]): Promise<void> {
  scene.membership = { isr, isrVersion: scene.membership.isrVersion + 1 };
  await giveDuty(scene, to);
}

/** The current membership's duties, to the servers named by `to`. */
function giveDuty(scene: Scene, to: string[]): Promise<void> {
  const { sizeBytes, membership } = scene;
  return giveDuties(scene.servers, { volume: volumeName, sizeBytes, membership, only: to });
}

/** Writes `percent` of the volume on the primary in region-sized blocks at random offsets. */
function writeChange(scene: Scene, percent: number): number {
  const changedBytes =
    Math.round((scene.sizeBytes * percent) / 100 / changeBlockBytes) * changeBlockBytes;
  const change: Job = {
    name: 'change',
    args: [
      '--rw=randwrite',
      `--bs=${changeBlockBytes}`,
      '--iodepth=8',
      `--io_size=${changedBytes}`,
    ],
  };
  runFio(change, scene.target);
  return changedBytes;
}

/** Gives the returned replica its duty and times the primary's reports until 'caught-up'. */
async function timeResync(
  scene: Scene,
  mode: 'delta' | 'full',
): Promise<Omit<ResyncRound, 'mode' | 'changedBytes' | 'restartSeconds'>> {
  const replica = scene.servers[1]!;
  const from = scene.reports.entries.length;
  const dutyAtMs = performance.now();
  await giveDuty(scene, [replica.node]);
  const wait = { from, timeoutMs: resyncTimeoutMs };
  const done = await scene.reports.next(`the ${mode} resync`, wait, passDone(replica.node));
  const caughtUp = await scene.reports.next(
    `${replica.node} caught up`,
    { from, timeoutMs: primaryReadyTimeoutMs },
    (report) => report.kind === 'caught-up' && report.node === replica.node,
  );
  const progress = scene.reports.entries
    .slice(from)
    .filter((entry) => entry.report.kind === 'resync' && entry.report.node === replica.node);
  const comparing = progress.find((entry) => resyncOf(entry.report).blocksCompared > 0);
  const seconds = (atMs: number | undefined) =>
    atMs === undefined ? NaN : round3((atMs - dutyAtMs) / 1000);
  const last = resyncOf(done.report);
  const floorSeconds = last.bytesCopied / replicationLimitsDefault.resyncBytesPerSecondMax;
  const firstReportSeconds = seconds(progress[0]?.atMs);
  const passSeconds = seconds(done.atMs);
  return {
    modeReported: last.mode,
    firstReportSeconds,
    copyEndSeconds: seconds(comparing?.atMs),
    passSeconds,
    caughtUpSeconds: seconds(caughtUp.atMs),
    bytesCopied: last.bytesCopied,
    bytesToCopy: last.bytesToCopy,
    blocksCompared: last.blocksCompared,
    throttleFloorSeconds: round3(floorSeconds),
    throttleShare: round3(floorSeconds / (passSeconds - firstReportSeconds)),
  };
}

function resyncOf(report: PrimaryReportMessage) {
  if (report.kind !== 'resync') throw new Error(`expected a resync report, got ${report.kind}`);
  return report;
}
