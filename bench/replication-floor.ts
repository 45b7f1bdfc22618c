// The network floor of synchronous replication on this machine (issue 5, "Measure"). A write that
// is answered only once every replica holds it costs at least one round trip on the replication
// link more than the same write unreplicated (the replicas are written in parallel, so one round
// trip for any number of copies). The peer that measures that round trip is sockperf's ping-pong
// over loopback TCP, the path our replication links take here: a 4 KiB message, echoed back,
// `--full-rtt`. With it the depth-1 latency target can be read against what any protocol-C
// replication could reach in the same run: (unreplicated p50 + round trip) / unreplicated p50,
// with the replica's own write, the copies and the protocol all counted as free.
import { spawn, spawnSync } from 'node:child_process';
import { connect } from 'node:net';
import { freePort, waitFor } from '../test/harness/cluster.js';
import { hasTool, stop } from './nbd.js';
import type { ThroughputCase } from './replication-throughput.js';

/** The size of one replicated 4 KiB write's payload; the frame header and the ack are extra. */
export const floorMessageBytes = 4096;
/** How long the sockperf server may take to accept connections. */
const serverStartTimeoutMs = 10_000;
/** A ping-pong run's time limit beyond its own length, before it counts as hung. */
const clientSlackMs = 30_000;
/** The depth-1 job the floor is read against. */
export const floorJob = 'randwrite-4k-qd1';

export interface LinkFloorRun {
  rttP50Us: number;
  rttP99Us: number;
}

export interface LinkFloor {
  tool: string;
  messageBytes: number;
  /** Medians over the runs. */
  rttP50Us: number;
  rttP99Us: number;
  runs: LinkFloorRun[];
}

/** How the measured depth-1 latency compares with the floor, for one number of copies. */
export interface FloorReading {
  copies: number;
  job: string;
  unreplicatedP50Us: number;
  replicatedP50Us: number;
  /** replicated p50 - unreplicated p50. */
  addedUs: number;
  /** addedUs in round trips of the link. */
  addedRoundTrips: number;
  /** (unreplicated p50 + one round trip) / unreplicated p50: the best ratio protocol C can reach. */
  bestP50Ratio: number;
  measuredP50Ratio: number;
}

/**
 * Runs `rounds` sockperf ping-pongs of `seconds` each against one sockperf server on loopback.
 * Skipped, with the reason, when sockperf is not installed.
 */
export async function benchLinkFloor(options: {
  seconds: number;
  rounds: number;
}): Promise<LinkFloor | { skipped: string }> {
  if (!hasTool('sockperf'))
    return { skipped: 'sockperf is not installed (apt-get install sockperf)' };
  const port = await freePort();
  const server = spawn('sockperf', ['server', '--tcp', '-i', '127.0.0.1', '-p', String(port)], {
    stdio: 'ignore',
  });
  // If the benchmark exits early, the server goes with it (ended by its PID, like every child here).
  const killServer = () => server.kill('SIGKILL');
  process.on('exit', killServer);
  try {
    await waitFor('sockperf server to accept connections', serverStartTimeoutMs, async () => {
      if (server.exitCode !== null)
        throw new Error(`sockperf server exited with ${server.exitCode}`);
      return accepts(port);
    });
    const runs: LinkFloorRun[] = [];
    for (let round = 0; round < options.rounds; round++) runs.push(pingPong(port, options.seconds));
    const middle = (values: number[]) =>
      [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
    return {
      tool: `${sockperfVersion()} ping-pong --tcp -m ${floorMessageBytes} --full-rtt`,
      messageBytes: floorMessageBytes,
      rttP50Us: middle(runs.map((run) => run.rttP50Us)),
      rttP99Us: middle(runs.map((run) => run.rttP99Us)),
      runs,
    };
  } finally {
    await stop(server);
    process.off('exit', killServer);
  }
}

/** The floor's reading for each replicated case, at the depth-1 job. */
export function floorReadings(cases: ThroughputCase[], floor: LinkFloor): FloorReading[] {
  const p50Of = (c: ThroughputCase) => c.rows.find((row) => row.job === floorJob)?.median.p50Us;
  const plain = cases.find((c) => c.copies === 1);
  const base = plain === undefined ? undefined : p50Of(plain);
  if (base === undefined) return [];
  const round = (value: number) => Math.round(value * 100) / 100;
  const readings: FloorReading[] = [];
  for (const c of cases.filter((candidate) => candidate.copies > 1)) {
    const p50 = p50Of(c);
    if (p50 === undefined) continue;
    readings.push({
      copies: c.copies,
      job: floorJob,
      unreplicatedP50Us: base,
      replicatedP50Us: p50,
      addedUs: round(p50 - base),
      addedRoundTrips: round((p50 - base) / floor.rttP50Us),
      bestP50Ratio: round((base + floor.rttP50Us) / base),
      measuredP50Ratio: round(p50 / base),
    });
  }
  return readings;
}

/** One ping-pong run; throws with sockperf's output when it reports no percentiles. */
function pingPong(port: number, seconds: number): LinkFloorRun {
  const args = ['ping-pong', '--tcp', '-i', '127.0.0.1', '-p', String(port)];
  args.push('-m', String(floorMessageBytes), '-t', String(seconds), '--full-rtt');
  const out = spawnSync('sockperf', args, {
    encoding: 'utf8',
    timeout: seconds * 1000 + clientSlackMs,
  });
  // sockperf prints its report on stderr or stdout depending on the version, and exits 0 even
  // when it could not connect: the percentiles are the only sign of a run.
  const text = `${out.stdout ?? ''}\n${out.stderr ?? ''}`;
  const percentile = (label: string) =>
    Number(new RegExp(`percentile ${label} =\\s*([0-9.]+)`).exec(text)?.[1] ?? NaN);
  const run = { rttP50Us: percentile('50\\.000'), rttP99Us: percentile('99\\.000') };
  if (!Number.isFinite(run.rttP50Us) || !Number.isFinite(run.rttP99Us)) {
    const tail = text.trim().split('\n').slice(-3).join(' | ');
    throw new Error(`sockperf ping-pong reported no round-trip percentiles: ${tail}`);
  }
  return run;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function sockperfVersion(): string {
  const out = spawnSync('sockperf', ['--version'], { encoding: 'utf8' });
  const match = /version\s+([^\s]+)/.exec(`${out.stdout ?? ''}${out.stderr ?? ''}`);
  return match === null ? 'sockperf (version unknown)' : `sockperf ${match[1]}`;
}
