// A multi-host cluster on network namespaces (test/hosts): every host runs an etcd member, a
// controller (the controllers elect a leader over that etcd) and an agent, as a real deployment of
// three machines would; a client namespace runs the redirector. The test process lives in the root
// namespace, which has no route to the hosts, so it talks to them through forwarders in the client
// namespace listening on Unix sockets (a socket file is reachable from every namespace).
import { spawnSync, type ChildProcess } from 'node:child_process';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { readAttachHandle } from '../../src/storage/attach/index.js';
import { etcdMissingReason } from '../../src/store/etcd-process.js';
import { createHosts, hostsMissingReason, type Host, type Hosts } from '../hosts/hosts.js';
import { demoSpec } from '../../src/cli/demo-spec.js';
import { cliPath, demoServicePath, waitFor } from './cluster.js';

export const apiPort = 7400;
const etcdClientPort = 2379;
const etcdPeerPort = 2380;
const replicationPort = 7410;

/** Why these tests cannot run here, or undefined. */
export function nsClusterMissingReason(): string | undefined {
  return hostsMissingReason() ?? etcdMissingReason();
}

export interface NsClusterOptions {
  /** Hosts, each with an etcd member, a controller and an agent (default 3). */
  hosts?: number;
  leaderLeaseMs?: number;
  fenceTimeoutMs?: number;
  /** Start of the namespaces' names (default mh). */
  name?: string;
  /**
   * Hosts that run only an etcd member and a controller, the first ones; the others run only an
   * agent. Default 0: every host runs all three.
   */
  controlHosts?: number;
}

export interface Reply<T> {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: T;
}

/** An HTTP request over a forwarder's Unix socket. */
export function unixRequest<T = unknown>(
  socketPath: string,
  method: string,
  path: string,
  options: { headers?: Record<string, string>; body?: string; timeoutMs?: number } = {},
): Promise<Reply<T>> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath,
        method,
        path,
        headers: {
          host: 'continuum',
          ...options.headers,
          ...(options.body === undefined
            ? {}
            : { 'content-length': Buffer.byteLength(options.body) }),
        },
        timeout: options.timeoutMs ?? 3000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = text;
          try {
            body = text === '' ? undefined : JSON.parse(text);
          } catch {
            // Not JSON: keep the text.
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: body as T });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in time`)));
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Accepts on a Unix socket and relays each connection to host:port (run inside a namespace). */
const forwarderScript = `
const net = require('node:net');
const [socketPath, host, port] = process.argv.slice(1);
try { require('node:fs').unlinkSync(socketPath); } catch {}
net.createServer((client) => {
  const upstream = net.connect(Number(port), host);
  client.pipe(upstream); upstream.pipe(client);
  client.on('error', () => upstream.destroy()); upstream.on('error', () => client.destroy());
  client.on('close', () => upstream.destroy()); upstream.on('close', () => client.destroy());
}).listen(socketPath);
`;

export class NsCluster {
  readonly dir: string;
  private leaderIndex = 0;
  /** The daemons by name (etcd-h0, ctl-h1, agent-h2...), the latest of each. */
  private readonly daemons = new Map<string, ChildProcess>();

  private constructor(
    readonly hosts: Hosts,
    readonly client: Host,
    readonly options: Required<NsClusterOptions>,
  ) {
    this.dir = mkdtempSync(join(tmpdir(), 'continuum-ns-'));
  }

  static async start(options: NsClusterOptions = {}): Promise<NsCluster> {
    const settings = {
      hosts: options.hosts ?? 3,
      leaderLeaseMs: options.leaderLeaseMs ?? 2000,
      fenceTimeoutMs: options.fenceTimeoutMs ?? 3000,
      name: options.name ?? 'mh',
      controlHosts: options.controlHosts ?? 0,
    };
    const hosts = await createHosts({ count: settings.hosts, name: settings.name });
    let cluster: NsCluster | undefined;
    try {
      const client = await hosts.addClient();
      cluster = new NsCluster(hosts, client, settings);
      await cluster.boot();
      return cluster;
    } catch (err) {
      if (cluster !== undefined) await cluster.close();
      else await hosts.cleanup();
      throw err;
    }
  }

  get members(): Host[] {
    return this.hosts.hosts;
  }

  /** The hosts with an etcd member and a controller. */
  get controlMembers(): Host[] {
    const k = this.options.controlHosts;
    return k === 0 ? this.members : this.members.slice(0, k);
  }

  /** The hosts with an agent (nodes of the cluster). */
  get nodeMembers(): Host[] {
    const k = this.options.controlHosts;
    return k === 0 ? this.members : this.members.slice(k);
  }

  nodeName(host: Host): string {
    return host.name;
  }

  controllerName(host: Host): string {
    return `ctl-${host.name}`;
  }

  controllerUrl(host: Host): string {
    return `http://${host.ip}:${apiPort}`;
  }

  get controllerUrls(): string[] {
    return this.controlMembers.map((h) => this.controllerUrl(h));
  }

  private socket(name: string): string {
    return join(this.dir, `${name}.sock`);
  }

  controllerSocket(host: Host): string {
    return this.socket(`ctl-${host.name}`);
  }

  get endpointSocket(): string {
    return this.socket('endpoint');
  }

  private logFile(name: string): number {
    return openSync(join(this.dir, `${name}.log`), 'a');
  }

  private spawnOn(host: Host, name: string, argv: string[]): ChildProcess {
    const out = this.logFile(name);
    const child = host.spawn(argv, {
      stdio: ['ignore', out, out],
      env: { ...process.env, CONTINUUM_LOG_LEVEL: 'info' },
    });
    this.daemons.set(name, child);
    return child;
  }

  /** Signals one daemon by name and, for SIGKILL, waits until it has exited. */
  async signal(name: string, signal: NodeJS.Signals): Promise<void> {
    const child = this.daemons.get(name);
    if (child?.pid === undefined) throw new Error(`no daemon named ${name}`);
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    if (signal === 'SIGKILL') await exited;
  }

  /**
   * Relays a Unix socket in the test's directory to host:port, from the client namespace or from
   * another one (to reach a host's own controller while a partition cuts it off from the client).
   */
  forward(name: string, host: string, port: number, from: Host = this.client): string {
    const socketPath = this.socket(name);
    from.spawn([process.execPath, '-e', forwarderScript, socketPath, host, String(port)]);
    return socketPath;
  }

  /** A socket to a host's own controller, relayed inside that host (unaffected by partitions). */
  async localControllerSocket(host: Host): Promise<string> {
    const socketPath = this.forward(`local-${host.name}`, host.ip, apiPort, host);
    await waitFor(
      'the local forwarder',
      5000,
      async () => (await this.healthAt(socketPath)) !== undefined,
      25,
    );
    return socketPath;
  }

  private async boot(): Promise<void> {
    const cluster = this.controlMembers
      .map((h) => `e-${h.name}=http://${h.ip}:${etcdPeerPort}`)
      .join(',');
    for (const host of this.controlMembers) {
      const url = (port: number) => `http://${host.ip}:${port}`;
      const dataDir = join(this.dir, `etcd-${host.name}`);
      mkdirSync(dataDir, { recursive: true });
      this.spawnOn(host, `etcd-${host.name}`, [
        ...['etcd', '--name', `e-${host.name}`, '--data-dir', dataDir],
        ...['--listen-client-urls', url(etcdClientPort)],
        ...['--advertise-client-urls', url(etcdClientPort)],
        ...['--listen-peer-urls', url(etcdPeerPort)],
        ...['--initial-advertise-peer-urls', url(etcdPeerPort)],
        ...['--initial-cluster', cluster, '--initial-cluster-state', 'new'],
        ...['--initial-cluster-token', this.hosts.tag],
        // Faster than etcd's defaults, as issue 6 measured: a lost etcd leader is replaced in
        // about 0.5 s instead of about 1.5 s.
        ...['--heartbeat-interval', '50', '--election-timeout', '500'],
        ...['--logger', 'zap', '--log-level', 'warn'],
      ]);
    }
    const etcdUrls = this.etcdUrls();
    for (const host of this.controlMembers) this.forward(`ctl-${host.name}`, host.ip, apiPort);
    for (const host of this.controlMembers) await this.startController(host, etcdUrls);
    await this.leader();
    for (const host of this.nodeMembers) await this.startAgent(host);
  }

  private etcdUrls(): string {
    return this.controlMembers.map((h) => `http://${h.ip}:${etcdClientPort}`).join(',');
  }

  controllerDir(host: Host): string {
    return join(this.dir, `ctl-${host.name}`);
  }

  async startController(host: Host, etcdUrls = this.etcdUrls()): Promise<void> {
    mkdirSync(this.controllerDir(host), { recursive: true });
    this.spawnOn(host, this.controllerName(host), [
      ...[process.execPath, cliPath, 'controller', '--host', host.ip, '--port', String(apiPort)],
      ...['--etcd', etcdUrls, '--name', this.controllerName(host)],
      ...['--data-dir', this.controllerDir(host)],
      ...['--leader-lease-ms', String(this.options.leaderLeaseMs)],
    ]);
    await waitFor(
      `${this.controllerName(host)} to answer`,
      30_000,
      async () =>
        (await unixRequest(this.controllerSocket(host), 'GET', '/healthz')).status === 200,
      50,
    );
  }

  async startAgent(host: Host): Promise<void> {
    const dir = join(this.dir, `node-${host.name}`);
    mkdirSync(dir, { recursive: true });
    this.spawnOn(host, `agent-${host.name}`, [
      ...[process.execPath, cliPath, 'agent', '--name', host.name, '--address', host.ip],
      ...['--controller', this.controllerUrls.join(',')],
      ...['--token-file', join(this.controllerDir(this.controlMembers[0]!), 'agent.token')],
      ...['--data-dir', dir, '--cpu', '2', '--memory-mib', '2048'],
      ...['--replication-listen', `${host.ip}:${replicationPort}`],
      ...['--fence-timeout-ms', String(this.options.fenceTimeoutMs)],
    ]);
    await waitFor(`node ${host.name} to be up`, 30_000, async () => {
      const node = await this.api<{ state: string; connected: boolean }>(
        'GET',
        `/v1/nodes/${host.name}`,
      );
      return node.status === 200 && node.body.state === 'up' && node.body.connected;
    });
  }

  /** The redirector in the client namespace, listening on 127.0.0.1:port there, and its socket. */
  startRedirector(port: number): string {
    const dir = join(this.dir, 'redirector');
    mkdirSync(dir, { recursive: true });
    const out = this.logFile('redirector');
    this.client.spawn(
      [
        ...[process.execPath, cliPath, 'redirector', '--controller', this.controllerUrls.join(',')],
        ...['--token-file', join(this.controllerDir(this.controlMembers[0]!), 'api.token')],
        ...['--cache-file', join(dir, 'routes.json')],
      ],
      { stdio: ['ignore', out, out], env: { ...process.env, CONTINUUM_LOG_LEVEL: 'info' } },
    );
    return this.forward('endpoint', '127.0.0.1', port);
  }

  apiToken(): string {
    return readFileSync(
      join(this.controllerDir(this.controlMembers[0]!), 'api.token'),
      'utf8',
    ).trim();
  }

  /** The leading controller's host (by /healthz through the forwarders), once one leads. */
  async leader(timeoutMs = 30_000, among: Host[] = this.controlMembers): Promise<Host> {
    return waitFor(
      'a controller to lead',
      timeoutMs,
      async () => {
        for (const host of among) {
          const health = await this.health(host);
          if (health?.role === 'leader') {
            this.leaderIndex = this.controlMembers.indexOf(host);
            return host;
          }
        }
        return undefined;
      },
      25,
    );
  }

  health(host: Host): Promise<{ role: string; leader?: string } | undefined> {
    return this.healthAt(this.controllerSocket(host));
  }

  async healthAt(socketPath: string): Promise<{ role: string; leader?: string } | undefined> {
    try {
      const reply = await unixRequest<{ role: string; leader?: string }>(
        socketPath,
        'GET',
        '/healthz',
        { timeoutMs: 1000 },
      );
      return reply.status === 200 ? reply.body : undefined;
    } catch {
      return undefined;
    }
  }

  /** A call to the leader's API (found again when the last one known stops answering). */
  async api<T = unknown>(method: string, path: string, body?: unknown): Promise<Reply<T>> {
    const call = () =>
      unixRequest<T>(this.controllerSocket(this.controlMembers[this.leaderIndex]!), method, path, {
        headers: {
          authorization: `Bearer ${this.apiToken()}`,
          'content-type': 'application/json',
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    let reply: Reply<T> | undefined;
    try {
      reply = await call();
    } catch {
      reply = undefined;
    }
    if (
      reply === undefined ||
      reply.status === 503 ||
      reply.headers['x-continuum-role'] === 'follower'
    ) {
      await this.leader();
      reply = await call();
    }
    return reply;
  }

  async workload(
    name: string,
  ): Promise<{ epoch: number; node: string | null; phase: string; instance?: { pid?: number } }> {
    const reply = await this.api<{
      epoch: number;
      node: string | null;
      phase: string;
      instance?: { pid?: number };
    }>('GET', `/v1/workloads/${name}`);
    if (reply.status !== 200) throw new Error(`GET workload ${name}: HTTP ${reply.status}`);
    return reply.body;
  }

  async events(
    kind?: string,
  ): Promise<
    { seq: number; at: number; kind: string; message: string; subject: { name: string } }[]
  > {
    const reply = await this.api<{ items: never[] }>(
      'GET',
      `/v1/events?limit=10000${kind === undefined ? '' : `&kind=${kind}`}`,
    );
    return reply.body.items;
  }

  hostOf(node: string | null): Host {
    const host = this.members.find((h) => h.name === node);
    if (host === undefined) throw new Error(`no host for node ${String(node)}`);
    return host;
  }

  /** The log of one daemon (etcd-h0, ctl-h1, agent-h2, redirector), for assertions and failures. */
  log(name: string): string {
    try {
      return readFileSync(join(this.dir, `${name}.log`), 'utf8');
    } catch {
      return '';
    }
  }

  async close(): Promise<void> {
    await this.hosts.cleanup();
    // Volumes were attached inside the hosts' mount namespaces, which died with their processes;
    // their loop devices are the machine's and outlive them. Each agent's attach handle names its
    // device; one still backed by that image file (shown by its base name, its mount being gone)
    // is detached.
    const attached = new Map<string, string>();
    const loops = spawnSync(
      'losetup',
      ['--list', '--noheadings', '--raw', '-O', 'NAME,BACK-FILE'],
      {
        encoding: 'utf8',
      },
    );
    for (const line of (loops.stdout ?? '').split('\n')) {
      const [device, backing] = line.trim().split(/\s+/, 2);
      if (device !== undefined && backing !== undefined) attached.set(device, backing);
    }
    for (const runDir of attachRunDirs(this.dir)) {
      const handle = readAttachHandle(runDir);
      const device = handle?.loopDevice;
      if (device === undefined || handle === null) continue;
      const backing = attached.get(device);
      if (backing !== undefined && handle.imagePath?.endsWith(basename(backing)) === true)
        spawnSync('losetup', ['-d', device], { stdio: 'ignore' });
    }
    // CONTINUUM_TEST_LOGS=<dir> keeps the daemons' logs of the run for a person to read.
    const keep = process.env.CONTINUUM_TEST_LOGS;
    if (keep !== undefined && keep !== '') {
      const target = join(keep, this.hosts.tag);
      mkdirSync(target, { recursive: true });
      for (const file of readdirSync(this.dir).filter((f) => f.endsWith('.log')))
        copyFileSync(join(this.dir, file), join(target, file));
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * The demo on these nodes (the last a spare), the kv service listening on every address (the
 * redirector in the client namespace reaches it at its node's address).
 */
export function multihostDemoSpec(nodeNames: string[], endpointPort: number) {
  const demo = demoSpec({ endpointPort, servicePath: demoServicePath });
  const kv = demo.workloads![0]!;
  return {
    ...demo,
    sites: [{ name: 'lab' }],
    nodes: nodeNames.map((name, i) => ({
      name,
      site: 'lab',
      role: i === nodeNames.length - 1 ? ('spare' as const) : ('production' as const),
      capacity: { cpu: 2, memoryMiB: 2048 },
    })),
    workloads: [{ ...kv, process: { ...kv.process!, env: { HOST: '0.0.0.0' } } }],
  };
}

/** <dir>/node-<host>/run/attach/<workload>/<volume>: where each agent keeps its attach handles. */
function attachRunDirs(dir: string): string[] {
  const list = (path: string) => {
    try {
      return readdirSync(path);
    } catch {
      return [];
    }
  };
  const found: string[] = [];
  for (const node of list(dir).filter((d) => d.startsWith('node-'))) {
    const attach = join(dir, node, 'run', 'attach');
    for (const workload of list(attach))
      for (const volume of list(join(attach, workload))) found.push(join(attach, workload, volume));
  }
  return found;
}
