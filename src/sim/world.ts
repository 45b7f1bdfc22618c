// The simulated cluster: the real controller (reconcile, scheduler, failover, epochs) on the memory
// store, N simulated nodes running the real agent core, and the network between them, all on one
// FakeClock. Nothing here reads the real clock, real randomness or real sockets.
import { applySpec } from '../controller/actions.js';
import type { AgentChannel } from '../controller/agent-sessions.js';
import { controllerConfig, type ControllerConfig } from '../controller/config.js';
import { Controller } from '../controller/controller.js';
import { isContinuumError } from '../core/errors.js';
import type { JournalEvent, WorkloadRecord } from '../core/model.js';
import { silentLogger } from '../core/ports.js';
import type { AgentMessage } from '../core/protocol.js';
import type { ClusterSpecInput } from '../core/spec.js';
import { MemoryStore } from '../store/memory.js';
import { FakeClock } from './fake-clock.js';
import { ProcessTable } from './fake-driver.js';
import { SimNetwork } from './network.js';
import { SeededRng } from './rng.js';
import { SimNode, type SimNodeSpec, type SimSessionEnd } from './sim-node.js';
import { SimControllerSlot } from './sim-controllers.js';
import { SimLinkFabric } from './sim-replication-link.js';

interface SimSession {
  node: SimNode;
  slot: SimControllerSlot;
  end: SimSessionEnd;
  channel: AgentChannel;
  closed: boolean;
}

export interface WorldOptions {
  seed: number;
  nodes: SimNodeSpec[];
  spec: ClusterSpecInput;
  config?: Partial<ControllerConfig>;
  /** Off only in the deliberately broken build that proves the checkers work. */
  checkEpochs?: boolean;
  /** Largest clock drift between nodes, in parts per million. */
  driftPpmMax?: number;
  /** A deliberately broken rule of replication, to prove that the checkers catch it. */
  brokenRule?: BrokenRule;
  /** Controllers; more than one elect a leader over the store (default 1). */
  controllers?: number;
}

export type BrokenRule = 'ack-before-isr' | 'promote-outdated';

export class World {
  readonly clock = new FakeClock({ startMs: 1_700_000_000_000 });
  readonly rng: SeededRng;
  readonly network: SimNetwork;
  readonly table = new ProcessTable();
  readonly store: MemoryStore;
  readonly nodes = new Map<string, SimNode>();
  readonly trace: string[] = [];
  readonly violations: string[] = [];
  readonly events: JournalEvent[] = [];
  /** The store's current epoch per workload, mirrored from its change feed for the checkers. */
  readonly storeEpochs = new Map<string, number>();
  readonly workloads = new Map<string, WorkloadRecord>();
  /** Replication links between the nodes' volume servers. */
  readonly fabric: SimLinkFabric;
  /** The controller processes; with several, they elect a leader. */
  readonly controllerSlots: SimControllerSlot[];
  private readonly sessions = new Set<SimSession>();
  private readonly sessionRng: SeededRng;
  private readonly config: ControllerConfig;

  constructor(readonly options: WorldOptions) {
    this.rng = new SeededRng(options.seed);
    this.network = new SimNetwork(this.clock, this.rng.fork('network'));
    this.store = new MemoryStore({ clock: this.clock });
    this.config = controllerConfig(options.config);
    const controllerCount = options.controllers ?? 1;
    this.controllerSlots = Array.from(
      { length: controllerCount },
      (_, i) =>
        new SimControllerSlot(
          controllerCount === 1 ? 'controller' : `controller-${i + 1}`,
          this.clock,
        ),
    );
    this.sessionRng = this.rng.fork('sessions');
    this.fabric = new SimLinkFabric({
      network: this.network,
      clock: this.clock,
      runOn: (node, callback) => {
        const target = this.nodes.get(node);
        if (target === undefined) callback();
        else target.clock.run(callback);
      },
    });
    const driftRng = this.rng.fork('drift');
    const volumesRng = this.rng.fork('volumes');
    const driftPpmMax = options.driftPpmMax ?? 0;
    for (const spec of options.nodes) {
      const drift = {
        ppm: driftPpmMax === 0 ? 0 : driftRng.between(-driftPpmMax, driftPpmMax),
        offsetMs: driftPpmMax === 0 ? 0 : driftRng.between(-500, 500),
      };
      this.nodes.set(
        spec.name,
        new SimNode(
          spec,
          {
            clock: this.clock,
            table: this.table,
            sessions: {
              open: (n) => this.openSession(n),
              alive: (n) => this.sessionAlive(n),
              abandon: (n, end) => {
                for (const session of this.sessions)
                  if (session.node === n && session.end === end) this.breakSession(session, false);
              },
            },
            checkEpochs: options.checkEpochs ?? true,
            fabric: this.fabric,
            rng: volumesRng.fork(spec.name),
            unsafeAckBeforeIsr: options.brokenRule === 'ack-before-isr',
          },
          drift,
        ),
      );
    }
    this.table.onStartRequested = (start) => {
      // The store must have held the epoch (a later one may exist: a node cut off from the
      // controller restarts its own instance in place); and no agent starts an epoch older than
      // one it has been told of.
      const held = this.storeEpochs.get(start.workload) ?? 0;
      if (start.epoch > held) {
        this.violate(
          `${start.node} started ${start.workload} at epoch ${start.epoch}, which the store never held (it holds ${held})`,
        );
      }
      const told = this.nodes.get(start.node)?.told.get(start.workload) ?? 0;
      if (start.epoch < told) {
        const others = this.table.live().filter((p) => p.workload === start.workload);
        const double =
          others.length > 0
            ? `double-active (pid ${others.map((p) => `${p.pid}@${p.epoch}`).join(', ')} live): `
            : '';
        this.violate(
          `${double}${start.node} started ${start.workload} at epoch ${start.epoch} after being told of epoch ${told}`,
        );
      }
    };
    this.table.onStart = (process) => {
      this.note(`start ${process.workload}@${process.epoch} on ${process.node} pid ${process.pid}`);
    };
    this.store.watch('workloads/', {}, (batch) => {
      for (const change of batch.changes) {
        if (change.type !== 'put') continue;
        const record = change.entry.value as WorkloadRecord;
        this.checkPromotion(this.workloads.get(record.name), record);
        const previous = this.storeEpochs.get(record.name) ?? 0;
        if (record.epoch < previous)
          this.violate(`the epoch of ${record.name} went down from ${previous} to ${record.epoch}`);
        this.storeEpochs.set(record.name, record.epoch);
        this.workloads.set(record.name, record);
      }
      for (const event of batch.events) {
        this.events.push(event);
        this.trace.push(
          `${event.at - 1_700_000_000_000} ${event.kind} ${event.subject.name}: ${event.message}`,
        );
      }
    });
  }

  /** Only a copy in the ISR may become the primary (ARCHITECTURE.md section 3, item 3). */
  private checkPromotion(before: WorkloadRecord | undefined, after: WorkloadRecord): void {
    if (before?.volumes === undefined || after.node === null || after.node === before.node) return;
    for (const [volume, record] of Object.entries(before.volumes)) {
      if (!record.isr.includes(after.node))
        this.violate(
          `${after.name} moved to ${after.node}, which held no in-sync copy of ${volume} (in sync: ${record.isr.join(', ')})`,
        );
    }
  }

  now(): number {
    return this.clock.now() - 1_700_000_000_000;
  }

  note(line: string): void {
    this.trace.push(`${this.now()} # ${line}`);
  }

  violate(message: string): void {
    this.violations.push(`t=${this.now()}ms: ${message}`);
    this.trace.push(`${this.now()} !! ${message}`);
  }

  async start(): Promise<void> {
    for (const slot of this.controllerSlots) await this.startController(slot);
    while (this.controller === undefined) await this.run(100);
    await applySpec(this.controller, this.options.spec, 'sim');
    for (const node of this.nodes.values()) await node.boot();
    await this.settle();
  }

  /** Every controller address, for faults that cut nodes off from the control plane. */
  get controllerAddresses(): string[] {
    return this.controllerSlots.map((slot) => slot.address);
  }

  /** The controller that leads (the only one, while it runs), if any. */
  get controller(): Controller | undefined {
    return this.leaderSlot()?.controller;
  }

  private leaderSlot(): SimControllerSlot | undefined {
    if (this.controllerSlots.length === 1) {
      const only = this.controllerSlots[0]!;
      return only.controller === undefined ? undefined : only;
    }
    return this.controllerSlots.find((slot) => slot.controller?.isLeader === true && !slot.hung);
  }

  async startController(slot?: SimControllerSlot): Promise<void> {
    const target = slot ?? this.controllerSlots.find((s) => s.controller === undefined);
    if (target === undefined || target.controller !== undefined) return;
    await target.start(
      this.store,
      {
        config: this.config,
        logger: silentLogger,
        unsafePromoteOutdated: this.options.brokenRule === 'promote-outdated',
        newClusterId: () => `sim-cluster-${this.options.seed}`,
      },
      this.controllerSlots.length > 1,
    );
  }

  /** Starts every controller that is down. */
  async startControllers(): Promise<void> {
    for (const slot of this.controllerSlots)
      if (slot.controller === undefined) await this.startController(slot);
  }

  /**
   * A controller process dies (the leader, when one leads): its memory (heartbeats, sessions) is
   * lost; the store survives. Returns the slot, to start it again later.
   */
  async crashController(): Promise<SimControllerSlot | undefined> {
    const slot = this.leaderSlot() ?? this.controllerSlots.find((s) => s.controller !== undefined);
    if (slot === undefined) return undefined;
    for (const session of this.sessions)
      if (session.slot === slot) this.breakSession(session, true);
    await slot.crash();
    return slot;
  }

  /**
   * The leading controller freezes (SIGSTOP, a long pause) for durationMs, then resumes: at once,
   * or as its next write leaves (that write then reaches the store late).
   */
  hangController(durationMs: number, atNextWrite: boolean): void {
    const slot = this.leaderSlot();
    if (slot === undefined || this.controllerSlots.length === 1) return;
    this.note(`${slot.address} hangs${atNextWrite ? ' at its next write' : ''}`);
    if (atNextWrite) slot.hangAtNextWrite(durationMs);
    else slot.hang(durationMs);
  }

  /** The leading controller's store writes take durationMs to answer (SimControllerSlot). */
  stallLeaderWrites(durationMs: number): void {
    const slot = this.leaderSlot();
    if (slot === undefined) throw new Error('stallLeaderWrites: no controller leads now');
    this.note(`${slot.address}'s store writes stall for ${durationMs} ms`);
    slot.stallWrites(durationMs);
  }

  /** The node's session is with a controller that runs, answers and is reachable. */
  private sessionAlive(node: SimNode): boolean {
    for (const session of this.sessions) {
      if (session.node !== node || session.closed) continue;
      const { slot } = session;
      return (
        slot.controller !== undefined &&
        !slot.hung &&
        this.network.reachable(node.spec.name, slot.address)
      );
    }
    return false;
  }

  /** A node dials a controller (any that runs and is reachable; a follower refuses its hello). */
  private openSession(node: SimNode): SimSessionEnd | undefined {
    const candidates = this.controllerSlots.filter(
      (slot) =>
        slot.controller !== undefined && this.network.reachable(node.spec.name, slot.address),
    );
    if (candidates.length === 0) return undefined;
    const slot = candidates.length === 1 ? candidates[0]! : this.sessionRng.pick(candidates);
    const controller = slot.controller!;
    const controllerAddress = slot.address;
    let chain: Promise<unknown> = Promise.resolve();
    let nodeName: string | undefined;
    const session: SimSession = {
      node,
      slot,
      closed: false,
      end: undefined as unknown as SimSessionEnd,
      channel: undefined as unknown as AgentChannel,
    };
    session.channel = {
      send: (message) => {
        if (session.closed) return;
        const ok = this.network.send(controllerAddress, node.spec.name, () =>
          node.receive(session.end, message),
        );
        if (!ok) this.breakSession(session, false);
      },
      close: () => this.breakSession(session, false),
    };
    session.end = {
      get open() {
        return !session.closed;
      },
      send: (message: AgentMessage) => {
        if (session.closed) return;
        const ok = this.network.send(node.spec.name, controllerAddress, () => {
          if (session.closed || slot.controller !== controller) return;
          // As the real adapter does: contact on arrival (once a hung controller runs again).
          slot.clock.run(() => {
            const name = nodeName;
            if (!session.closed && slot.controller === controller && name !== undefined)
              controller.agentArrived(session.channel, name);
          });
          chain = chain.then(async () => {
            // A hung controller reads the message when it resumes.
            await new Promise<void>((resolve) => slot.clock.run(resolve));
            if (session.closed || slot.controller !== controller) return;
            try {
              nodeName = await controller.agentMessage(session.channel, nodeName, message);
            } catch (err) {
              if (!isContinuumError(err)) throw err;
              this.breakSession(session, false);
            }
          });
        });
        if (!ok) this.breakSession(session, false);
      },
    };
    this.sessions.add(session);
    return session.end;
  }

  /** Ends a session: both sides hear of it after a short delay, unless a side is dead. */
  private breakSession(session: SimSession, controllerDied: boolean): void {
    if (session.closed) return;
    session.closed = true;
    this.sessions.delete(session);
    const controller = session.slot.controller;
    this.clock.setTimeout(() => {
      if (!controllerDied) controller?.agentDisconnected(session.channel, session.node.spec.name);
      session.node.sessionClosed(session.end);
    }, 5);
  }

  /** Closes the sessions of a node whose agent died (the kernel resets its connections). */
  closeSessionsOf(node: string): void {
    for (const session of [...this.sessions])
      if (session.node.spec.name === node) this.breakSession(session, false);
  }

  /** Runs the simulation for ms of simulated time, letting every chain of promises finish at each step. */
  async run(ms: number, check?: () => void): Promise<void> {
    const until = this.clock.now() + ms;
    for (;;) {
      const next = this.clock.nextDueAtMs();
      if (next === undefined || next > until) break;
      this.clock.advanceTo(next);
      await this.settle();
      check?.();
    }
    this.clock.advanceTo(until);
    await this.settle();
  }

  /** Drains the microtask queue (every pending promise chain) without moving simulated time. */
  async settle(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
  }

  async close(): Promise<void> {
    for (const slot of this.controllerSlots) await slot.crash();
    for (const node of this.nodes.values()) node.core?.detach();
    await this.store.close();
  }
}
