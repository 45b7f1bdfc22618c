// Hosts for tests and benchmarks as network namespaces on one virtual switch. A run gets a
// "switch" namespace holding a bridge (br0), and one namespace per host with a veth (eth0 inside
// the host, p<index> on the bridge), loopback up and an address: host i of the subnet gets
// network + 10 + i, clients continue after the hosts. Nothing is created in the root namespace, so
// a run cannot disturb the machine's interfaces and any subnet is free to use; runs of parallel
// test files differ by name: namespaces are called <prefix>-<pid>-<n>-<host>, where n counts
// the runs of that prefix in this process, and the switch's is <prefix>-<pid>-<n>-sw.
//
//   [h0 eth0]--p0--+
//   [h1 eth0]--p1--+ br0 (switch namespace)
//   [client eth0]--p2--+
//
// cleanup() ends the processes by PID, removes the filter tables, the ports, the bridge and the
// namespaces; it is idempotent, runs after a failed createHosts, and a process 'exit' handler
// runs it for runs a test forgot.
import { type ChildProcess, spawnSync } from 'node:child_process';
import { Host, namespacePids, runCommand, signalPid } from './host.js';

export { Host } from './host.js';
export type { HostSignal, HostSpawnOptions, KillOptions, RunOptions } from './host.js';

export interface HostsOptions {
  /** Workload hosts, named h0 .. h(count-1). */
  count: number;
  /** Start of every namespace name of the run: a lower-case letter, then letters or digits. */
  name?: string;
  /** The IPv4 network of the switch, prefix length 8 to 24; default 10.77.0.0/24. */
  subnet?: string;
}

export const subnetDefault = '10.77.0.0/24';
/** Hosts and clients in one run. */
export const hostsMax = 200;
/** The number within the subnet of the first host; those below are free for VIPs and the like. */
export const firstHostNumber = 10;
/** Longest prefix and host name: keeps namespace names short and readable. */
const namePattern = /^[a-z][a-z0-9]{0,11}$/;
const exitedWaitMs = 5_000;

interface Subnet {
  network: number;
  prefixLength: number;
}

function parseSubnet(text: string): Subnet {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(text);
  const octets = match?.slice(1, 5).map(Number) ?? [];
  const prefixLength = Number(match?.[5]);
  if (match === null || octets.some((o) => o > 255) || prefixLength < 8 || prefixLength > 24)
    throw new RangeError(`subnet: expected an IPv4 network a.b.c.d/8..24, got "${text}"`);
  const address = octets.reduce((sum, octet) => sum * 256 + octet, 0);
  const size = 2 ** (32 - prefixLength);
  return { network: address - (address % size), prefixLength };
}

function formatAddress(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

const runCounters = new Map<string, number>();
const live = new Set<Hosts>();
let exitHandlerInstalled = false;

function ipSync(args: readonly string[]): void {
  spawnSync('ip', args, { stdio: 'ignore' });
}

function exited(child: ChildProcess, timeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

export class Hosts {
  /** <prefix>-<pid>-<n>: the start of every namespace name of this run. */
  readonly tag: string;
  readonly switchNs: string;
  /** The workload hosts, h0 .. h(count-1). */
  readonly hosts: Host[] = [];
  /** Hosts without workload, added by addClient. */
  readonly clients: Host[] = [];
  /** Namespaces and switch ports that exist, in the order they were created. */
  private readonly namespaces: string[] = [];
  private readonly ports: string[] = [];
  private bridgeCreated = false;
  private hostCount = 0;

  private constructor(
    prefix: string,
    private readonly subnet: Subnet,
  ) {
    const run = (runCounters.get(prefix) ?? 0) + 1;
    runCounters.set(prefix, run);
    this.tag = `${prefix}-${process.pid}-${run}`;
    this.switchNs = `${this.tag}-sw`;
  }

  /** Creates the switch and `count` hosts; on failure removes what it made, then throws. */
  static async create(options: HostsOptions): Promise<Hosts> {
    const { count } = options;
    if (!Number.isInteger(count) || count < 1 || count > hostsMax)
      throw new RangeError(`count: expected a whole number from 1 to ${hostsMax}, got ${count}`);
    const prefix = options.name ?? 'ct';
    if (!namePattern.test(prefix))
      throw new RangeError(`name: expected [a-z][a-z0-9]{0,11}, got "${prefix}"`);
    const subnet = parseSubnet(options.subnet ?? subnetDefault);
    const hosts = new Hosts(prefix, subnet);
    // Throws when the subnet has no room for the last host.
    hosts.address(firstHostNumber + count - 1);
    live.add(hosts);
    if (!exitHandlerInstalled) {
      // A safety net for runs whose test did not clean up: exit handlers must be synchronous.
      process.on('exit', () => [...live].forEach((run) => run.cleanupSync()));
      exitHandlerInstalled = true;
    }
    try {
      await hosts.createSwitch();
      for (let i = 0; i < count; i++) hosts.hosts.push(await hosts.addHost(`h${i}`));
    } catch (error) {
      await hosts.cleanup();
      throw error;
    }
    return hosts;
  }

  /** Hosts, then clients. */
  get all(): Host[] {
    return [...this.hosts, ...this.clients];
  }

  /** Address number `hostNumber` of the subnet (for a VIP, a number below firstHostNumber). */
  address(hostNumber: number): string {
    const size = 2 ** (32 - this.subnet.prefixLength);
    if (!Number.isInteger(hostNumber) || hostNumber < 1 || hostNumber > size - 2)
      throw new RangeError(
        `address: ${hostNumber} is outside the /${this.subnet.prefixLength} subnet (1 to ${size - 2})`,
      );
    return formatAddress(this.subnet.network + hostNumber);
  }

  get prefixLength(): number {
    return this.subnet.prefixLength;
  }

  /** A further namespace on the switch, for a client that runs no workload. */
  async addClient(name = 'client'): Promise<Host> {
    const client = await this.addHost(name);
    this.clients.push(client);
    return client;
  }

  /** Every host of A drops packets to and from every host of B, and the other way round. */
  async partition(groupA: readonly Host[], groupB: readonly Host[]): Promise<void> {
    await Promise.all([
      ...groupA.map((host) => host.dropFrom(groupB)),
      ...groupB.map((host) => host.dropFrom(groupA)),
    ]);
  }

  /** Removes every drop rule on every host. */
  async heal(): Promise<void> {
    await Promise.all(this.all.map((host) => host.allowAll()));
  }

  /** Ends everything of the run and waits (bounded) for the spawned processes to exit. */
  async cleanup(): Promise<void> {
    const children = this.all.flatMap((host) => host.children);
    this.cleanupSync();
    await Promise.all(children.map((child) => exited(child, exitedWaitMs)));
  }

  /** cleanup() without the wait, for the process 'exit' handler. */
  cleanupSync(): void {
    live.delete(this);
    for (const host of this.all) host.cleanupSync();
    // A host whose setup failed half-way has no Host object, but may have processes all the same.
    for (const ns of this.namespaces) namespacePids(ns).forEach((pid) => signalPid(pid, 'SIGKILL'));
    for (const port of this.ports.splice(0)) ipSync(['-n', this.switchNs, 'link', 'del', port]);
    if (this.bridgeCreated) ipSync(['-n', this.switchNs, 'link', 'del', 'br0']);
    this.bridgeCreated = false;
    for (const ns of this.namespaces.splice(0).reverse()) ipSync(['netns', 'del', ns]);
  }

  private async createSwitch(): Promise<void> {
    await runCommand(['ip', 'netns', 'add', this.switchNs]);
    this.namespaces.push(this.switchNs);
    const inSwitch = ['ip', '-n', this.switchNs];
    await runCommand([...inSwitch, 'link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0']);
    this.bridgeCreated = true;
    await runCommand([...inSwitch, 'link', 'set', 'br0', 'up']);
  }

  private async addHost(name: string): Promise<Host> {
    if (!namePattern.test(name))
      throw new RangeError(`host name: expected [a-z][a-z0-9]{0,11}, got "${name}"`);
    if (this.all.some((host) => host.name === name))
      throw new RangeError(`host name: ${name} is already used in run ${this.tag}`);
    if (this.hostCount >= hostsMax)
      throw new RangeError(`hosts: at most ${hostsMax} hosts and clients in one run`);
    const index = this.hostCount++;
    const ip = this.address(firstHostNumber + index);
    const ns = `${this.tag}-${name}`;
    const port = `p${index}`;
    // Recorded only once created, so that cleanup never removes a namespace of someone else's.
    await runCommand(['ip', 'netns', 'add', ns]);
    this.namespaces.push(ns);
    const inSwitch = ['ip', '-n', this.switchNs];
    await runCommand([
      ...inSwitch,
      'link',
      'add',
      port,
      'type',
      'veth',
      'peer',
      'name',
      'eth0',
      'netns',
      ns,
    ]);
    this.ports.push(port);
    await runCommand([...inSwitch, 'link', 'set', port, 'master', 'br0', 'up']);
    const inHost = ['ip', '-n', ns];
    await runCommand([...inHost, 'link', 'set', 'lo', 'up']);
    await runCommand([...inHost, 'addr', 'add', `${ip}/${this.prefixLength}`, 'dev', 'eth0']);
    await runCommand([...inHost, 'link', 'set', 'eth0', 'up']);
    return new Host(name, ns, ip, this.prefixLength);
  }
}

/** Creates a run of `count` hosts on one switch (see the file header). */
export function createHosts(options: HostsOptions): Promise<Hosts> {
  return Hosts.create(options);
}

let missingReason: string | undefined | null = null;

/**
 * Why hosts cannot be created here (not root, `ip` or `nft` missing, no namespaces, bridges,
 * veths or nftables in them), or undefined when they can: for `describe(..., { skip })`.
 */
export function hostsMissingReason(): string | undefined {
  if (missingReason === null) missingReason = probeHosts();
  return missingReason;
}

function probeHosts(): string | undefined {
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  const missing = ['ip', 'nft'].filter(
    (tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0,
  );
  if (missing.length > 0)
    return `not installed: ${missing.join(', ')} (apt-get install iproute2 nftables)`;
  const ns = `hostsprobe-${process.pid}`;
  const added = spawnSync('ip', ['netns', 'add', ns], { encoding: 'utf8' });
  if (added.status !== 0)
    return `ip netns add failed: ${(added.stderr || added.error?.message || '').trim()}`;
  const steps = [
    ['ip', '-n', ns, 'link', 'add', 'br0', 'type', 'bridge'],
    ['ip', '-n', ns, 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1'],
    ['ip', 'netns', 'exec', ns, 'nft', 'add', 'table', 'inet', 'probe'],
  ];
  try {
    for (const [command, ...args] of steps) {
      const out = spawnSync(command!, args, { encoding: 'utf8' });
      if (out.status !== 0)
        return `${[command, ...args].join(' ')} failed: ${(out.stderr || out.error?.message || '').trim()}`;
    }
    return undefined;
  } finally {
    ipSync(['netns', 'del', ns]);
  }
}
