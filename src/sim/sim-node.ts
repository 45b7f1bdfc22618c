// One simulated host: an agent (the real AgentCore) with the fake driver, a disk that survives
// crashes (the agent's state file), its own clock (drift, hangs), and its session to the controller.
import { AgentCore, type AgentHost } from '../agent/agent.js';
import type { AgentState } from '../agent/agent-state.js';
import type { ProbeRunner } from '../agent/probes/probe.js';
import { silentLogger } from '../core/ports.js';
import {
  agentProtocolVersion,
  type AgentMessage,
  type ControllerMessage,
} from '../core/protocol.js';
import type { NodeRole } from '../core/spec.js';
import type { FakeClock } from './fake-clock.js';
import { FakeDriver, type ProcessTable } from './fake-driver.js';
import { NodeClock } from './node-clock.js';
import type { SimLinkFabric } from './sim-replication-link.js';
import { SimVolumes } from './sim-volumes.js';
import type { SeededRng } from './rng.js';

export interface SimNodeSpec {
  name: string;
  site: string;
  role: NodeRole;
  cpu: number;
  memoryMiB: number;
}

/** What the node needs of the world: a way to open a session to the controller. */
export interface SessionOpener {
  open(node: SimNode): SimSessionEnd | undefined;
  /** Whether the transport's keep-alive (WebSocket ping) still gets answers. */
  alive(node: SimNode): boolean;
  /** The agent gives up on a session whose keep-alive went unanswered. */
  abandon(node: SimNode, session: SimSessionEnd): void;
}

/**
 * The agents' self-fence timeout in the simulation: shorter than the longest partitions and hangs
 * the faults draw (4 s), so that seeds exercise it.
 */
export const simFenceTimeoutMs = 1500;

/** Keep-alive of the session transport: a ping per interval, given up after the timeout. */
export const sessionPingIntervalMs = 1000;
export const sessionPingTimeoutMs = 3000;

/** The agent's end of a session: send, and whether it is still open. */
export interface SimSessionEnd {
  send(message: AgentMessage): void;
  readonly open: boolean;
}

export class SimNode {
  readonly clock: NodeClock;
  readonly driver: FakeDriver;
  readonly disk: { state?: AgentState } = {};
  core: AgentCore | undefined;
  session: SimSessionEnd | undefined;
  alive = false;
  /** The node's volume server: outlives an agent restart, not a crash. */
  readonly volumes: SimVolumes;
  /** World time of the last power loss (0: never). */
  lastCrashAt = 0;
  /**
   * The 'fenced' reports this node's agent process made (sent or kept for its next session): each
   * must reach the journal once. An agent that dies loses those it kept, so they are forgotten here.
   */
  readonly fencedReports: { volume: string; epoch: number }[] = [];
  /** The newest epoch per workload delivered to this node by the controller (what it was told, whatever the agent kept). */
  readonly told = new Map<string, number>();
  private heartbeatIntervalMs = 200;
  private heartbeatSeq = 0;
  private reconnectDelayMs = 100;

  constructor(
    readonly spec: SimNodeSpec,
    private readonly world: {
      clock: FakeClock;
      table: ProcessTable;
      sessions: SessionOpener;
      checkEpochs: boolean;
      fabric: SimLinkFabric;
      rng: SeededRng;
      unsafeAckBeforeIsr: boolean;
    },
    drift: { ppm: number; offsetMs: number },
  ) {
    this.clock = new NodeClock(world.clock, drift.ppm, drift.offsetMs);
    this.volumes = new SimVolumes({
      node: spec.name,
      // The volume server's own timers: an agent restart does not stop them, a crash does.
      clock: this.clock.scope(),
      rng: world.rng,
      fabric: world.fabric,
      report: (report) => this.core?.volumeReport(report),
      unsafeAckBeforeIsr: world.unsafeAckBeforeIsr,
    });
    this.driver = new FakeDriver({
      clock: this.clock,
      table: world.table,
      node: spec.name,
      deliver: (callback) => this.clock.run(callback),
    });
  }

  private host(): AgentHost {
    return {
      prepare: (workload) =>
        Promise.resolve({
          runDir: `/sim/${this.spec.name}/run/${workload}`,
          cwd: `/sim/${this.spec.name}/work/${workload}`,
        }),
      allocatePorts: (spec) =>
        Promise.resolve(
          Object.fromEntries(spec.endpoints.map((e) => [e.name, this.world.table.allocatePort()])),
        ),
      loadState: () => structuredClone(this.disk.state ?? { highestEpochs: {}, instances: {} }),
      saveState: (state) => (this.disk.state = structuredClone(state)),
    };
  }

  private probes(): ProbeRunner {
    return {
      run: (_probe, target) => {
        const port = Object.values(target.ports)[0];
        const process = port === undefined ? undefined : this.world.table.byPort(port);
        const ok = process !== undefined && process.healthy;
        return Promise.resolve(
          ok
            ? { ok, durationMs: 1 }
            : {
                ok,
                durationMs: 1,
                error: process ? 'unhealthy' : 'refused',
                answered: process !== undefined,
              },
        );
      },
    };
  }

  /** Starts the agent process (at boot, or after an agent restart): re-attach, then connect. */
  async boot(): Promise<void> {
    // A boot already happened (the heal at the end of a run boots what is down, and the boot a
    // crash scheduled may come after it): a second agent on one node is not a fault we inject.
    if (this.alive) return;
    this.alive = true;
    if (this.volumes.runner === undefined) this.volumes.start();
    const core = new AgentCore({
      node: this.spec.name,
      host: '127.0.0.1',
      driver: this.driver,
      probes: this.probes(),
      clock: this.clock,
      logger: silentLogger,
      env: this.host(),
      checkEpochs: this.world.checkEpochs,
      replication: this.volumes,
      fenceTimeoutMs: simFenceTimeoutMs,
      send: (message) => {
        if (message.type === 'volume-report' && message.report.kind === 'fenced')
          this.fencedReports.push({ volume: message.report.volume, epoch: message.report.epoch });
        this.session?.send(message);
      },
    });
    this.core = core;
    await core.recover();
    this.connect();
  }

  hello(): AgentMessage {
    return {
      type: 'hello',
      protocolVersion: agentProtocolVersion,
      node: this.spec.name,
      site: this.spec.site,
      role: this.spec.role,
      labels: {},
      address: '127.0.0.1',
      capacity: { cpu: this.spec.cpu, memoryMiB: this.spec.memoryMiB },
      inventory: {
        hostname: this.spec.name,
        cpuCount: this.spec.cpu,
        memoryMiB: this.spec.memoryMiB,
        agentVersion: 'sim',
        agentPid: 1,
      },
      ...(this.core?.clusterId === undefined ? {} : { clusterId: this.core.clusterId }),
      instances: this.core?.statuses() ?? [],
      ...(this.core === undefined ? {} : { reportSeq: this.core.lastReportSeq }),
    };
  }

  private connect(): void {
    if (!this.alive) return;
    const session = this.world.sessions.open(this);
    if (session === undefined) {
      this.clock.setTimeout(() => this.connect(), this.reconnectDelayMs);
      this.reconnectDelayMs = Math.min(this.reconnectDelayMs * 2, 1000);
      return;
    }
    this.reconnectDelayMs = 100;
    this.session = session;
    session.send(this.hello());
    this.scheduleHeartbeat(session);
    this.schedulePing(session, this.world.clock.now());
  }

  private schedulePing(session: SimSessionEnd, answeredAt: number): void {
    this.clock.setTimeout(() => {
      if (!this.alive || this.session !== session || !session.open) return;
      const now = this.world.clock.now();
      const alive = this.world.sessions.alive(this);
      if (alive) this.core?.controllerHeard();
      const answered = alive ? now : answeredAt;
      if (now - answered >= sessionPingTimeoutMs) {
        this.world.sessions.abandon(this, session);
        return;
      }
      this.schedulePing(session, answered);
    }, sessionPingIntervalMs);
  }

  private scheduleHeartbeat(session: SimSessionEnd): void {
    this.clock.setTimeout(() => {
      if (!this.alive || this.session !== session || !session.open) return;
      session.send({
        type: 'heartbeat',
        seq: ++this.heartbeatSeq,
        usage: { cpuPercent: 10, memoryUsedMiB: 100, load1: 0.1 },
        ...(this.core === undefined
          ? {}
          : {
              assignmentsRevision: this.core.assignmentsRevision,
              reportSeq: this.core.lastReportSeq,
            }),
      });
      this.scheduleHeartbeat(session);
    }, this.heartbeatIntervalMs);
  }

  /** A message from the controller, run on this node's clock (late if the node hangs). */
  receive(session: SimSessionEnd, message: ControllerMessage): void {
    this.clock.run(() => {
      if (!this.alive || this.session !== session) return;
      if (message.type === 'welcome') this.heartbeatIntervalMs = message.heartbeatIntervalMs;
      if (message.type === 'assignments') {
        const epochs = [
          ...Object.entries(message.epochs),
          ...message.assignments.map((a) => [a.workload, a.epoch] as const),
        ];
        for (const [workload, epoch] of epochs)
          this.told.set(workload, Math.max(epoch, this.told.get(workload) ?? 0));
      }
      this.core?.handle(message);
    });
  }

  /** The controller closed the session (or it broke): reconnect, as the real agent does. */
  sessionClosed(session: SimSessionEnd): void {
    this.clock.run(() => {
      if (this.session !== session) return;
      this.session = undefined;
      if (this.alive) this.clock.setTimeout(() => this.connect(), this.reconnectDelayMs);
    });
  }

  /** Power loss: the agent and every process on the node die; nobody hears of it. */
  crash(): void {
    this.alive = false;
    this.lastCrashAt = this.world.clock.now();
    this.fencedReports.length = 0;
    this.core?.detach();
    this.core = undefined;
    this.session = undefined;
    this.clock.reset();
    this.volumes.crash();
    for (const process of this.world.table.live()) {
      if (process.node === this.spec.name)
        this.world.table.end(
          process.pid,
          { code: null, signal: 'SIGKILL', at: this.world.clock.now() },
          false,
        );
    }
  }

  /** SIGKILL of the agent alone: its instances keep running, and the next agent re-attaches. */
  killAgent(): void {
    this.alive = false;
    this.fencedReports.length = 0;
    this.core?.detach();
    this.core = undefined;
    this.session = undefined;
    this.clock.reset({ scopes: false });
  }
}
