// A real single-member etcd for tests: started on free loopback ports with its own data
// directory, waited for until it answers /health, killed and restarted on the same data directory
// at will, and always stopped by PID with its directory removed. The store tests use it, and it
// is meant for the multi-host tests too. Debian's etcd-server package provides the binary
// (scripts/test.sh installs it); etcdMissingReason says why tests must skip when it is absent.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

export interface EtcdProcessOptions {
  /** The etcd binary; found on PATH by default. */
  binary?: string;
  /** How long etcd may take to answer /health after a start or restart. */
  startTimeoutMs?: number;
  /** How long stop() waits after SIGTERM before it sends SIGKILL. */
  stopTimeoutMs?: number;
}

const startTimeoutMsDefault = 20_000;
const stopTimeoutMsDefault = 5000;
/** Pause between two /health polls while etcd starts. */
const healthPollIntervalMs = 50;
/** The last bytes of etcd's output kept for error messages. */
const outputTailBytesMax = 4096;
/** setpriv (util-linux) makes etcd die with the test process even when that is SIGKILLed. */
const setprivPath = '/usr/bin/setpriv';

/** Why etcd tests cannot run here, or undefined when the binary is present. */
export function etcdMissingReason(binary = 'etcd'): string | undefined {
  const probe = spawnSync(binary, ['--version'], { encoding: 'utf8' });
  if (probe.error === undefined && probe.status === 0) return undefined;
  return `the etcd binary (${binary}) is not installed: apt-get install etcd-server (scripts/test.sh installs it)`;
}

export class EtcdProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private outputTail = '';

  private constructor(
    readonly dataDir: string,
    readonly clientPort: number,
    private readonly peerPort: number,
    private readonly options: Required<EtcdProcessOptions>,
  ) {}

  static async start(options: EtcdProcessOptions = {}): Promise<EtcdProcess> {
    const settings = {
      binary: options.binary ?? 'etcd',
      startTimeoutMs: options.startTimeoutMs ?? startTimeoutMsDefault,
      stopTimeoutMs: options.stopTimeoutMs ?? stopTimeoutMsDefault,
    };
    const dataDir = await mkdtemp(join(tmpdir(), 'continuum-etcd-'));
    const [clientPort, peerPort] = await freeLoopbackPorts(2);
    const etcd = new EtcdProcess(dataDir, clientPort!, peerPort!, settings);
    try {
      await etcd.launch();
    } catch (error) {
      await etcd.stop();
      throw error;
    }
    return etcd;
  }

  /** The client URL, for EtcdStore's endpoints. */
  get endpoint(): string {
    return `http://127.0.0.1:${this.clientPort}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Sends signal to etcd and waits until it has exited (and been reaped). */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (
      this.child !== undefined &&
      this.child.exitCode === null &&
      this.child.signalCode === null
    ) {
      this.child.kill(signal);
    }
    await this.exited;
  }

  /** Starts etcd again on the same ports and data directory, after a kill. */
  async restart(): Promise<void> {
    await this.kill();
    await this.launch();
  }

  /** Stops etcd (SIGTERM, then SIGKILL after stopTimeoutMs) and removes its data directory. */
  async stop(): Promise<void> {
    const child = this.child;
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), this.options.stopTimeoutMs);
      await this.exited;
      clearTimeout(timer);
    }
    await rm(this.dataDir, { recursive: true, force: true });
  }

  private async launch(): Promise<void> {
    const peerUrl = `http://127.0.0.1:${this.peerPort}`;
    const args = [
      ...['--name', 't', '--data-dir', this.dataDir],
      ...['--listen-client-urls', this.endpoint, '--advertise-client-urls', this.endpoint],
      ...['--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl],
      ...['--initial-cluster', `t=${peerUrl}`, '--logger', 'zap', '--log-level', 'warn'],
    ];
    const [command, commandArgs] = existsSync(setprivPath)
      ? [setprivPath, ['--pdeathsig', 'KILL', '--', this.options.binary, ...args]]
      : [this.options.binary, args];
    const child = spawn(command, commandArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.outputTail = '';
    const keepTail = (chunk: Buffer) => {
      this.outputTail = (this.outputTail + chunk.toString('utf8')).slice(-outputTailBytesMax);
    };
    child.stdout?.on('data', keepTail);
    child.stderr?.on('data', keepTail);
    // PID 1 of a container may not reap zombies; Node reaps its own child, and 'exit' says when.
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    child.once('error', (error) => keepTail(Buffer.from(`spawn failed: ${error.message}\n`)));
    await this.waitHealthy(child);
  }

  private async waitHealthy(child: ChildProcess): Promise<void> {
    const deadline = Date.now() + this.options.startTimeoutMs;
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(
          `etcd exited while starting (${child.exitCode ?? child.signalCode}): ${this.outputTail}`,
        );
      }
      if (await this.healthy()) return;
      await delay(healthPollIntervalMs);
    }
    throw new Error(
      `etcd at ${this.endpoint} did not answer /health within ${this.options.startTimeoutMs} ms: ${this.outputTail}`,
    );
  }

  private async healthy(): Promise<boolean> {
    try {
      const response = await fetch(`${this.endpoint}/health`, {
        signal: AbortSignal.timeout(1000),
      });
      const body = (await response.json()) as { health?: string };
      return response.ok && body.health === 'true';
    } catch {
      return false;
    }
  }
}

/** Distinct free TCP ports on 127.0.0.1, found by letting the kernel pick and closing again. */
async function freeLoopbackPorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, () => {
      const server = createServer();
      return new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => resolve(server));
      });
    }),
  );
  const ports = servers.map((server) => {
    const address = server.address();
    return typeof address === 'object' && address !== null ? address.port : 0;
  });
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}
