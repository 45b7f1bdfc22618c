// Plain-text tables of the replication benchmark (bench/replication.ts) for the terminal: the
// figures per job and number of copies, the ratios to the unreplicated volume, the issue's
// targets with PASS or MISS, the comparison with DRBD, and the delta and full resync rounds.
import { formatHostIdle, type HostIdle } from './host-idle.js';
import type { ReplicationBenchResult } from './replication.js';
import type { ResyncResult, ResyncRound } from './replication-resync.js';

const pad = (value: string | number, width: number) => String(value).padStart(width);
const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);

export function formatReplicationBench(result: ReplicationBenchResult): string {
  if (result.skipped !== undefined) return `replication bench skipped: ${result.skipped}\n`;
  const lines: string[] = [];
  if (result.throughput !== undefined) {
    const { cases, ratios, targets } = result.throughput;
    lines.push(
      `${'copies'.padEnd(6)} ${'job'.padEnd(19)} ${pad('IOPS', 8)} ${pad('MiB/s', 8)} ${pad('p50 us', 8)} ${pad('p99 us', 8)} ${pad('CPU us/IO', 9)} ${pad('primary', 7)}  stalls`,
    );
    for (const c of cases) {
      for (const row of c.rows) {
        const m = row.median;
        lines.push(
          `${String(c.copies).padEnd(6)} ${row.job.padEnd(19)} ${pad(Math.round(m.iops), 8)} ${pad(m.mibPerSecond.toFixed(1), 8)} ${pad(m.p50Us.toFixed(1), 8)} ${pad(m.p99Us.toFixed(1), 8)} ${pad(m.cpuUsPerIo.toFixed(1), 9)} ${pad(row.primaryCpuUsPerIo.toFixed(1), 7)}  ${row.incidents.length}`,
        );
      }
    }
    lines.push(
      '',
      'CPU us/IO: every volume server of the case (primary and replicas); primary: its share.',
      'stalls: reports of an unresponsive, unclean or fenced copy during the job (0 expected).',
      `ready: ${cases
        .filter((c) => c.copies > 1)
        .map((c) => `${c.copies} copies ${c.readySeconds.toFixed(2)} s`)
        .join(', ')} (duties to the primary serving with every replica verified); copies 1 is ` +
        'the plain volume',
      '',
      'replicated / unreplicated (IOPS, MiB/s: higher is better; latency, CPU: lower is better)',
      `${'copies'.padEnd(6)} ${'job'.padEnd(19)} ${pad('IOPS', 6)} ${pad('MiB/s', 6)} ${pad('p50', 6)} ${pad('p99', 6)} ${pad('CPU/IO', 6)}`,
    );
    for (const r of ratios) {
      lines.push(
        `${String(r.copies).padEnd(6)} ${r.job.padEnd(19)} ${pad(r.iops.toFixed(2), 6)} ${pad(r.mibPerSecond.toFixed(2), 6)} ${pad(r.p50.toFixed(2), 6)} ${pad(r.p99.toFixed(2), 6)} ${pad(r.cpuPerIo.toFixed(2), 6)}`,
      );
    }
    lines.push('', 'targets of issue 5');
    for (const t of targets) {
      lines.push(
        `  ${t.pass ? 'PASS' : 'MISS'} ${t.copies} copies, ${t.target} (${t.job}): ratio ${t.ratio.toFixed(2)}, limit ${t.limit}`,
      );
    }
    if (result.drbd !== undefined) lines.push('', result.drbd);
  }
  if (result.floor !== undefined) lines.push('', ...floorLines(result.floor));
  if (result.throughput !== undefined) {
    lines.push('', formatHostIdle(result.settings.idle as HostIdle | undefined));
  }
  if (result.resync !== undefined) lines.push('', ...resyncLines(result.resync));
  return `${lines.join('\n')}\n`;
}

function floorLines(floor: NonNullable<ReplicationBenchResult['floor']>): string[] {
  if ('skipped' in floor) return [`depth-1 floor skipped: ${floor.skipped}`];
  const { link, readings } = floor;
  const lines = [
    `replication link round trip (${link.tool}, loopback, medians of ${link.runs.length} runs): ` +
      `p50 ${link.rttP50Us.toFixed(1)} us, p99 ${link.rttP99Us.toFixed(1)} us`,
    'depth 1 against it: a write answered once every replica holds it needs at least one round',
    'trip more than the unreplicated write; best = (unreplicated p50 + round trip) / unreplicated',
    "p50, counting the replica's write, the copies and the protocol as free",
    `${'copies'.padEnd(6)} ${pad('unrepl p50', 10)} ${pad('repl p50', 8)} ${pad('added us', 8)} ${pad('round trips', 11)} ${pad('best', 5)} ${pad('measured', 8)}`,
  ];
  for (const r of readings) {
    lines.push(
      `${String(r.copies).padEnd(6)} ${pad(r.unreplicatedP50Us.toFixed(1), 10)} ${pad(r.replicatedP50Us.toFixed(1), 8)} ${pad(r.addedUs.toFixed(1), 8)} ${pad(r.addedRoundTrips.toFixed(2), 11)} ${pad(r.bestP50Ratio.toFixed(2), 5)} ${pad(r.measuredP50Ratio.toFixed(2), 8)}`,
    );
  }
  return lines;
}

function resyncLines(resync: ResyncResult): string[] {
  const lines = [
    `resync: ${mib(resync.volumeBytes)} MiB volume, 2 copies, ${mib(resync.filledBytes)} MiB ` +
      `written first (${resync.fillMiBPerSecond.toFixed(1)} MiB/s); throttle ` +
      `resyncBytesPerSecondMax ${mib(resync.resyncBytesPerSecondMax)} MiB/s (the default: the ` +
      'volume server has no setting for it)',
    "restart: from starting the replica's server to its first answer (after SIGKILL the",
    'engine recovers its store first). Then seconds from the replica duty to: the first',
    'progress report, the copy end (first block compared), the pass done and caught-up.',
    'floor: bytes copied at resyncBytesPerSecondMax; share: the floor over the pass from its',
    'first report (near 1: the throttle sets the pace)',
    `${'mode'.padEnd(6)} ${pad('changed MiB', 11)} ${pad('restart', 7)} ${pad('first', 6)} ${pad('copied', 6)} ${pad('pass', 6)} ${pad('caught', 6)} ${pad('MiB copied', 10)} ${pad('compared', 8)} ${pad('floor', 6)} ${pad('share', 5)}`,
  ];
  for (const round of [resync.delta, resync.full]) lines.push(roundLine(round));
  lines.push(
    `full / delta: ${resync.fullOverDelta}x from the duty to caught-up, ` +
      `${resync.fullOverDeltaFromFirstReport}x from the first progress report (no reconnect backoff)`,
  );
  return lines;
}

function roundLine(round: ResyncRound): string {
  const s = (seconds: number) => pad(seconds.toFixed(2), 6);
  const mode =
    round.mode === round.modeReported ? round.mode : `${round.mode}(${round.modeReported})`;
  return (
    `${mode.padEnd(6)} ${pad(mib(round.changedBytes), 11)} ${pad(round.restartSeconds.toFixed(2), 7)} ` +
    `${s(round.firstReportSeconds)} ${s(round.copyEndSeconds)} ${s(round.passSeconds)} ` +
    `${s(round.caughtUpSeconds)} ${pad(mib(round.bytesCopied), 10)} ${pad(round.blocksCompared, 8)} ` +
    `${s(round.throttleFloorSeconds)} ${pad(round.throttleShare.toFixed(2), 5)}`
  );
}
