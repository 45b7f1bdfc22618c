// One "host" of test/hosts: a network namespace with a veth (eth0) to the run's switch, its own
// loopback and address. Commands run inside it through `ip netns exec` (which execs the command, so
// a spawned child's PID is the program's own); every spawned process is tracked by PID so that
// tests can stop, resume and kill it, and so that cleanup can end it. Packet filtering uses one
// nftables table inside the namespace, so nothing outside the run is ever touched.
import { type ChildProcess, spawn, spawnSync, type StdioOptions } from 'node:child_process';

export interface RunOptions {
  /** Killed (SIGKILL) after this long; default 10 s. */
  timeoutMs?: number;
  /** Written to the command's stdin, which is then closed. */
  input?: string;
}

const runTimeoutMsDefault = 10_000;
const outputBytesMax = 16 << 20;

/** Runs a command to completion; resolves with stdout, rejects with the exit status and stderr. */
export function runCommand(argv: readonly string[], options: RunOptions = {}): Promise<string> {
  const [command, ...args] = argv;
  if (command === undefined) return Promise.reject(new RangeError('runCommand: empty argv'));
  const timeoutMs = options.timeoutMs ?? runTimeoutMsDefault;
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let outputBytes = 0;
    const collect = (into: Buffer[]) => (chunk: Buffer) => {
      outputBytes += chunk.length;
      if (outputBytes <= outputBytesMax) into.push(chunk);
    };
    child.stdout.on('data', collect(stdout));
    child.stderr.on('data', collect(stderr));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`${argv.join(' ')}: ${error.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const err = Buffer.concat(stderr).toString().trim();
      if (code === 0) resolve(Buffer.concat(stdout).toString());
      else
        reject(
          new Error(
            `${argv.join(' ')} failed (${signal === null ? `exit ${code}` : `${signal}, timeout ${timeoutMs} ms`}): ${err}`,
          ),
        );
    });
    // A command that exits without reading its input must not fail the run with EPIPE.
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
  });
}

/** Signals a PID, ignoring a process that is already gone. */
export function signalPid(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw error;
  }
}

/** The PIDs of every process in a namespace (empty when the namespace is gone). */
export function namespacePids(ns: string): number[] {
  const out = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' });
  if (out.status !== 0) return [];
  return out.stdout
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map(Number);
}

export interface HostSpawnOptions {
  /** Default: stdin ignored, stdout and stderr piped. */
  stdio?: StdioOptions;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export type HostSignal = 'SIGKILL' | 'SIGTERM' | 'SIGSTOP' | 'SIGCONT';

export interface KillOptions {
  /**
   * Signal every process in the namespace, not only the ones spawned here (a daemon's forked
   * children, say): a whole-host crash or freeze.
   */
  everyProcess?: boolean;
}

/** The nftables table of a host; one per namespace, so the name need not be unique. */
const filterTable = 'continuum_hosts';

export class Host {
  /** Every PID spawned here, in order, also after the process has exited. */
  readonly spawnedPids: number[] = [];
  private readonly running = new Map<number, ChildProcess>();
  private readonly stopped = new Set<number>();
  private filtering = false;

  constructor(
    /** Short name within the run: h0, h1, ..., client. */
    readonly name: string,
    /** The network namespace. */
    readonly ns: string,
    /** IPv4 address on eth0. */
    readonly ip: string,
    /** Network prefix length of `ip`. */
    readonly prefixLength: number,
  ) {}

  /** The host's interface to the switch. */
  readonly interfaceName = 'eth0';

  /** Runs a command inside the namespace; stdout, or an error with its stderr. */
  exec(argv: readonly string[], options: RunOptions = {}): Promise<string> {
    return runCommand(['ip', 'netns', 'exec', this.ns, ...argv], options);
  }

  /** Starts a process inside the namespace, tracked until it exits. */
  spawn(argv: readonly string[], options: HostSpawnOptions = {}): ChildProcess {
    if (argv.length === 0) throw new RangeError(`${this.name}.spawn: empty argv`);
    const child = spawn('ip', ['netns', 'exec', this.ns, ...argv], {
      stdio: options.stdio ?? ['ignore', 'pipe', 'pipe'],
      env: options.env,
      cwd: options.cwd,
    });
    const pid = child.pid;
    if (pid !== undefined) {
      this.spawnedPids.push(pid);
      this.running.set(pid, child);
      child.once('exit', () => {
        this.running.delete(pid);
        this.stopped.delete(pid);
      });
    }
    return child;
  }

  /** The tracked processes that have not exited yet. */
  get children(): ChildProcess[] {
    return [...this.running.values()];
  }

  /** Signals the tracked processes (or every process in the namespace); the PIDs signalled. */
  kill(signal: HostSignal, options: KillOptions = {}): number[] {
    const pids = new Set(this.running.keys());
    if (options.everyProcess === true) for (const pid of namespacePids(this.ns)) pids.add(pid);
    const signalled = [...pids].filter((pid) => signalPid(pid, signal));
    // Only tracked PIDs are remembered: their exit is seen, so the PID cannot be reused meanwhile.
    for (const pid of signalled.filter((p) => this.running.has(p))) {
      if (signal === 'SIGSTOP') this.stopped.add(pid);
      else this.stopped.delete(pid);
    }
    return signalled;
  }

  /**
   * A host crash: every process in the namespace is frozen, then killed, then the link goes
   * down. Freezing first matters: killed one by one, a daemon's child can see its parent die
   * (PR_SET_PDEATHSIG) and shut down gracefully, sending a goodbye (a VRRP priority 0 advert)
   * that a crashed host never sends. The PIDs killed.
   */
  async crash(): Promise<number[]> {
    this.kill('SIGSTOP', { everyProcess: true });
    const killed = this.kill('SIGKILL', { everyProcess: true });
    await this.linkDown();
    return killed;
  }

  linkDown(): Promise<void> {
    return this.ipInNamespace(['link', 'set', this.interfaceName, 'down']);
  }

  linkUp(): Promise<void> {
    return this.ipInNamespace(['link', 'set', this.interfaceName, 'up']);
  }

  /** Drops IPv4 packets from and to the peers' addresses, in this namespace, both directions. */
  async dropFrom(peers: readonly Host[]): Promise<void> {
    if (peers.length === 0) return;
    const script: string[] = [];
    if (!this.filtering) {
      script.push(
        `table inet ${filterTable} {`,
        '  set peers { type ipv4_addr; }',
        '  chain input { type filter hook input priority 0; policy accept; ip saddr @peers drop; }',
        '  chain output { type filter hook output priority 0; policy accept; ip daddr @peers drop; }',
        '}',
      );
    }
    script.push(`add element inet ${filterTable} peers { ${peers.map((p) => p.ip).join(', ')} }`);
    await this.exec(['nft', '-f', '-'], { input: `${script.join('\n')}\n` });
    this.filtering = true;
  }

  /** Removes every drop rule of dropFrom. */
  async allowAll(): Promise<void> {
    if (!this.filtering) return;
    await this.exec(['nft', 'delete', 'table', 'inet', filterTable]);
    this.filtering = false;
  }

  /**
   * Ends every process of the host by PID, resuming stopped ones first, and removes the filter
   * table. Synchronous, so that it can run from a process 'exit' handler too.
   */
  cleanupSync(): void {
    for (const pid of this.running.keys()) {
      if (this.stopped.has(pid)) signalPid(pid, 'SIGCONT');
      signalPid(pid, 'SIGKILL');
    }
    this.stopped.clear();
    // Whatever else runs in this namespace was started by the run (a daemon's children), and may
    // have been stopped by kill('SIGSTOP', { everyProcess: true }).
    for (const pid of namespacePids(this.ns)) {
      signalPid(pid, 'SIGCONT');
      signalPid(pid, 'SIGKILL');
    }
    if (this.filtering) {
      spawnSync('ip', ['netns', 'exec', this.ns, 'nft', 'delete', 'table', 'inet', filterTable]);
      this.filtering = false;
    }
  }

  private async ipInNamespace(args: readonly string[]): Promise<void> {
    await runCommand(['ip', '-n', this.ns, ...args]);
  }
}
