// Probe overhead (issue 8 "Measure"): CPU and memory of one agent running --probe-instances
// instances (default 100) with three probes each at 1 s intervals (an HTTP GET of /health, a TCP
// connect to the instance, a TCP dependency on a server of the bench), against the same agent and
// instances without probes, and against HAProxy running the same 300 health checks a second
// (httpchk and tcp checks at inter 1s) in the same run: HAProxy's health checks are what people
// otherwise use to watch many services from one host.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { demoServicePath, freePort, TestCluster, waitFor } from '../test/harness/cluster.js';

export interface ProbesBenchOptions {
  instances: number;
  /** Length of each CPU measurement. */
  seconds: number;
}

export interface ProcessUsage {
  /** Percent of one core over the measurement. */
  cpuPercent: number;
  rssMiB: number;
}

export type ProbesBench =
  | { skipped: string }
  | {
      instances: number;
      probesPerInstance: number;
      checksPerSecond: number;
      seconds: number;
      agentWithoutProbes: ProcessUsage;
      agentWithProbes: ProcessUsage;
      /** CPU the probes cost the agent, per check, in microseconds. */
      agentCpuMicrosPerCheck: number;
      agentRssOverheadMiB: number;
      haproxy: ProcessUsage;
      haproxyCpuMicrosPerCheck: number;
      /** Ours per check over HAProxy's per check (lower is better). */
      cpuPerCheckRatio: number;
    };

const clockTicksPerSecond = 100;
const probesPerInstance = 3;

function cpuSeconds(pid: number): number {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / clockTicksPerSecond;
}

function rssMiB(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match === null ? NaN : Math.round(Number(match[1]) / 1024);
}

/** CPU of one process over `seconds`, measured from /proc (the bench waits the time out). */
async function measure(pid: number, seconds: number): Promise<ProcessUsage> {
  const before = cpuSeconds(pid);
  const startedAt = performance.now();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  const elapsed = (performance.now() - startedAt) / 1000;
  const used = cpuSeconds(pid) - before;
  return { cpuPercent: Math.round((1000 * used) / elapsed) / 10, rssMiB: rssMiB(pid) };
}

function spec(instances: number, portBase: number, probes: (i: number) => unknown[]) {
  return {
    apiVersion: 'continuum/v1',
    sites: [{ name: 'local' }],
    nodes: [{ name: 'node-1', site: 'local', capacity: { cpu: 64, memoryMiB: 262_144 } }],
    workloads: Array.from({ length: instances }, (_, i) => ({
      name: `w-${i}`,
      driver: 'process',
      process: { command: [process.execPath, demoServicePath], stopGraceMs: 2000 },
      endpoints: [{ name: 'http', port: portBase + i }],
      probes: probes(i),
    })),
  };
}

type Instance = { name: string; port: number };

async function instances(cluster: TestCluster, count: number): Promise<Instance[]> {
  return waitFor(`${count} instances active`, 300_000, async () => {
    const { body } = await cluster.api<{
      items: { name: string; phase: string; instance?: { ports: Record<string, number> } }[];
    }>('GET', '/v1/workloads');
    const active = body.items.filter((w) => w.phase === 'active' && w.instance?.ports.http);
    if (active.length < count) return undefined;
    return active.map((w) => ({ name: w.name, port: w.instance!.ports.http! }));
  });
}

function haproxyConfig(targets: Instance[], dependencyPort: number, listenPort: number): string {
  const lines = [
    'global',
    '  maxconn 4096',
    'defaults',
    '  mode tcp',
    '  timeout connect 1s',
    '  timeout client 5s',
    '  timeout server 5s',
    // HAProxy will not start without a listener; nothing connects to this one.
    'frontend idle',
    `  bind 127.0.0.1:${listenPort}`,
    '  default_backend tcp-0',
  ];
  targets.forEach((t, i) => {
    lines.push(`backend http-${i}`, '  mode http', '  option httpchk GET /health');
    lines.push(`  server s 127.0.0.1:${t.port} check inter 1s`);
    lines.push(`backend tcp-${i}`, `  server s 127.0.0.1:${t.port} check inter 1s`);
    lines.push(`backend dep-${i}`, `  server s 127.0.0.1:${dependencyPort} check inter 1s`);
  });
  return `${lines.join('\n')}\n`;
}

export async function benchProbes(options: ProbesBenchOptions): Promise<ProbesBench> {
  if (spawnSync('sh', ['-c', 'command -v haproxy']).status !== 0)
    return { skipped: 'haproxy is not installed (apt-get install haproxy)' };
  const dependency: Server = createServer((socket) => socket.end());
  const dependencyPort = await freePort();
  await new Promise<void>((resolve) => dependency.listen(dependencyPort, '127.0.0.1', resolve));
  const cluster = new TestCluster();
  let haproxy: ChildProcess | undefined;
  try {
    await cluster.startController();
    const portBase = 21_000;
    const withoutProbes = spec(options.instances, portBase, () => []);
    const withProbes = spec(options.instances, portBase, () => [
      { name: 'health', type: 'http', endpoint: 'http', path: '/health', intervalMs: 1000 },
      { name: 'port', type: 'tcp', endpoint: 'http', intervalMs: 1000 },
      { name: 'db', type: 'dependency', tcp: `127.0.0.1:${dependencyPort}`, intervalMs: 1000 },
    ]);
    const apply = async (body: unknown) => {
      const applied = await cluster.api('POST', '/v1/apply', body);
      if (applied.status !== 200) throw new Error(`apply: ${JSON.stringify(applied.body)}`);
    };
    await apply(withoutProbes);
    await cluster.startAgent({ name: 'node-1', role: 'production' });
    const agentPid = cluster.pidOf('node-1');
    await instances(cluster, options.instances);
    const agentWithoutProbes = await measure(agentPid, options.seconds);
    await apply(withProbes);
    await instances(cluster, options.instances);
    const agentWithProbes = await measure(agentPid, options.seconds);
    await apply(withoutProbes);
    const targets = await instances(cluster, options.instances);
    const configFile = join(cluster.dir, 'haproxy.cfg');
    writeFileSync(configFile, haproxyConfig(targets, dependencyPort, await freePort()));
    haproxy = spawn('haproxy', ['-db', '-f', configFile], { stdio: 'ignore' });
    const haproxyPid = haproxy.pid!;
    await new Promise((resolve) => setTimeout(resolve, 3000)); // Its first round of checks.
    const haproxyUsage = await measure(haproxyPid, options.seconds);
    const checksPerSecond = options.instances * probesPerInstance;
    const micros = (percent: number) =>
      Math.round((percent / 100 / checksPerSecond) * 1e6 * 10) / 10;
    const agentCpuMicrosPerCheck = micros(
      agentWithProbes.cpuPercent - agentWithoutProbes.cpuPercent,
    );
    const haproxyCpuMicrosPerCheck = micros(haproxyUsage.cpuPercent);
    return {
      instances: options.instances,
      probesPerInstance,
      checksPerSecond,
      seconds: options.seconds,
      agentWithoutProbes,
      agentWithProbes,
      agentCpuMicrosPerCheck,
      agentRssOverheadMiB: agentWithProbes.rssMiB - agentWithoutProbes.rssMiB,
      haproxy: haproxyUsage,
      haproxyCpuMicrosPerCheck,
      cpuPerCheckRatio: Math.round((agentCpuMicrosPerCheck / haproxyCpuMicrosPerCheck) * 100) / 100,
    };
  } finally {
    if (haproxy?.pid !== undefined && haproxy.exitCode === null) haproxy.kill('SIGKILL');
    await cluster.close();
    await new Promise((resolve) => dependency.close(resolve));
  }
}

export function formatProbesBench(result: ProbesBench): string {
  if ('skipped' in result) return `probes: skipped (${result.skipped})\n`;
  return [
    `probes: ${result.instances} instances x ${result.probesPerInstance} probes at 1 s (${result.checksPerSecond} checks/s), ${result.seconds} s each`,
    `  agent without probes: ${result.agentWithoutProbes.cpuPercent}% of a core, ${result.agentWithoutProbes.rssMiB} MiB`,
    `  agent with probes:    ${result.agentWithProbes.cpuPercent}% of a core, ${result.agentWithProbes.rssMiB} MiB`,
    `  per check: ${result.agentCpuMicrosPerCheck} us of CPU (HAProxy ${result.haproxyCpuMicrosPerCheck} us, ${result.haproxy.cpuPercent}% of a core); ratio ${result.cpuPerCheckRatio}`,
    '',
  ].join('\n');
}

// Runs alone: `node --import tsx bench/probes.ts [--instances 100] [--seconds 30]`.
if (process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  const { parseArgs } = await import('node:util');
  const { values } = parseArgs({
    options: {
      instances: { type: 'string', default: '100' },
      seconds: { type: 'string', default: '30' },
    },
  });
  const result = await benchProbes({
    instances: Number(values.instances),
    seconds: Number(values.seconds),
  });
  process.stdout.write(formatProbesBench(result));
}
