// NBD server benchmark: Continuum's server (over RawFileDevice), qemu-nbd and nbdkit's file plugin
// serve the same backing file, in turn, over a unix socket and over TCP on loopback; fio's nbd
// engine drives each job against each server. Reported per job: IOPS, throughput, p50/p99
// latency, server CPU per I/O (utime+stime from /proc/<pid>/stat), and ours as a ratio to each
// peer. Peers run with comparable settings: page cache on (qemu-nbd --cache=writeback
// --aio=threads, nbdkit file cache=default), flush = fdatasync. Every process started here is
// ended by its PID. Run alone: node --import tsx bench/nbd.ts [--seconds 5] [--rounds 1].
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomFillSync } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { formatNbdBench } from './nbd-format.js';
import { JOBS, type Measure, measure, median, runFio } from './fio.js';
import { hostIdle } from './host-idle.js';
import { serverProcessEnv } from '../src/platform/malloc-tunables.js';

/** The servers the benchmark can run; the type and `--servers`' check both come from this list. */
const serverNames = [
  'continuum',
  'qemu-nbd',
  'nbdkit',
  'continuum-threadpool',
  'continuum-nopoll',
] as const;
export type ServerName = (typeof serverNames)[number];
export interface NbdBenchOptions {
  /** Length of each fio run. */
  seconds: number;
  /** Runs of each job on each server; the median is reported. */
  rounds: number;
  fileMiB: number;
  servers: ServerName[];
  transports: ('unix' | 'tcp')[];
  /** Write a V8 CPU profile of our server (node --cpu-prof) into this directory. */
  cpuProfileDir?: string;
  /** Only the jobs whose names contain one of these strings (all when absent). */
  jobs?: string[];
}

const repoRoot = join(fileURLToPath(import.meta.url), '..', '..');
const CLOCK_TICKS_PER_SECOND =
  Number(spawnSync('getconf', ['CLK_TCK']).stdout.toString().trim()) || 100;
const started = new Set<ChildProcess>();

/** utime + stime of a process, in seconds. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() =>
        typeof address === 'object' && address !== null
          ? resolve(address.port)
          : reject(new Error('no port')),
      );
    });
  });
}

/**
 * Resolves once the server completes the start of a handshake: greeting read, then client flags
 * and NBD_OPT_ABORT sent, so that no server logs a broken connection for the probe.
 */
function probe(target: { path?: string; port?: number }): Promise<boolean> {
  return new Promise((resolve) => {
    const socket =
      target.path !== undefined ? connect(target.path) : connect(target.port!, '127.0.0.1');
    let received = 0;
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received < 18 || received - chunk.length >= 18) return;
      const abort = Buffer.alloc(20);
      abort.writeUInt32BE(1, 0);
      abort.write('IHAVEOPT', 4, 'latin1');
      abort.writeUInt32BE(2, 12);
      socket.end(abort);
    });
    socket.once('close', () => resolve(received >= 18));
    socket.once('error', () => resolve(false));
  });
}

async function untilAccepting(
  target: { path?: string; port?: number },
  child: ChildProcess,
): Promise<void> {
  const deadline = performance.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited early with ${child.exitCode}`);
    if (await probe(target)) return;
    if (performance.now() > deadline) throw new Error('server did not start listening within 20 s');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

interface Running {
  name: ServerName;
  child: ChildProcess;
  uri: string;
}

/** The built server when it is at least as new as its source (npm run bench builds first), else tsx. */
function ourServerCommand(options: NbdBenchOptions): string[] {
  const built = join(repoRoot, 'dist', 'storage', 'nbd', 'serve-raw-file.js');
  const source = join(repoRoot, 'src', 'storage', 'nbd', 'serve-raw-file.ts');
  const profile =
    options.cpuProfileDir === undefined
      ? []
      : ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfileDir}`];
  const fresh = existsSync(built) && statSync(built).mtimeMs >= newestSourceMs();
  return fresh ? [...profile, built] : [...profile, '--import', 'tsx', source];
}

function newestSourceMs(): number {
  const dir = join(repoRoot, 'src', 'storage');
  const files = [join(dir, 'raw-file-device.ts'), join(dir, 'block-device.ts')];
  for (const name of readdirSync(join(dir, 'nbd'))) files.push(join(dir, 'nbd', name));
  return Math.max(...files.map((file) => statSync(file).mtimeMs));
}

async function startServer(
  name: ServerName,
  transport: 'unix' | 'tcp',
  file: string,
  dir: string,
  options: NbdBenchOptions,
): Promise<Running> {
  const sock = join(dir, `${name}.sock`);
  const port = transport === 'tcp' ? await freePort() : undefined;
  const where = transport === 'unix' ? { path: sock } : { port };
  const uri =
    transport === 'unix' ? `nbd+unix:///disk?socket=${sock}` : `nbd://127.0.0.1:${port}/disk`;
  let command: string;
  let args: string[];
  let env = process.env;
  if (name === 'qemu-nbd') {
    command = 'qemu-nbd';
    const listen = transport === 'unix' ? ['-k', sock] : ['-b', '127.0.0.1', '-p', String(port)];
    args = [
      '-f',
      'raw',
      '--cache=writeback',
      '--aio=threads',
      '--persistent',
      '--shared=16',
      '-x',
      'disk',
      ...listen,
      file,
    ];
  } else if (name === 'nbdkit') {
    command = 'nbdkit';
    const listen = transport === 'unix' ? ['-U', sock] : ['-i', '127.0.0.1', '-p', String(port)];
    args = ['-f', '--exit-with-parent', '-e', 'disk', ...listen, 'file', `file=${file}`];
  } else {
    command = process.execPath;
    const listen = transport === 'unix' ? ['--socket', sock] : ['--port', String(port)];
    const io = name === 'continuum-threadpool' ? 'threadpool' : 'sync';
    // Without the loop poll (platform/loop-poll.ts), to show what it changes in the same run.
    const poll = name === 'continuum-nopoll' ? ['--loop-poll-us', '0'] : [];
    args = [
      ...ourServerCommand(options),
      ...['--file', file, '--name', 'disk', '--io', io, ...poll, ...listen],
    ];
    env = serverProcessEnv(); // The malloc thresholds the agent gives the volume server.
  }
  const child = spawn(command, args, {
    stdio: ['ignore', 'ignore', 'inherit'],
    cwd: repoRoot,
    env,
  });
  started.add(child);
  await untilAccepting(where, child);
  return { name, child, uri };
}

/** SIGTERM, then SIGKILL after 10 s; resolves when the child has exited. */
export async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
  started.delete(child);
}

function prepareFile(path: string, mib: number): void {
  const fd = openSync(path, 'w');
  const chunk = Buffer.allocUnsafe(16 << 20);
  for (let written = 0; written < mib << 20; written += chunk.length)
    writeSync(fd, randomFillSync(chunk));
  closeSync(fd);
  syncFileSystemOf(path);
}

/** How long the writeback before a run may take before the run goes on without it. */
const syncTimeoutMs = 120_000;

/**
 * Writes back the file system that holds `path` before a run, so no run pays for an earlier one's
 * dirty pages. Only that file system: a plain `sync` waits on every mount, and one stuck mount
 * elsewhere on the machine (a FUSE server that died) would hang the benchmark for good.
 */
export function syncFileSystemOf(path: string): void {
  const result = spawnSync('sync', ['--file-system', path], { timeout: syncTimeoutMs });
  if (result.status !== 0) {
    const why = result.error?.message ?? result.stderr.toString().trim();
    process.stderr.write(`bench: sync of the file system of ${path} failed (${why}); going on\n`);
  }
}

export function hasTool(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
}

export function version(command: string, args: string[]): string {
  const out = spawnSync(command, args, { encoding: 'utf8' });
  return (out.stdout || out.stderr || '').split('\n')[0]!.trim();
}

export interface NbdBenchRow {
  transport: 'unix' | 'tcp';
  job: string;
  server: ServerName;
  median: Measure;
  runs: Measure[];
}

export interface NbdRatio {
  transport: 'unix' | 'tcp';
  job: string;
  peer: ServerName;
  /** ours / peer: above 1 is better for IOPS, below 1 is better for latency and CPU. */
  iops: number;
  p50: number;
  p99: number;
  cpuPerIo: number;
}

export interface NbdBenchResult {
  settings: Record<string, unknown>;
  rows: NbdBenchRow[];
  ratios: NbdRatio[];
  skipped?: string;
}

export async function benchNbd(options: NbdBenchOptions): Promise<NbdBenchResult> {
  if (!hasTool('fio'))
    return { settings: {}, rows: [], ratios: [], skipped: 'fio is not installed' };
  const servers = options.servers.filter(
    (name) => !['qemu-nbd', 'nbdkit'].includes(name) || hasTool(name),
  );
  const dir = mkdtempSync(join(tmpdir(), 'nbd-bench-'));
  const file = join(dir, 'disk.raw');
  const killAll = () => started.forEach((child) => child.kill('SIGKILL'));
  process.on('exit', killAll);
  const rows: NbdBenchRow[] = [];
  try {
    prepareFile(file, options.fileMiB);
    for (const transport of options.transports) {
      const running: Running[] = [];
      for (const name of servers)
        running.push(await startServer(name, transport, file, dir, options));
      const jobs = JOBS.filter(
        (job) => options.jobs?.some((part) => job.name.includes(part)) ?? true,
      );
      for (const [jobIndex, job] of jobs.entries()) {
        const runs = new Map<ServerName, Measure[]>(running.map((r) => [r.name, []]));
        for (let round = 0; round < options.rounds; round++) {
          // Rotate the order so that no server always runs first (warm cache) or last.
          const shift = (jobIndex + round) % running.length;
          for (const server of [...running.slice(shift), ...running.slice(0, shift)]) {
            syncFileSystemOf(file);
            const before = cpuSeconds(server.child.pid!);
            const fio = runFio(job, {
              uri: server.uri,
              sizeBytes: options.fileMiB << 20,
              seconds: options.seconds,
              output: join(dir, 'fio.json'),
            });
            const cpu = cpuSeconds(server.child.pid!) - before;
            const ios = fio.read.total_ios + fio.write.total_ios + (fio.sync?.total_ios ?? 0);
            runs.get(server.name)!.push(measure(job, fio, cpu, ios));
          }
        }
        for (const [server, measures] of runs)
          rows.push({ transport, job: job.name, server, median: median(measures), runs: measures });
        process.stderr.write(`nbd bench: ${transport} ${job.name} done\n`);
      }
      for (const server of running) await stop(server.child);
    }
  } finally {
    for (const child of [...started]) await stop(child);
    process.off('exit', killAll);
    rmSync(dir, { recursive: true, force: true });
  }
  return { settings: settings(options, servers), rows, ratios: ratios(rows) };
}

function settings(options: NbdBenchOptions, servers: ServerName[]): Record<string, unknown> {
  return {
    ...options,
    servers,
    jobs: JOBS.map(
      (job) =>
        `${job.name}: fio --ioengine=nbd ${job.args.join(' ')} --time_based --runtime=${options.seconds} --norandommap --randrepeat=0`,
    ),
    peers: {
      'qemu-nbd':
        'qemu-nbd -f raw --cache=writeback --aio=threads --persistent --shared=16 -x disk (-k SOCK | -b 127.0.0.1 -p PORT) FILE',
      nbdkit:
        'nbdkit -f --exit-with-parent -e disk (-U SOCK | -i 127.0.0.1 -p PORT) file file=FILE',
      continuum:
        'node dist/storage/nbd/serve-raw-file.js --file FILE --name disk --io sync (--socket SOCK | --port PORT)',
      'continuum-threadpool': 'the same with --io threadpool',
      'continuum-nopoll': 'the same with --loop-poll-us 0 (continuum polls 50 us by default)',
    },
    versions: {
      node: process.version,
      fio: version('fio', ['--version']),
      'qemu-nbd': version('qemu-nbd', ['--version']),
      nbdkit: version('nbdkit', ['--version']),
    },
    cpus: Number(spawnSync('nproc').stdout.toString().trim()),
    idle: hostIdle(),
  };
}

function ratios(rows: NbdBenchRow[]): NbdRatio[] {
  const out: NbdRatio[] = [];
  for (const ours of rows.filter((row) => row.server === 'continuum')) {
    for (const peer of rows.filter(
      (row) =>
        row.transport === ours.transport && row.job === ours.job && row.server !== 'continuum',
    )) {
      const r = (a: number, b: number) => Math.round((a / b) * 100) / 100;
      out.push({
        transport: ours.transport,
        job: ours.job,
        peer: peer.server,
        iops: r(ours.median.iops, peer.median.iops),
        p50: r(ours.median.p50Us, peer.median.p50Us),
        p99: r(ours.median.p99Us, peer.median.p99Us),
        cpuPerIo: r(ours.median.cpuUsPerIo, peer.median.cpuUsPerIo),
      });
    }
  }
  return out;
}

export function parseNbdServers(text: string): ServerName[] {
  const known: readonly string[] = serverNames;
  const names = text.split(',').map((name) => name.trim()) as ServerName[];
  for (const name of names) {
    if (!known.includes(name))
      throw new RangeError(`--nbd-servers: unknown server ${name}; expected ${known.join(', ')}`);
  }
  if (!names.includes('continuum')) throw new RangeError('--nbd-servers: must include continuum');
  return names;
}

/** Standalone: node --import tsx bench/nbd.ts [--seconds S] [--rounds N] [--file-mib M] [--servers a,b]. */
async function main(): Promise<void> {
  const { parseArgs } = await import('node:util');
  const { saveResult } = await import('./restore.js');
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '5' },
      rounds: { type: 'string', default: '1' },
      'file-mib': { type: 'string', default: '1024' },
      servers: { type: 'string', default: 'continuum,qemu-nbd,nbdkit' },
      transports: { type: 'string', default: 'unix,tcp' },
      'cpu-prof-dir': { type: 'string' },
      jobs: { type: 'string' },
    },
  });
  const result = await benchNbd({
    seconds: Number(values.seconds),
    rounds: Number(values.rounds),
    fileMiB: Number(values['file-mib']),
    servers: parseNbdServers(values.servers),
    transports: values.transports.split(',') as ('unix' | 'tcp')[],
    cpuProfileDir: values['cpu-prof-dir'],
    jobs: values.jobs?.split(','),
  });
  process.stdout.write(formatNbdBench(result));
  process.stdout.write(`saved ${saveResult('nbd', result)}\n`);
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1])
  await main();
