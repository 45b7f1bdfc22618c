// The agent core: applies the controller's assignment sets (level-based: run exactly these,
// stop everything else), refuses epochs older than it has seen, re-attaches to its instances after
// a restart, and reports instance status. The session adapter (session.ts) carries its messages.
import type { InstanceStatus } from '../core/model.js';
import { isContinuumError } from '../core/errors.js';
import type { Clock, Logger } from '../core/ports.js';
import type { VolumeRequest, VolumeService } from '../core/volumes.js';
import {
  logLineCharsMax,
  logTailBytesMax,
  type AgentMessage,
  type Assignment,
  type ControllerMessage,
  type LogsRequest,
  type PrimaryReportMessage,
  type VolumeDutyMessage,
} from '../core/protocol.js';
import type { VolumeDutyPort } from '../storage/replication/types.js';
import type { AgentState } from './agent-state.js';
import type { Driver, InstanceHandle } from './drivers/driver.js';
import { InstanceRunner } from './instance-runner.js';
import type { ProbeRunner } from './probes/probe.js';
import { agentFenceTimeoutMsDefault, SelfFence } from './self-fence.js';
import { instanceEnv } from './instance-env.js';
import type { VipManager } from './vip.js';
import { connectVips, type VipKeeper } from './vip-keeper.js';

export { instanceEnv } from './instance-env.js';

/** File-system and port work the agent needs, as a port so the simulator can supply its own. */
export interface AgentHost {
  prepare(
    workload: string,
    epoch: number,
    spec: Assignment['spec'],
  ): Promise<{ runDir: string; cwd: string }>;
  allocatePorts(
    spec: Assignment['spec'],
    previous?: Record<string, number>,
  ): Promise<Record<string, number>>;
  loadState(): AgentState;
  saveState(state: AgentState): void;
}

export interface AgentCoreOptions {
  node: string;
  host: string;
  driver: Driver;
  probes: ProbeRunner;
  clock: Clock;
  logger: Logger;
  env: AgentHost;
  startupProbeIntervalMs?: number;
  startupTimeoutMs?: number;
  /**
   * The agent's staleness checks: refuse assignments older than an epoch already seen
   * (ARCHITECTURE.md section 3), and sets older than one applied. Only the simulator's deliberately
   * broken build turns them off, to prove that its checkers catch the result.
   */
  checkEpochs?: boolean;
  /** This node's volumes; an agent without them answers every volume request with an error. */
  volumes?: VolumeService;
  /** This node's replicated volumes (primaries and replicas), told every duty set taken. */
  replication?: VolumeDutyPort;
  /**
   * Cut off from the controller this long while a primary here holds operations, the agent
   * self-fences it and stops its instance (self-fence.ts). Default agentFenceTimeoutMsDefault.
   */
  fenceTimeoutMs?: number;
  /** This node's virtual IPs (vip.ts); without it, VIP endpoints get no address here. */
  vips?: VipManager;
  send(message: AgentMessage): void;
}

export class AgentCore {
  private readonly runners = new Map<string, InstanceRunner>();
  private readonly state: AgentState;
  private chain: Promise<void> = Promise.resolve();
  /** Store revision of the newest assignment set taken; older sets arrive late and are ignored. */
  private appliedRevision = 0;
  private reportSeq = 0;
  private readonly selfFence: SelfFence;
  private readonly vipKeeper: VipKeeper | undefined;

  constructor(private readonly options: AgentCoreOptions) {
    this.state = options.env.loadState();
    const fenceTimeoutMs = options.fenceTimeoutMs ?? agentFenceTimeoutMsDefault;
    this.selfFence = new SelfFence(fenceTimeoutMs, options.clock.now());
    if (options.vips !== undefined)
      this.vipKeeper = connectVips(options.vips, {
        clock: options.clock,
        logger: options.logger,
        fenceTimeoutMs,
        state: this.state,
        persist: () => this.persist(),
        silentMs: () => this.selfFence.silentMs(options.clock.now()),
        runners: () => this.runners.values(),
      });
  }

  /**
   * The controller answered a keep-alive (messages count by themselves): the session works, so
   * the fences it has not confirmed yet are sent again once they are due.
   */
  controllerHeard(): void {
    const now = this.options.clock.now();
    this.selfFence.heard(now);
    for (const report of this.selfFence.due(now))
      this.options.send({ type: 'volume-report', report });
  }

  get clusterId(): string | undefined {
    return this.state.clusterId;
  }

  /** Re-attaches to every instance recorded before a restart; none is relaunched here. */
  async recover(): Promise<void> {
    for (const [workload, saved] of Object.entries(this.state.instances)) {
      const runner = await this.makeRunner(
        workload,
        saved.epoch,
        saved.spec,
        saved.restartNonce,
        saved.ports,
        saved.handle,
      );
      const alive = await runner.recover();
      this.options.logger.log(
        'info',
        alive ? 're-attached to instance' : 'instance ended while the agent was away',
        {
          workload,
          epoch: saved.epoch,
          pid: saved.handle?.pid,
        },
      );
    }
    this.vipKeeper?.start();
  }

  /** The sequence number of the last instance report sent (hellos and heartbeats carry it). */
  get lastReportSeq(): number {
    return this.reportSeq;
  }

  /** The revision of the newest assignment set taken (heartbeats report it). */
  get assignmentsRevision(): number {
    return this.appliedRevision;
  }

  statuses(): InstanceStatus[] {
    return [...this.runners.values()].map((r) => this.withFenced(r.status()));
  }

  /** A status says whether its instance was stopped because its volume was fenced. */
  private withFenced(status: InstanceStatus): InstanceStatus {
    return this.state.fenced?.[status.workload] === status.epoch
      ? { ...status, fenced: true }
      : status;
  }

  handle(message: ControllerMessage): void {
    const now = this.options.clock.now();
    this.selfFence.heard(now);
    if (message.type === 'welcome') {
      if (this.state.clusterId === undefined) {
        this.state.clusterId = message.clusterId;
        this.persist();
      }
      // Fences the controller has not confirmed, delivered or not: it journals each once.
      for (const report of this.selfFence.due(now, true))
        this.options.send({ type: 'volume-report', report });
    } else if (message.type === 'assignments') {
      // Learn newer epochs at once, not when the set's turn comes: a start already queued behind
      // an earlier set must see them and not begin. Epochs only grow, so this holds even for a set
      // that arrives after a newer one (reordered) and is otherwise ignored below.
      if (this.options.checkEpochs !== false) {
        this.learnEpochs(message.epochs);
        this.learnEpochs(Object.fromEntries(message.assignments.map((a) => [a.workload, a.epoch])));
      }
      if (this.options.checkEpochs !== false && message.revision < this.appliedRevision) {
        this.options.logger.log('warn', 'ignored an assignment set older than one applied', {
          revision: message.revision,
          applied: this.appliedRevision,
        });
        return;
      }
      this.appliedRevision = message.revision;
      this.vipKeeper?.assigned(message.assignments);
      this.chain = this.chain
        .then(() => this.apply(message.assignments, message.epochs, message.volumes))
        .catch((err: unknown) =>
          this.options.logger.log('error', 'applying assignments failed', { error: String(err) }),
        );
    } else if (message.type === 'volume-request') {
      void this.volumeRequest(message.id, message.request);
    } else if (message.type === 'logs-request') {
      void this.logsRequest(message.id, message.request);
    } else if (message.type === 'fenced-taken') {
      this.selfFence.taken(message.volume, message.epoch);
    } else {
      this.options.logger.log('warn', 'controller reported an error', {
        code: message.code,
        message: message.message,
      });
    }
  }

  /** Answers with the last lines of an instance's output on this node; every failure is an answer. */
  private async logsRequest(id: number, request: LogsRequest): Promise<void> {
    const runner = this.runners.get(request.workload);
    const driver = this.options.driver;
    const refuse = (code: string, message: string) =>
      this.options.send({ type: 'logs-reply', id, ok: false, code, message });
    if (runner === undefined)
      return refuse(
        'CONTINUUM_ERR_NOT_FOUND',
        `no instance of ${request.workload} on ${this.options.node}`,
      );
    if (driver.logTail === undefined)
      return refuse('CONTINUUM_ERR_UNAVAILABLE', `the ${driver.name} driver keeps no output`);
    try {
      const tail = await driver.logTail(runner.runDir, {
        linesMax: request.linesMax,
        bytesMax: logTailBytesMax,
        lineCharsMax: logLineCharsMax,
      });
      this.options.send({
        type: 'logs-reply',
        id,
        ok: true,
        result: { epoch: runner.epoch, ...tail },
      });
    } catch (error) {
      refuse('CONTINUUM_ERR_DRIVER', `cannot read the output: ${String(error)}`.slice(0, 4096));
    }
  }

  /** Runs a volume operation on this node's engine and answers it; every failure is an answer. */
  private async volumeRequest(id: number, request: VolumeRequest): Promise<void> {
    const service = this.options.volumes;
    if (service === undefined) {
      this.options.send({
        type: 'volume-reply',
        id,
        ok: false,
        code: 'CONTINUUM_ERR_UNAVAILABLE',
        message: 'this agent serves no volumes',
      });
      return;
    }
    try {
      const result = await service.execute(request);
      this.options.send({ type: 'volume-reply', id, ok: true, result });
    } catch (error) {
      const code = isContinuumError(error) ? error.code : 'CONTINUUM_ERR_INTERNAL';
      const text = error instanceof Error ? error.message : String(error);
      if (!isContinuumError(error))
        this.options.logger.log('error', 'volume operation failed', {
          op: request.op,
          error: text,
        });
      this.options.send({
        type: 'volume-reply',
        id,
        ok: false,
        code,
        message: text.slice(0, 4096),
      });
    }
  }

  /** Resolves once every assignment set received so far has been applied. */
  idle(): Promise<void> {
    return this.chain;
  }

  /**
   * A report of this node's volume server about a primary it runs: passed on to the controller; a
   * fenced primary's instance is stopped at once, and a primary that has held operations past the
   * fence timeout while no controller is heard is self-fenced (ARCHITECTURE.md section 3, item 5).
   */
  volumeReport(report: PrimaryReportMessage): void {
    const reason = this.selfFence.reasonFor(report, this.options.clock.now());
    // A report queued before the fence took effect finds its instances stopped already.
    if (reason !== undefined && !this.stoppedFenced(report.volume, report.epoch)) {
      this.options.logger.log('warn', 'self-fencing: cut off from the controller', {
        volume: report.volume,
        epoch: report.epoch,
        reason,
      });
      // The instance stops here even if the volume server cannot be reached to fence the primary.
      this.options.replication?.selfFence(report.volume, report.epoch, reason);
      this.stopFenced(report.volume, report.epoch, reason);
    }
    this.selfFence.keepUntilTaken(report, this.options.clock.now());
    this.options.send({ type: 'volume-report', report });
    if (report.kind === 'fenced') this.stopFenced(report.volume, report.epoch, report.reason);
  }

  /** Whether an instance using `volume` at `epoch` was stopped for fencing. */
  private stoppedFenced(volume: string, epoch: number): boolean {
    return [...this.runners].some(
      ([workload, runner]) =>
        runner.epoch === epoch &&
        this.state.fenced?.[workload] === epoch &&
        runner.spec.volumes.some((v) => v.name === volume),
    );
  }

  /** Stops the instances using `volume` at `epoch`; none of them starts again at that epoch. */
  private stopFenced(volume: string, epoch: number, reason: string): void {
    for (const [workload, runner] of this.runners) {
      const uses = runner.spec.volumes.some((v) => v.name === volume);
      if (!uses || runner.epoch !== epoch || this.state.fenced?.[workload] === epoch) continue;
      this.state.fenced = { ...this.state.fenced, [workload]: epoch };
      this.persist();
      this.vipKeeper?.refresh();
      this.options.logger.log('warn', 'volume fenced: stopping its instance', {
        workload,
        volume,
        epoch,
        reason,
      });
      this.chain = this.chain
        .then(() => runner.stop(`volume ${volume} is fenced: ${reason}`))
        .catch((err: unknown) =>
          this.options.logger.log('error', 'stopping a fenced instance failed', {
            workload,
            error: String(err),
          }),
        );
    }
  }

  private async apply(
    assignments: Assignment[],
    epochs: Record<string, number>,
    duties: VolumeDutyMessage[] = [],
  ): Promise<void> {
    if (this.options.checkEpochs !== false) this.learnEpochs(epochs);
    const wanted = new Map<string, Assignment>();
    // A stale assignment comes from a view older than this node's: it neither starts anything nor
    // stops what runs at the newer epoch.
    const stale = new Set<string>();
    for (const a of assignments) {
      const highest = this.state.highestEpochs[a.workload] ?? 0;
      if (a.epoch < highest && this.options.checkEpochs !== false) {
        stale.add(a.workload);
        this.options.send({
          type: 'reject',
          workload: a.workload,
          epoch: a.epoch,
          code: 'CONTINUUM_ERR_STALE_EPOCH',
          message: `epoch ${a.epoch} is older than ${highest}, already seen here`,
        });
        continue;
      }
      if (a.epoch > highest) {
        this.state.highestEpochs[a.workload] = a.epoch;
        this.persist();
      }
      wanted.set(a.workload, a);
    }
    for (const [workload, runner] of [...this.runners]) {
      const a = wanted.get(workload);
      if ((a !== undefined && a.epoch === runner.epoch) || stale.has(workload)) continue;
      await runner.stop(
        a === undefined ? 'no longer assigned to this node' : `superseded by epoch ${a.epoch}`,
      );
      this.runners.delete(workload);
      delete this.state.instances[workload];
      if (this.state.fenced !== undefined) delete this.state.fenced[workload];
      this.persist();
    }
    // After the stops (an old primary's instance unmounts first), before the starts (a new
    // primary is opened before its instance mounts it).
    this.options.replication?.setDuties(duties);
    for (const a of wanted.values()) {
      if (this.state.fenced?.[a.workload] === a.epoch) continue;
      await this.ensure(a);
    }
  }

  private learnEpochs(epochs: Record<string, number>): void {
    let changed = false;
    for (const [workload, epoch] of Object.entries(epochs)) {
      if (epoch > (this.state.highestEpochs[workload] ?? 0)) {
        this.state.highestEpochs[workload] = epoch;
        changed = true;
      }
    }
    if (changed) this.persist();
  }

  private async ensure(a: Assignment): Promise<void> {
    let runner = this.runners.get(a.workload);
    if (runner === undefined) {
      const ports = await this.options.env.allocatePorts(a.spec);
      runner = await this.makeRunner(a.workload, a.epoch, a.spec, a.restartNonce, ports, undefined);
      this.persist();
      await runner.start();
      return;
    }
    runner.updateSpec(a.spec);
    if (a.restartNonce > runner.restartNonce) await runner.restartFor(a.restartNonce);
    else if (!runner.running && !runner.failed && runner.status().state !== 'restarting')
      await runner.start();
  }

  private async makeRunner(
    workload: string,
    epoch: number,
    spec: Assignment['spec'],
    restartNonce: number,
    ports: Record<string, number>,
    handle: InstanceHandle | undefined,
  ): Promise<InstanceRunner> {
    const { runDir, cwd } = await this.options.env.prepare(workload, epoch, spec);
    const env = instanceEnv(this.options.node, workload, epoch, spec, ports);
    const runner = new InstanceRunner(
      {
        node: this.options.node,
        host: this.options.host,
        driver: this.options.driver,
        probes: this.options.probes,
        clock: this.options.clock,
        logger: this.options.logger.child({ workload }),
        startupProbeIntervalMs: this.options.startupProbeIntervalMs ?? 50,
        startupTimeoutMs: this.options.startupTimeoutMs ?? 30_000,
        report: (status) => {
          this.options.send({
            type: 'instance',
            seq: ++this.reportSeq,
            status: this.withFenced(status),
          });
          this.vipKeeper?.refresh();
        },
        isCurrent: (e) =>
          this.options.checkEpochs === false || e >= (this.state.highestEpochs[workload] ?? 0),
        changed: () => this.persist(),
      },
      {
        workload,
        epoch,
        spec,
        restartNonce,
        ports,
        runDir,
        cwd,
        env,
        ...(handle === undefined ? {} : { handle }),
      },
    );
    this.runners.set(workload, runner);
    return runner;
  }

  private persist(): void {
    for (const [workload, runner] of this.runners) {
      this.state.instances[workload] = {
        epoch: runner.epoch,
        restartNonce: runner.restartNonce,
        spec: runner.spec,
        ports: runner.ports,
        ...(runner.handle === undefined ? {} : { handle: runner.handle }),
      };
    }
    this.options.env.saveState(this.state);
  }

  /** Agent shutdown: timers stop, instances keep running for the next agent to re-attach. */
  detach(): void {
    for (const runner of this.runners.values()) runner.detach();
    this.vipKeeper?.close();
    this.options.vips?.close();
  }
}
