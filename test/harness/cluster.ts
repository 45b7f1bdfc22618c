// A real cluster on loopback for integration tests: the compiled `continuum` CLI started as
// separate OS processes (controller, agents, redirector), each in its own process group, so that
// tests can kill, stop and resume them for real. close() ends every process group it started.
import { spawn, type ChildProcess } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { silentLogger } from '../../src/core/ports.js';
import { detachVolume, readAttachHandle } from '../../src/storage/attach/index.js';

export const repoRoot = resolve(import.meta.dirname, '..', '..');
export const cliPath = join(repoRoot, 'dist', 'cli', 'main.js');
export const demoServicePath = join(repoRoot, 'dist', 'demo', 'kv-service.js');

export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        resolvePort(typeof address === 'object' && address !== null ? address.port : 0),
      );
    });
  });
}

/** The end of a log file, headed by its path, for an error that says why a process failed. */
export function logEnd(file: string, chars = 4000): string {
  const text = existsSync(file) ? readFileSync(file, 'utf8').slice(-chars) : '(none)';
  return `--- ${file} (end):\n${text}`;
}

/** Polls check until it returns a value (not undefined/false) or the deadline passes. */
export async function waitFor<T>(
  what: string,
  timeoutMs: number,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  intervalMs = 25,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${lastError instanceof Error ? ` (last error: ${lastError.message})` : ''}`,
  );
}

export interface AgentSpec {
  name: string;
  role: 'production' | 'spare';
  /** More `continuum agent` flags (say `--fence-timeout-ms`). */
  args?: string[];
}

export interface TestClusterOptions {
  /** Keep state in this etcd and run `controllers` controllers that elect a leader there. */
  etcd?: { endpoints: string[]; controllers: number; leaderLeaseMs?: number };
  /**
   * The controllers' --down-after-ms: how long a node may go without a heartbeat before its
   * workloads fail over. Tests that restart an agent and expect it to re-attach raise it, so the
   * restart is not raced by a failover that the default (1.2 s) allows on a loaded machine.
   */
  downAfterMs?: number;
}

export class TestCluster {
  readonly dir: string;
  controllerPort = 0;
  /** With etcd: every controller's port, by index (controller, controller-2, ...). */
  readonly controllerPorts: number[] = [];
  private readonly groups = new Set<number>();
  private readonly children = new Map<string, ChildProcess>();
  /** The controller that last answered as leader (index into controllerPorts). */
  private leaderIndex = 0;

  constructor(readonly options: TestClusterOptions = {}) {
    this.dir = mkdtempSync(join(tmpdir(), 'continuum-test-'));
  }

  /** The leader's URL as far as the harness knows (the only controller's, without etcd). */
  get url(): string {
    if (this.options.etcd === undefined) return `http://127.0.0.1:${this.controllerPort}`;
    return this.urls[this.leaderIndex] ?? this.urls[0]!;
  }

  /** Every controller's URL, as agents and the redirector are given them. */
  get urls(): string[] {
    if (this.options.etcd === undefined) return [this.url];
    return this.controllerPorts.map((port) => `http://127.0.0.1:${port}`);
  }

  static controllerName(index: number): string {
    return index === 0 ? 'controller' : `controller-${index + 1}`;
  }

  get controllerDir(): string {
    return join(this.dir, 'controller');
  }

  nodeDir(name: string): string {
    return join(this.dir, 'nodes', name);
  }

  private spawnCli(name: string, args: string[], logFile: string): ChildProcess {
    const out = openSync(logFile, 'a');
    const child = spawn(process.execPath, [cliPath, ...args], {
      detached: true,
      stdio: ['ignore', out, out],
      env: { ...process.env, CONTINUUM_LOG_LEVEL: 'info' },
    });
    if (child.pid !== undefined) this.groups.add(child.pid);
    this.children.set(name, child);
    return child;
  }

  pidOf(name: string): number {
    const pid = this.children.get(name)?.pid;
    if (pid === undefined) throw new Error(`no process named ${name}`);
    return pid;
  }

  async startController(index = 0): Promise<void> {
    const etcd = this.options.etcd;
    if (etcd === undefined) {
      if (this.controllerPort === 0) this.controllerPort = await freePort();
    } else {
      while (this.controllerPorts.length < etcd.controllers)
        this.controllerPorts.push(await freePort());
    }
    const name = TestCluster.controllerName(index);
    const dir = index === 0 ? this.controllerDir : join(this.dir, name);
    const port = etcd === undefined ? this.controllerPort : this.controllerPorts[index]!;
    mkdirSync(dir, { recursive: true });
    this.spawnCli(
      name,
      [
        ...['controller', '--data-dir', dir, '--port', String(port)],
        ...(this.options.downAfterMs === undefined
          ? []
          : ['--down-after-ms', String(this.options.downAfterMs)]),
        ...(etcd === undefined
          ? []
          : [
              ...['--etcd', etcd.endpoints.join(','), '--name', name],
              ...['--leader-lease-ms', String(etcd.leaderLeaseMs ?? 2000)],
            ]),
      ],
      join(this.dir, `${name}.log`),
    );
    await waitFor(
      `${name} to answer`,
      15_000,
      async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok,
    );
  }

  /** Which controller leads now (by /healthz), once one does. */
  async leader(timeoutMs = 15_000): Promise<{ index: number; name: string; url: string }> {
    return waitFor('a controller to lead', timeoutMs, async () => {
      for (const [index, url] of this.urls.entries()) {
        const health = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) })
          .then((r) => r.json() as Promise<{ role?: string }>)
          .catch(() => undefined);
        if (health?.role === 'leader') {
          this.leaderIndex = index;
          return { index, name: TestCluster.controllerName(index), url };
        }
      }
      return undefined;
    });
  }

  async startAgent(agent: AgentSpec): Promise<void> {
    const dir = this.nodeDir(agent.name);
    mkdirSync(dir, { recursive: true });
    this.spawnCli(
      agent.name,
      [
        'agent',
        '--name',
        agent.name,
        '--role',
        agent.role,
        '--data-dir',
        dir,
        '--controller',
        this.urls.join(','),
        '--token-file',
        join(this.controllerDir, 'agent.token'),
        '--cpu',
        '2',
        '--memory-mib',
        '2048',
        ...(agent.args ?? []),
      ],
      join(dir, 'agent.log'),
    );
    // Up, and joined by this agent process (not still "up" from an agent that was just killed).
    const pid = this.pidOf(agent.name);
    let seen: unknown;
    await waitFor(`node ${agent.name} to be up with agent ${pid}`, 15_000, async () => {
      const node = (seen = await this.node(agent.name));
      return node?.state === 'up' && node.connected === true && node.inventory?.agentPid === pid;
    }).catch((error: Error) => {
      // A slow or failed join says why: what the controller saw last, and the node's own logs.
      const logs = ['agent.log', 'volume-server.log'].map((log) => logEnd(join(dir, log)));
      throw new Error(
        `${error.message}; the controller last saw ${JSON.stringify(seen)}\n${logs.join('\n')}`,
      );
    });
  }

  async startRedirector(): Promise<void> {
    const dir = join(this.dir, 'redirector');
    mkdirSync(dir, { recursive: true });
    this.spawnCli(
      'redirector',
      [
        'redirector',
        '--controller',
        this.urls.join(','),
        '--token-file',
        join(this.controllerDir, 'api.token'),
        '--cache-file',
        join(dir, 'routes.json'),
      ],
      join(dir, 'redirector.log'),
    );
    await new Promise((r) => setTimeout(r, 0));
  }

  /** Signals a daemon's whole process group (a node: agent, its shims and so its workloads). */
  signalGroup(name: string, signal: NodeJS.Signals): void {
    process.kill(-this.pidOf(name), signal);
  }

  /** Signals only the daemon's own process. */
  signalProcess(name: string, signal: NodeJS.Signals): void {
    process.kill(this.pidOf(name), signal);
  }

  async waitExit(name: string): Promise<void> {
    const child = this.children.get(name);
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise((r) => child.once('exit', r));
  }

  apiToken(): string {
    return readFileSync(join(this.controllerDir, 'api.token'), 'utf8').trim();
  }

  async api<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: T }> {
    const request = () =>
      fetch(`${this.url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.apiToken()}`,
          'content-type': 'application/json',
        },
        ...(body === undefined
          ? {}
          : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
      });
    let response: Response;
    try {
      response = await request();
    } catch (err) {
      if (this.options.etcd === undefined) throw err;
      await this.leader();
      response = await request();
    }
    // A follower answers reads without what only the leader knows (sessions): ask the leader.
    if (
      this.options.etcd !== undefined &&
      response.headers.get('x-continuum-role') === 'follower'
    ) {
      await response.text();
      await this.leader();
      response = await request();
    }
    const text = await response.text();
    return { status: response.status, body: (text === '' ? undefined : JSON.parse(text)) as T };
  }

  async node(name: string): Promise<NodeInfo | undefined> {
    const { status, body } = await this.api<NodeInfo>('GET', `/v1/nodes/${name}`);
    return status === 200 ? body : undefined;
  }

  async workload(name: string): Promise<WorkloadInfo> {
    const { status, body } = await this.api<WorkloadInfo>('GET', `/v1/workloads/${name}`);
    if (status !== 200) throw new Error(`GET workload ${name}: HTTP ${status}`);
    return body;
  }

  async events(kind?: string): Promise<
    {
      seq: number;
      at: number;
      kind: string;
      message: string;
      data?: Record<string, unknown>;
      subject: { name: string };
    }[]
  > {
    const { body } = await this.api<{ items: never[] }>(
      'GET',
      `/v1/events?limit=10000${kind ? `&kind=${kind}` : ''}`,
    );
    return body.items;
  }

  async close(): Promise<void> {
    for (const pgid of this.groups) {
      try {
        process.kill(-pgid, 'SIGCONT');
        process.kill(-pgid, 'SIGKILL');
      } catch {
        // The group is already gone.
      }
    }
    await Promise.all(
      [...this.children.values()].map((c) =>
        c.exitCode !== null || c.signalCode !== null
          ? Promise.resolve()
          : new Promise((r) => c.once('exit', r)),
      ),
    );
    // Workloads die with their shims (parent-death signal); wait until none is left before removing files.
    await waitFor(
      'workloads of this cluster to end',
      10_000,
      () => workloadPids(this.dir).length === 0,
    ).catch(() => {
      for (const pid of workloadPids(this.dir)) process.kill(pid, 'SIGKILL');
    });
    // Volumes an agent left mounted when it was killed: unmount them before removing the files.
    for (const runDir of attachDirs(this.dir)) {
      const handle = readAttachHandle(runDir);
      if (handle !== null) await detachVolume(handle, { log: silentLogger });
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** <dir>/nodes/<node>/run/attach/<workload>/<volume>: where agents keep their attach handles. */
function attachDirs(dir: string): string[] {
  const found: string[] = [];
  const list = (path: string) => {
    try {
      return readdirSync(path);
    } catch {
      return [];
    }
  };
  for (const node of list(join(dir, 'nodes'))) {
    const attach = join(dir, 'nodes', node, 'run', 'attach');
    for (const workload of list(attach))
      for (const volume of list(join(attach, workload))) found.push(join(attach, workload, volume));
  }
  return found;
}

export interface NodeInfo {
  name: string;
  state: string;
  connected?: boolean;
  inventory?: { agentPid: number };
}

export interface WorkloadInfo {
  name: string;
  phase: string;
  node: string | null;
  epoch: number;
  instance?: { state: string; pid?: number; epoch: number; restarts: number; node: string };
}

/** PIDs of live workload processes started under this cluster's directory (their cwd is in it). */
export function workloadPids(dir: string): number[] {
  return scanWorkloads()
    .filter((p) => p.cwd.startsWith(dir))
    .map((p) => p.pid);
}

export interface WorkloadProcess {
  pid: number;
  workload: string;
  epoch: number;
  node: string;
  cwd: string;
}

/** Live processes that Continuum started as workloads, read from /proc (what really runs). */
export function scanWorkloads(): WorkloadProcess[] {
  const found: WorkloadProcess[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return found;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const environ = readFileSync(`/proc/${entry}/environ`, 'latin1').split('\0');
      const get = (k: string) => environ.find((e) => e.startsWith(`${k}=`))?.slice(k.length + 1);
      const workload = get('CONTINUUM_WORKLOAD');
      if (workload === undefined) continue;
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      if (/\) [ZX] /.test(stat)) continue;
      found.push({
        pid: Number(entry),
        workload,
        epoch: Number(get('CONTINUUM_EPOCH')),
        node: get('CONTINUUM_NODE') ?? '',
        cwd: readlinkSafe(`/proc/${entry}/cwd`),
      });
    } catch {
      // The process ended while we looked.
    }
  }
  return found;
}

function readlinkSafe(path: string): string {
  try {
    return readlinkSync(path);
  } catch {
    return '';
  }
}
