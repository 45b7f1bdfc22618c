// One instance on this node: starts it through the driver, watches it (process exit at once,
// probes on their intervals), and climbs the remediation ladder: restart in place with backoff,
// a bounded number of times per window, then report `failoverRequested` so the controller moves it.
import type { InstanceState, InstanceStatus, ProbeStatus } from '../core/model.js';
import type { Clock, Logger, TimerHandle } from '../core/ports.js';
import type { WorkloadSpec } from '../core/spec.js';
import type { Driver, ExitInfo, InstanceHandle } from './drivers/driver.js';
import { nextStep } from './ladder.js';
import type { ProbeRunner } from './probes/probe.js';

export interface RunnerDeps {
  node: string;
  /** Address the instance's endpoints listen on, for local probes. */
  host: string;
  driver: Driver;
  probes: ProbeRunner;
  clock: Clock;
  logger: Logger;
  /** How often probes are polled while the instance starts. */
  startupProbeIntervalMs: number;
  /** An instance not healthy after this long counts as a failure. */
  startupTimeoutMs: number;
  report(status: InstanceStatus): void;
  /** False once this node has been told of a newer epoch of the workload: then nothing may start. */
  isCurrent(epoch: number): boolean;
  /** Called whenever the handle or counters change, so the agent can persist them. */
  changed(): void;
}

export interface RunnerInit {
  workload: string;
  epoch: number;
  spec: WorkloadSpec;
  restartNonce: number;
  ports: Record<string, number>;
  runDir: string;
  cwd: string;
  env: Record<string, string>;
  handle?: InstanceHandle;
}

export class InstanceRunner {
  readonly workload: string;
  readonly epoch: number;
  spec: WorkloadSpec;
  restartNonce: number;
  readonly ports: Record<string, number>;
  handle: InstanceHandle | undefined;
  private state: InstanceState = 'stopped';
  private message: string | undefined;
  private failoverRequested = false;
  private restartTimes: number[] = [];
  private probeStatus: Record<string, ProbeStatus> = {};
  private generation = 0;
  private timers = new Set<TimerHandle>();
  private unsubscribeExit: (() => void) | undefined;
  private stopping = false;
  private startedAt: number | undefined;
  private spawning = false;

  constructor(
    private readonly deps: RunnerDeps,
    private readonly init: RunnerInit,
  ) {
    this.workload = init.workload;
    this.epoch = init.epoch;
    this.spec = init.spec;
    this.restartNonce = init.restartNonce;
    this.ports = init.ports;
    this.handle = init.handle;
  }

  status(): InstanceStatus {
    return {
      workload: this.workload,
      node: this.deps.node,
      epoch: this.epoch,
      state: this.state,
      ...(this.handle === undefined ? {} : { pid: this.handle.pid }),
      ports: this.ports,
      ...(this.startedAt === undefined ? {} : { startedAt: this.startedAt }),
      restarts: this.restartTimes.length,
      restartNonce: this.restartNonce,
      failoverRequested: this.failoverRequested,
      probes: this.probeStatus,
      ...(this.message === undefined ? {} : { message: this.message }),
    };
  }

  /** True while a process runs or is being spawned (a second start must not race the first). */
  get running(): boolean {
    return this.handle !== undefined || this.spawning;
  }

  get failed(): boolean {
    return this.state === 'failed';
  }

  private setState(state: InstanceState, message?: string): void {
    this.state = state;
    this.message = message;
    this.deps.report(this.status());
  }

  /** Re-attaches to an instance that survived an agent restart; false when it is gone. */
  async recover(): Promise<boolean> {
    if (this.handle === undefined) return false;
    const handle = await this.deps.driver.recover(this.handle);
    if (handle === null) {
      this.handle = undefined;
      this.deps.changed();
      this.setState('stopped', 'the instance ended while the agent was away');
      return false;
    }
    this.handle = handle;
    this.startedAt = handle.startedAt;
    this.watch(handle, 'recovered');
    return true;
  }

  async start(): Promise<void> {
    this.stopping = false;
    this.failoverRequested = false;
    if (!this.deps.isCurrent(this.epoch)) {
      // A restart timer or a late set can reach here after a newer epoch was learned.
      this.setState(
        'stopped',
        `superseded by a newer epoch; epoch ${this.epoch} is not started again`,
      );
      return;
    }
    this.setState('starting');
    const generation = this.generation;
    this.spawning = true;
    try {
      const handle = await this.deps.driver.start({
        workload: this.workload,
        epoch: this.epoch,
        spec: this.spec,
        runDir: this.init.runDir,
        cwd: this.init.cwd,
        env: this.init.env,
      });
      if (generation !== this.generation) {
        // Stopped (or restarted) while the process was being spawned: it must not outlive that.
        await this.deps.driver.stop(handle, { graceMs: this.spec.process?.stopGraceMs ?? 5000 });
        return;
      }
      this.handle = handle;
      this.startedAt = handle.startedAt;
      this.deps.changed();
      this.watch(handle, 'started');
    } catch (err) {
      this.remediate(`could not start: ${(err as Error).message}`);
    } finally {
      this.spawning = false;
    }
  }

  private watch(handle: InstanceHandle, how: 'started' | 'recovered'): void {
    const generation = ++this.generation;
    this.unsubscribeExit?.();
    this.unsubscribeExit = this.deps.driver.onExit(handle, (exit) => this.exited(generation, exit));
    this.probeStatus = Object.fromEntries(
      this.probeNames().map((name) => [name, { ok: false, consecutiveFailures: 0 }]),
    );
    this.setState('starting', how === 'recovered' ? 're-attached after agent restart' : undefined);
    this.schedule(generation, 0, () => this.startupCheck(generation, this.deps.clock.now(), 0));
  }

  private probeNames(): string[] {
    return this.spec.probes.map((p, i) => p.name ?? `${p.type}-${i}`);
  }

  private schedule(generation: number, delayMs: number, fn: () => Promise<void> | void): void {
    const timer = this.deps.clock.setTimeout(() => {
      this.timers.delete(timer);
      if (generation !== this.generation) return;
      void Promise.resolve(fn()).catch((err: unknown) =>
        this.deps.logger.log('error', 'instance runner step failed', {
          workload: this.workload,
          error: String(err),
        }),
      );
    }, delayMs);
    this.timers.add(timer);
  }

  private clearTimers(): void {
    for (const timer of this.timers) this.deps.clock.clearTimeout(timer);
    this.timers.clear();
  }

  private async checkAll(): Promise<{ ok: boolean; failed?: string; answeredFailures: number }> {
    const names = this.probeNames();
    const results = await Promise.all(
      this.spec.probes.map((probe) => this.deps.probes.run(probe, this.target())),
    );
    let failed: string | undefined;
    let answeredFailures = 0;
    results.forEach((result, i) => {
      if (!result.ok && result.answered === true) answeredFailures++;
      const name = names[i]!;
      const prev = this.probeStatus[name] ?? { ok: false, consecutiveFailures: 0 };
      this.probeStatus[name] = {
        ok: result.ok,
        consecutiveFailures: result.ok ? 0 : prev.consecutiveFailures + 1,
        lastCheckedAt: this.deps.clock.now(),
        ...(result.error === undefined ? {} : { lastError: result.error }),
      };
      if (!result.ok && failed === undefined) failed = `${name}: ${result.error ?? 'failed'}`;
    });
    return failed === undefined
      ? { ok: true, answeredFailures }
      : { ok: false, failed, answeredFailures };
  }

  private target() {
    return { host: this.deps.host, ports: this.ports, cwd: this.init.cwd, env: this.init.env };
  }

  /**
   * While starting, "nobody listening yet" is expected until startupTimeoutMs, but a probe that
   * answers wrongly failureThreshold times in a row, counted at most once per probe interval (a
   * warming service gets the same slack as a running one), is a failure now.
   */
  private async startupCheck(
    generation: number,
    since: number,
    answeredInRow: number,
    countedAt = -Infinity,
  ): Promise<void> {
    const result = await this.checkAll();
    if (generation !== this.generation) return;
    const now = this.deps.clock.now();
    const intervalMs = Math.min(...this.spec.probes.map((p) => p.intervalMs));
    if (result.ok) {
      this.setState('healthy');
      this.spec.probes.forEach((probe, i) =>
        this.schedule(generation, probe.intervalMs, () => this.probeLoop(generation, i)),
      );
      return;
    }
    const counts = result.answeredFailures > 0 && now - countedAt >= intervalMs;
    const inRow = result.answeredFailures === 0 ? 0 : counts ? answeredInRow + 1 : answeredInRow;
    const nextCountedAt = counts ? now : countedAt;
    const threshold = Math.min(...this.spec.probes.map((p) => p.failureThreshold));
    if (inRow >= threshold) {
      this.remediate(`unhealthy while starting: ${result.failed}`);
      return;
    }
    if (now - since >= this.deps.startupTimeoutMs) {
      this.remediate(`not healthy ${this.deps.startupTimeoutMs} ms after start (${result.failed})`);
      return;
    }
    this.schedule(generation, this.deps.startupProbeIntervalMs, () =>
      this.startupCheck(generation, since, inRow, nextCountedAt),
    );
  }

  private async probeLoop(generation: number, index: number): Promise<void> {
    const probe = this.spec.probes[index]!;
    const name = this.probeNames()[index]!;
    const result = await this.deps.probes.run(probe, this.target());
    if (generation !== this.generation) return;
    const prev = this.probeStatus[name] ?? { ok: true, consecutiveFailures: 0 };
    const failures = result.ok ? 0 : prev.consecutiveFailures + 1;
    this.probeStatus[name] = {
      ok: result.ok,
      consecutiveFailures: failures,
      lastCheckedAt: this.deps.clock.now(),
      ...(result.error === undefined ? {} : { lastError: result.error }),
    };
    if (failures >= probe.failureThreshold) {
      this.remediate(`probe ${name} failed ${failures} times: ${result.error ?? 'failed'}`);
      return;
    }
    if (prev.ok !== result.ok)
      this.setState(
        result.ok ? 'healthy' : 'unhealthy',
        result.ok ? undefined : `probe ${name}: ${result.error}`,
      );
    this.schedule(generation, probe.intervalMs, () => this.probeLoop(generation, index));
  }

  private exited(generation: number, exit: ExitInfo): void {
    if (generation !== this.generation || this.stopping) return;
    this.handle = undefined;
    this.deps.changed();
    const how = exit.signal !== null ? `signal ${exit.signal}` : `code ${String(exit.code)}`;
    this.remediate(`process exited with ${how}`);
  }

  /** One rung of the ladder: restart after backoff, or give up and ask for failover. */
  private remediate(reason: string): void {
    const generation = ++this.generation;
    this.clearTimers();
    const now = this.deps.clock.now();
    const step = nextStep(this.restartTimes, now, this.spec.availability.restart);
    if (step.action === 'give-up') {
      this.deps.logger.log('warn', 'remediation gave up; asking for failover', {
        workload: this.workload,
        reason,
      });
      void this.terminate().then(() => {
        if (generation !== this.generation) return;
        this.failoverRequested = true;
        this.setState(
          'failed',
          `${reason}; ${step.restarts} restarts within the window, asking for failover`,
        );
      });
      return;
    }
    this.restartTimes = [
      ...this.restartTimes.filter((t) => now - t < this.spec.availability.restart.windowMs),
      now,
    ];
    this.deps.changed();
    this.setState('restarting', `${reason}; restart ${step.attempt} in ${step.delayMs} ms`);
    this.schedule(generation, step.delayMs, async () => {
      await this.terminate();
      if (generation === this.generation) await this.start();
    });
  }

  /** An operator restart (restartNonce grew): clears the ladder and starts afresh. */
  async restartFor(nonce: number): Promise<void> {
    this.restartNonce = nonce;
    this.restartTimes = [];
    this.generation++;
    this.clearTimers();
    await this.terminate();
    this.deps.changed();
    await this.start();
  }

  private async terminate(): Promise<void> {
    const handle = this.handle;
    if (handle === undefined) return;
    this.stopping = true;
    this.unsubscribeExit?.();
    await this.deps.driver.stop(handle, { graceMs: this.spec.process?.stopGraceMs ?? 5000 });
    if (this.handle === handle) this.handle = undefined;
    this.stopping = false;
    this.deps.changed();
  }

  /** Final stop: the instance is no longer assigned here. */
  async stop(reason: string): Promise<void> {
    this.generation++;
    this.clearTimers();
    this.setState('stopping', reason);
    await this.terminate();
    this.setState('stopped', reason);
  }

  /** Stops timers without touching the process (agent shutdown: instances outlive the agent). */
  detach(): void {
    this.generation++;
    this.clearTimers();
    this.unsubscribeExit?.();
  }
}
