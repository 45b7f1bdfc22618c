// One instance on this node: starts it through the driver, watches it (process exit at once,
// probes on their intervals), and climbs the remediation ladder: restart in place with backoff,
// a bounded number of times per window, then report `failoverRequested` so the controller moves it.
import type { InstanceState, InstanceStatus } from '../core/model.js';
import { isReadinessProbe, type ProbeSpec } from '../core/probe-spec.js';
import type { Clock, Logger, TimerHandle } from '../core/ports.js';
import type { WorkloadSpec } from '../core/spec.js';
import type { Driver, ExitInfo, InstanceHandle } from './drivers/driver.js';
import { nextStep } from './ladder.js';
import type { ProbeResult, ProbeRunner } from './probes/probe.js';
import { ProbeMonitor } from './probes/probe-monitor.js';

/**
 * A probe's response time is reported at most this often when nothing else about it changed, so
 * the controller's charts follow it without a store write per check.
 */
export const probeDurationReportIntervalMs = 10_000;

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
  private monitors: ProbeMonitor[];
  private durationsReportedAt = -Infinity;
  /** Raised when the spec's probes change: loops of the old probes end at their next turn. */
  private probeRound = 0;
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
    this.monitors = init.spec.probes.map((probe, i) => new ProbeMonitor(probe, i));
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
      probes: Object.fromEntries(this.monitors.map((m) => [m.name, m.status])),
      ...(this.message === undefined ? {} : { message: this.message }),
    };
  }

  /** Where the instance's driver keeps its files (its output among them). */
  get runDir(): string {
    return this.init.runDir;
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
    this.monitors = this.spec.probes.map((probe, i) => new ProbeMonitor(probe, i));
    this.setState('starting', how === 'recovered' ? 're-attached after agent restart' : undefined);
    this.schedule(generation, 0, () => this.startupCheck(generation, this.deps.clock.now(), 0));
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

  /** Runs the readiness probes once (while starting): ok when every one of them passed. */
  private async checkAll(): Promise<{ ok: boolean; failed?: string; answeredFailures: number }> {
    const readiness = this.monitors.filter((m) => isReadinessProbe(m.probe));
    const results = await Promise.all(readiness.map((m) => this.check(m)));
    let failed: string | undefined;
    let answeredFailures = 0;
    results.forEach((result, i) => {
      const monitor = readiness[i]!;
      if (!result.ok && result.answered === true) answeredFailures++;
      monitor.recordStartup(result, this.deps.clock.now());
      if (!result.ok && failed === undefined)
        failed = `${monitor.name}: ${result.error ?? 'failed'}`;
    });
    return failed === undefined
      ? { ok: true, answeredFailures }
      : { ok: false, failed, answeredFailures };
  }

  /** One check of one probe: resource probes read the driver's stats, the others are run. */
  private async check(monitor: ProbeMonitor): Promise<ProbeResult> {
    if (monitor.resource === undefined) return this.deps.probes.run(monitor.probe, this.target());
    const handle = this.handle;
    if (handle === undefined) return { ok: false, durationMs: 0, error: 'no process running' };
    const stats = await this.deps.driver.stats(handle);
    return monitor.resource.judge(stats, this.deps.clock.now());
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
    const readiness = this.spec.probes.filter(isReadinessProbe);
    const intervalMs = Math.min(...readiness.map((p) => p.intervalMs));
    if (result.ok) {
      this.setState('healthy');
      this.startProbeLoops(generation);
      return;
    }
    const counts = result.answeredFailures > 0 && now - countedAt >= intervalMs;
    const inRow = result.answeredFailures === 0 ? 0 : counts ? answeredInRow + 1 : answeredInRow;
    const nextCountedAt = counts ? now : countedAt;
    const threshold = Math.min(...readiness.map((p) => p.failureThreshold));
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

  private startProbeLoops(generation: number): void {
    const round = this.probeRound;
    this.monitors.forEach((monitor, i) =>
      this.schedule(generation, monitor.probe.intervalMs, () =>
        this.probeLoop(generation, i, round),
      ),
    );
  }

  /**
   * A new spec at the same epoch: changed probes apply at once to a running instance (an
   * operator who adds a probe expects it to watch now); the rest applies at the next start.
   */
  updateSpec(spec: WorkloadSpec): void {
    const probesChanged = JSON.stringify(spec.probes) !== JSON.stringify(this.spec.probes);
    this.spec = spec;
    if (!probesChanged) return;
    this.probeRound++;
    this.monitors = spec.probes.map((probe, i) => new ProbeMonitor(probe, i));
    if (this.state === 'healthy' || this.state === 'unhealthy') {
      this.startProbeLoops(this.generation);
      this.deps.report(this.status());
    }
  }

  private async probeLoop(generation: number, index: number, round: number): Promise<void> {
    if (round !== this.probeRound) return;
    const monitor = this.monitors[index]!;
    const result = await this.check(monitor);
    if (generation !== this.generation || round !== this.probeRound) return;
    const now = this.deps.clock.now();
    const change = monitor.record(result, now);
    const { probe } = monitor;
    if (change.crossed && probe.action !== 'alert') {
      const reason = `probe ${monitor.name}: ${monitor.status.reason ?? 'failing'} (${result.error ?? 'last check ok'})`;
      if (probe.action === 'failover') return this.giveUp(reason, 'its action is failover');
      if (probe.action === 'script' && monitor.takeScriptTurn())
        return this.runRemediation(generation, monitor, reason, round);
      return this.remediate(reason);
    }
    if (isReadinessProbe(probe) && change.okChanged)
      this.setState(
        result.ok ? 'healthy' : 'unhealthy',
        result.ok ? undefined : `probe ${monitor.name}: ${result.error}`,
      );
    else if (change.becameFailing || change.recovered) this.deps.report(this.status());
    else if (now - this.durationsReportedAt >= probeDurationReportIntervalMs) {
      this.durationsReportedAt = now;
      this.deps.report(this.status());
    }
    this.schedule(generation, probe.intervalMs, () => this.probeLoop(generation, index, round));
  }

  /**
   * The script rung: run the probe's remediation command next to the instance, report how it
   * ended, and watch the probe afresh; if it fails again, the ladder climbs to restarts.
   */
  private async runRemediation(
    generation: number,
    monitor: ProbeMonitor,
    reason: string,
    round: number,
  ): Promise<void> {
    const remediation = monitor.probe.remediation!;
    this.deps.logger.log('warn', 'probe failing; running its remediation script', {
      workload: this.workload,
      reason,
    });
    const script: ProbeSpec = {
      type: 'exec',
      command: remediation.command,
      timeoutMs: remediation.timeoutMs,
      intervalMs: remediation.timeoutMs,
      failureThreshold: 1,
      action: 'alert',
    };
    const result = await this.deps.probes.run(script, this.target());
    if (generation !== this.generation || round !== this.probeRound) return;
    monitor.remediated({
      at: this.deps.clock.now(),
      ok: result.ok,
      message: result.ok
        ? `${remediation.command.join(' ')} ran for ${reason}`
        : `${result.error ?? 'failed'} (run for ${reason})`,
    });
    this.deps.report(this.status());
    const index = this.monitors.indexOf(monitor);
    this.schedule(generation, monitor.probe.intervalMs, () =>
      this.probeLoop(generation, index, round),
    );
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
      this.giveUp(reason, `${step.restarts} restarts within the window`, generation);
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

  /** The top of the ladder: stop here and ask the controller to fail the workload over. */
  private giveUp(reason: string, why: string, generation = ++this.generation): void {
    this.clearTimers();
    this.deps.logger.log('warn', 'remediation gave up; asking for failover', {
      workload: this.workload,
      reason,
    });
    void this.terminate().then(() => {
      if (generation !== this.generation) return;
      this.failoverRequested = true;
      this.setState('failed', `${reason}; ${why}, asking for failover`);
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
