// The simulator's driver: processes that exist only in a shared table, on the simulated clock. It
// passes the same contract suite as the process driver (driver.contract.ts). Faults reach into the
// table: a process can crash, a node's processes can all die at once, and health can be switched.
import type { Clock } from '../core/ports.js';
import type {
  Driver,
  ExitInfo,
  InstanceHandle,
  InstanceInspection,
  StartRequest,
} from '../agent/drivers/driver.js';

export interface SimProcess {
  pid: number;
  node: string;
  workload: string;
  epoch: number;
  ports: number[];
  startedAt: number;
  healthy: boolean;
  ignoresTerm: boolean;
  exit?: ExitInfo;
}

/** Every simulated process of a run, across nodes; the checkers read it as the truth of what runs. */
export class ProcessTable {
  private nextPid = 100;
  private nextPort = 20_000;
  readonly processes = new Map<number, SimProcess>();
  private readonly exitListeners = new Map<number, Set<(exit: ExitInfo) => void>>();
  /** Called when an agent asks for a start (the moment it decides), for the safety checker. */
  onStartRequested:
    ((start: { node: string; workload: string; epoch: number }) => void) | undefined;
  /** Called when a process exists. */
  onStart: ((process: SimProcess) => void) | undefined;

  allocatePid(): number {
    return this.nextPid++;
  }

  allocatePort(): number {
    return this.nextPort++;
  }

  live(): SimProcess[] {
    return [...this.processes.values()].filter((p) => p.exit === undefined);
  }

  byPort(port: number): SimProcess | undefined {
    return this.live().find((p) => p.ports.includes(port));
  }

  listen(pid: number, listener: (exit: ExitInfo) => void): () => void {
    const set = this.exitListeners.get(pid) ?? new Set();
    this.exitListeners.set(pid, set);
    set.add(listener);
    return () => set.delete(listener);
  }

  /** Ends a process; `notify` false models a node crash, where nobody is left to hear of it. */
  end(pid: number, exit: ExitInfo, notify = true): void {
    const process = this.processes.get(pid);
    if (process === undefined || process.exit !== undefined) return;
    process.exit = exit;
    const listeners = this.exitListeners.get(pid);
    this.exitListeners.delete(pid);
    if (notify) for (const listener of listeners ?? []) listener(exit);
  }
}

/** How a command behaves in the simulation: the contract's shell commands, or a long-running service. */
function behaviour(command: readonly string[]): { exitCode?: number; ignoresTerm: boolean } {
  const text = command.join(' ');
  const exit = /exit (\d+)/.exec(text);
  if (exit !== null) return { exitCode: Number(exit[1]), ignoresTerm: false };
  if (text.includes('printf')) return { exitCode: 0, ignoresTerm: false };
  return { ignoresTerm: text.includes('trap "" TERM') };
}

export interface FakeDriverOptions {
  clock: Clock;
  table: ProcessTable;
  node: string;
  /** Simulated time a start takes. */
  startDelayMs?: number;
  /** Runs a notification on the node (later, if the node hangs); immediate by default. */
  deliver?: (callback: () => void) => void;
}

export class FakeDriver implements Driver {
  readonly name = 'fake';
  private readonly clock: Clock;
  private readonly table: ProcessTable;

  constructor(private readonly options: FakeDriverOptions) {
    this.clock = options.clock;
    this.table = options.table;
  }

  start(request: StartRequest): Promise<InstanceHandle> {
    const how = behaviour(request.spec.process?.command ?? []);
    const ports = Object.entries(request.env)
      .filter(([k]) => k.startsWith('CONTINUUM_PORT_'))
      .map(([, v]) => Number(v));
    this.table.onStartRequested?.({
      node: this.options.node,
      workload: request.workload,
      epoch: request.epoch,
    });
    return new Promise((resolve) => {
      this.clock.setTimeout(() => {
        const pid = this.table.allocatePid();
        const process: SimProcess = {
          pid,
          node: this.options.node,
          workload: request.workload,
          epoch: request.epoch,
          ports,
          startedAt: this.clock.now(),
          healthy: true,
          ignoresTerm: how.ignoresTerm,
        };
        this.table.processes.set(pid, process);
        this.table.onStart?.(process);
        if (how.exitCode !== undefined) {
          const code = how.exitCode;
          this.clock.setTimeout(
            () => this.table.end(pid, { code, signal: null, at: this.clock.now() }),
            1,
          );
        }
        resolve({
          driver: this.name,
          workload: request.workload,
          epoch: request.epoch,
          runDir: request.runDir,
          pid,
          startedAt: process.startedAt,
          attach: { node: this.options.node },
        });
      }, this.options.startDelayMs ?? 20);
    });
  }

  recover(handle: InstanceHandle): Promise<InstanceHandle | null> {
    const process = this.table.processes.get(handle.pid);
    return Promise.resolve(process !== undefined && process.exit === undefined ? handle : null);
  }

  onExit(handle: InstanceHandle, listener: (exit: ExitInfo) => void): () => void {
    const process = this.table.processes.get(handle.pid);
    if (process?.exit !== undefined) {
      const exit = process.exit;
      let cancelled = false;
      this.clock.setTimeout(() => {
        if (!cancelled) listener(exit);
      }, 0);
      return () => (cancelled = true);
    }
    let fired = false;
    const deliver = this.options.deliver ?? ((callback: () => void) => callback());
    return this.table.listen(handle.pid, (exit) =>
      deliver(() => {
        if (fired) return;
        fired = true;
        listener(exit);
      }),
    );
  }

  stop(handle: InstanceHandle, options: { graceMs: number }): Promise<ExitInfo> {
    const process = this.table.processes.get(handle.pid);
    if (process === undefined)
      return Promise.resolve({ code: null, signal: null, at: this.clock.now() });
    if (process.exit !== undefined) return Promise.resolve(process.exit);
    return new Promise((resolve) => {
      const signal = process.ignoresTerm ? 'SIGKILL' : 'SIGTERM';
      const delayMs = process.ignoresTerm ? options.graceMs : 5;
      this.clock.setTimeout(() => {
        this.table.end(handle.pid, { code: null, signal, at: this.clock.now() });
        resolve(process.exit!);
      }, delayMs);
    });
  }

  destroy(handle: InstanceHandle): Promise<void> {
    this.table.end(handle.pid, { code: null, signal: 'SIGKILL', at: this.clock.now() });
    return Promise.resolve();
  }

  inspect(handle: InstanceHandle): Promise<InstanceInspection> {
    const process = this.table.processes.get(handle.pid);
    return Promise.resolve({
      running: process !== undefined && process.exit === undefined,
      pid: handle.pid,
      ...(process?.exit === undefined ? {} : { exit: process.exit }),
    });
  }

  stats(): Promise<{ cpuSeconds: number; rssBytes: number }> {
    return Promise.resolve({ cpuSeconds: 0, rssBytes: 0 });
  }
}
