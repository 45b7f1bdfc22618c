// The controller core: the level-based reconcile loop, agent sessions and instance reports,
// independent of HTTP and WebSocket (the adapters in api/ and server.ts call it; the simulator
// drives it directly). All decisions go through one serialized applier as conditional writes;
// assignments are sent only after the write that raised the epoch has committed. With several
// controllers (options.leadership) only the elected leader reconciles and takes agent sessions,
// and every write it makes is conditional on still holding the leader key (leader-guard.ts).
import { ContinuumError } from '../core/errors.js';
import { keys, type ClusterMeta, type InstanceRecord, type RouteTable } from '../core/model.js';
import type { Clock, Logger } from '../core/ports.js';
import {
  agentProtocolVersion,
  type AgentHello,
  type AgentMessage,
  type ControllerMessage,
  type LogsRequest,
  type LogsResult,
} from '../core/protocol.js';
import type { VolumeRequest, VolumeResult } from '../core/volumes.js';
import type { StateStore } from '../store/port.js';
import { AgentSessions, type AgentChannel } from './agent-sessions.js';
import type { ControllerConfig } from './config.js';
import { decide } from './failover/decide.js';
import { LeaderGuard, notLeaderError } from './leader-guard.js';
import { Leadership } from './leadership.js';
import { decisionTxn } from './reconcile/apply-decision.js';
import { readState, type ClusterState } from './reconcile/state.js';
import { dutiesByNode } from './replication/duties.js';
import { upsertNode, writeInstance, type AgentMessageStatus } from './agent-reports.js';
import { journalStalledResyncs, volumeReport, type ResyncView } from './replication/reports.js';
import { assignmentsByNode, epochsByNode, handoffWaits, routesOf } from './views.js';
import { logsRpc, volumeRpc, type AgentRpc } from './agent-rpc.js';

export interface ControllerOptions {
  store: StateStore;
  clock: Clock;
  config: ControllerConfig;
  logger: Logger;
  controllerId: string;
  /** Makes the cluster id at first start (the shell passes randomUUID). */
  newClusterId: () => string;
  /** The simulator's deliberately broken build only (failover/decide.ts DecideOptions). */
  unsafePromoteOutdated?: boolean;
  /**
   * Elect a leader among the controllers sharing this store (etcd). Without it this controller
   * leads at once, as the only one (the SQLite store of one host).
   */
  leadership?: { url: string; leaseTtlMs?: number };
}

export class Controller {
  readonly sessions = new AgentSessions();
  readonly store: StateStore;
  readonly clock: Clock;
  readonly config: ControllerConfig;
  readonly logger: Logger;
  readonly controllerId: string;
  clusterId = '';
  startedAt = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private timer: object | undefined;
  private stopped = false;
  private routeTable: RouteTable = { revision: 0, routes: [] };
  private encodedRoutes = '';
  private readonly routeListeners = new Set<(table: RouteTable) => void>();
  private readonly newClusterId: () => string;
  private readonly unsafePromoteOutdated: boolean;
  private cached: ClusterState | undefined;
  private cacheGeneration = 0;
  /** What the last publish was computed from, so an unchanged pass sends nothing. */
  private published: { state?: ClusterState; sessionsVersion: number } = { sessionsVersion: -1 };
  private readonly watches: { cancel(): void }[] = [];
  /** Resyncs in progress, as their primaries report them (replication/reports.ts). */
  readonly resyncs = new Map<string, ResyncView>();
  /** Volume operations forwarded to the agent of the node that holds the volume. */
  readonly volumes: AgentRpc<VolumeRequest, VolumeResult>;
  /** The recent output of instances, read by their agents (GET /v1/workloads/:name/logs). */
  readonly logs: AgentRpc<LogsRequest, LogsResult>;
  readonly leadership: Leadership | undefined;
  /** When this controller last became the leader (its start, without leadership). */
  private leaderSince = 0;
  /** When a pass found the previous one far too long ago: this process was paused until then. */
  private resumedAt = 0;
  /** The watchdog that notices pauses of this process (see noticePause). */
  private watchdog: object | undefined;
  /** Writes the store refused because this controller no longer held the leader key. */
  writesRefusedNotLeader = 0;

  constructor(options: ControllerOptions) {
    this.clock = options.clock;
    if (options.leadership === undefined) {
      this.store = options.store;
      this.leadership = undefined;
    } else {
      const leadership = new Leadership({
        store: options.store,
        clock: options.clock,
        logger: options.logger,
        controllerId: options.controllerId,
        url: options.leadership.url,
        ...(options.leadership.leaseTtlMs === undefined
          ? {}
          : { ttlMs: options.leadership.leaseTtlMs }),
        onElected: () => void this.elected(),
        onDeposed: (reason) => this.deposed(reason),
      });
      this.leadership = leadership;
      this.store = new LeaderGuard(options.store, {
        revision: () => leadership.revision,
        leaderUrl: () => this.leaderUrl(),
        deposed: (reason) => leadership.deposedByStore(reason),
        refused: () => this.writesRefusedNotLeader++,
      });
    }
    const send = (node: string, message: ControllerMessage) => this.sessions.send(node, message);
    this.volumes = volumeRpc({ clock: options.clock, send });
    this.logs = logsRpc({ clock: options.clock, send });
    this.config = options.config;
    this.logger = options.logger;
    this.controllerId = options.controllerId;
    this.newClusterId = options.newClusterId;
    this.unsafePromoteOutdated = options.unsafePromoteOutdated ?? false;
  }

  async start(): Promise<void> {
    this.startedAt = this.clock.now();
    this.startWatchdog();
    for (const prefix of [keys.prefixes.nodes, keys.prefixes.workloads, keys.prefixes.instances]) {
      this.watches.push(
        this.store.watch(prefix, {}, (batch) => {
          if (batch.changes.length > 0) this.invalidate();
        }),
      );
    }
    if (this.leadership === undefined) {
      await this.takeOffice('started');
      return;
    }
    this.clusterId = (await this.store.get<ClusterMeta>(keys.cluster))?.value.clusterId ?? '';
    await this.leadership.start();
  }

  /** True while this controller may decide: always without leadership, else while elected. */
  get isLeader(): boolean {
    return this.leadership === undefined || this.leadership.revision !== undefined;
  }

  /** Where the leader answers, as far as this controller knows (undefined: none known). */
  leaderUrl(): string | undefined {
    const state = this.leadership?.state;
    if (state === undefined || state.role === 'leader') return undefined;
    return state.leader?.url;
  }

  /** Makes the cluster record at first start, journals the start or election, begins deciding. */
  private async takeOffice(how: 'started' | 'elected'): Promise<void> {
    const now = this.clock.now();
    this.leaderSince = now;
    const meta = await this.store.get<ClusterMeta>(keys.cluster);
    if (meta === undefined) {
      const created: ClusterMeta = { clusterId: this.newClusterId(), createdAt: now };
      await this.store.txn({
        compares: [{ key: keys.cluster, modRevision: 0 }],
        puts: [{ key: keys.cluster, value: created }],
      });
    }
    this.clusterId = (await this.store.get<ClusterMeta>(keys.cluster))!.value.clusterId;
    await this.store.appendEvents([
      {
        at: now,
        kind: how === 'started' ? 'controller.started' : 'controller.elected',
        subject: { kind: 'controller', name: this.controllerId },
        message:
          how === 'started'
            ? `controller ${this.controllerId} started`
            : `controller ${this.controllerId} leads from now on`,
        data: { clusterId: this.clusterId },
      },
    ]);
    this.invalidate();
    this.schedule(0);
  }

  /** A leader that cannot even record its election steps down, so that a campaign runs again. */
  private async elected(): Promise<void> {
    try {
      await this.exclusive(() => this.takeOffice('elected'));
    } catch (err) {
      this.logger.log('warn', 'could not take office after the election; stepping down', {
        error: String(err),
      });
      this.leadership?.deposedByStore(`could not take office: ${String(err)}`);
    }
  }

  /** Leadership lost: stop deciding and drop the agents, so they find the new leader. */
  private deposed(reason: string): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.sessions.closeAll(`this controller is no longer the leader: ${reason}`);
    this.volumes.close();
    this.logs.close();
    this.published = { sessionsVersion: -1 };
    this.invalidate();
  }

  /**
   * A timer of its own, never moved by pokes, fires every reconcileIntervalMs; one that fires more
   * than two heartbeat intervals late means this process did not run (SIGSTOP, a long pause, a
   * frozen host). The heartbeats that arrived meanwhile are still unread, so what it last heard
   * says nothing about the nodes. A slow store delays passes, not this timer: it hides nothing.
   */
  private startWatchdog(): void {
    const intervalMs = this.config.reconcileIntervalMs;
    const dueAt = this.clock.now() + intervalMs;
    this.watchdog = this.clock.setTimeout(() => {
      if (this.stopped) return;
      const lateMs = this.clock.now() - dueAt;
      if (lateMs > 2 * this.config.heartbeatIntervalMs) {
        this.resumedAt = this.clock.now();
        this.logger.log('warn', 'the controller was paused; node silence counts from now', {
          lateMs,
        });
      }
      this.startWatchdog();
    }, intervalMs);
  }

  /**
   * From when a node's silence counts: the start, the end of a pause of this process, and for a
   * new leader, which heard nobody before its election, takeoverGraceMs for the agents to find it.
   */
  private silenceSince(): number {
    const since = Math.max(this.startedAt, this.resumedAt);
    if (this.leadership === undefined) return since;
    return Math.max(
      since,
      this.leaderSince + this.config.takeoverGraceMs - this.config.downAfterMs,
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const watch of this.watches.splice(0)) watch.cancel();
    await this.leadership?.stop();
    if (this.watchdog !== undefined) this.clock.clearTimeout(this.watchdog);
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.sessions.closeAll('controller stopping');
    this.volumes.close();
    this.logs.close();
    await this.queue.catch(() => undefined);
  }

  /** Runs fn after every earlier write of this controller: the one serialized applier. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private schedule(delayMs: number): void {
    if (this.stopped || !this.isLeader) return;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      this.reconcile()
        .catch((err: unknown) =>
          this.logger.log('error', 'reconcile failed', { error: String(err) }),
        )
        .finally(() => this.schedule(this.config.reconcileIntervalMs));
    }, delayMs);
  }

  /** Asks for a reconcile pass soon (after a report or an action); passes never overlap. */
  poke(): void {
    this.schedule(0);
  }

  /** One level-based pass: read everything, decide, write each decision conditionally, then send. */
  reconcile(): Promise<void> {
    return this.exclusive(async () => {
      if (!this.isLeader) return;
      let state = await this.currentState();
      const now = this.clock.now();
      const decisions = decide(
        {
          now,
          startedAt: this.silenceSince(),
          ...state,
          lastHeartbeatAt: this.sessions.lastHeartbeatAt,
        },
        this.config,
        { unsafePromoteOutdated: this.unsafePromoteOutdated },
      );
      let wrote = false;
      for (const decision of decisions) {
        const txn = decisionTxn(state, decision, now, this.config.avoidNodeMs);
        if (txn === undefined) continue;
        const result = await this.store.txn(txn);
        if (!result.ok) {
          // Something changed under us: decide again on fresh state, read afresh even if the
          // change feed has not said so yet (a watch on an etcd member that vanished is slow to
          // notice).
          this.invalidate();
          break;
        }
        wrote = true;
        // A node heard from again after silence may have missed sets sent meanwhile: send afresh.
        if (decision.type === 'liveness' && decision.to === 'up')
          this.sessions.resend(decision.node);
        this.invalidate();
        state = await this.currentState();
      }
      if (wrote) state = await this.currentState();
      this.publish(state);
      await journalStalledResyncs(this, now, this.config.resyncStallMs);
    });
  }

  /**
   * The whole state, read again only when the store changed since the last read: the loop runs
   * every 100 ms, and most passes find nothing new. The change feed invalidates the copy; a read
   * that raced with a change is not kept.
   */
  private async currentState(): Promise<ClusterState> {
    if (this.cached !== undefined) return this.cached;
    const generation = this.cacheGeneration;
    const state = await readState(this.store);
    if (generation === this.cacheGeneration) this.cached = state;
    return state;
  }

  /** The same cached state, for readers outside the loop (metrics at scrape time, samplers). */
  snapshot(): Promise<ClusterState> {
    return this.currentState();
  }

  private invalidate(): void {
    this.cached = undefined;
    this.cacheGeneration++;
  }

  /** Persist first, then send (CONVENTIONS.md item 2): called only with state read after the writes. */
  private publish(state: ClusterState): void {
    if (state === this.published.state && this.sessions.version === this.published.sessionsVersion)
      return;
    this.published = { state, sessionsVersion: this.sessions.version };
    const epochs = epochsByNode(state);
    const sets = assignmentsByNode(state);
    const duties = dutiesByNode(state, handoffWaits(state));
    const now = this.clock.now();
    for (const node of this.sessions.connectedNodes()) {
      this.sessions.sendAssignments(
        node,
        {
          type: 'assignments',
          revision: state.revision,
          assignments: sets.get(node) ?? [],
          epochs: epochs.get(node) ?? {},
          volumes: duties.get(node) ?? [],
        },
        now,
      );
    }
    const routes = routesOf(state);
    const encoded = JSON.stringify(routes);
    if (encoded !== this.encodedRoutes) {
      this.encodedRoutes = encoded;
      this.routeTable = { revision: state.revision, routes };
      for (const listener of this.routeListeners) listener(this.routeTable);
    }
  }

  routes(): RouteTable {
    return this.routeTable;
  }

  onRoutes(listener: (table: RouteTable) => void): () => void {
    this.routeListeners.add(listener);
    return () => this.routeListeners.delete(listener);
  }

  /** A message arrived on a node's session: contact now (AgentSessions.arrived). */
  agentArrived(channel: AgentChannel, node: string): void {
    this.sessions.arrived(node, channel, this.clock.now());
  }

  /** A message from an agent, already validated against the protocol schema by the adapter. */
  async agentMessage(
    channel: AgentChannel,
    node: string | undefined,
    message: AgentMessage,
  ): Promise<string | undefined> {
    const now = this.clock.now();
    if (message.type === 'hello') {
      await this.hello(channel, message, now);
      return message.node;
    }
    if (node === undefined || !this.sessions.isCurrent(node, channel)) {
      throw new ContinuumError(
        'CONTINUUM_ERR_BAD_REQUEST',
        `expected a hello before ${message.type}`,
      );
    }
    this.sessions.heard(node, now);
    if (message.type === 'heartbeat') {
      this.sessions.usage.set(node, { ...message.usage, at: now });
      const graceMs = 2 * this.config.heartbeatIntervalMs;
      if (message.assignmentsRevision !== undefined)
        this.sessions.checkTaken(node, message.assignmentsRevision, now, graceMs);
      if (
        message.reportSeq !== undefined &&
        this.sessions.reportsLost(node, message.reportSeq, now, graceMs)
      ) {
        this.logger.log('warn', 'instance reports were lost; asking the agent to say hello again', {
          node,
        });
        channel.close(4001, 'instance reports were lost: say hello again');
      }
    } else if (message.type === 'instance') {
      if (!this.sessions.freshReport(node, message.seq)) return node;
      if (message.status.node !== node) {
        throw new ContinuumError(
          'CONTINUUM_ERR_BAD_REQUEST',
          `instance status names node ${message.status.node}, session is ${node}`,
        );
      }
      await this.instanceReport(message.status, now);
    } else if (message.type === 'volume-reply') {
      this.volumes.reply(node, message);
    } else if (message.type === 'logs-reply') {
      this.logs.reply(node, message);
    } else if (message.type === 'volume-report') {
      const { report } = message;
      await this.exclusive(() => volumeReport(this, node, report, now));
      // Taken: the agent, which sends a fence again until it hears this, can stop.
      if (report.kind === 'fenced')
        channel.send({ type: 'fenced-taken', volume: report.volume, epoch: report.epoch });
    } else {
      await this.store.appendEvents([
        {
          at: now,
          kind: 'assignment.rejected',
          subject: { kind: 'workload', name: message.workload },
          message: `${node}: ${message.message}`,
          data: { node, epoch: message.epoch, code: message.code },
        },
      ]);
    }
    return node;
  }

  agentDisconnected(channel: AgentChannel, node: string | undefined): void {
    if (node === undefined) return;
    const wasCurrent = this.sessions.isCurrent(node, channel);
    this.sessions.detach(node, channel);
    if (wasCurrent) {
      this.volumes.nodeGone(node);
      this.logs.nodeGone(node);
    }
  }

  private async hello(channel: AgentChannel, hello: AgentHello, now: number): Promise<void> {
    if (!this.isLeader) throw notLeaderError(this.leaderUrl());
    if (hello.protocolVersion !== agentProtocolVersion) {
      throw new ContinuumError(
        'CONTINUUM_ERR_BAD_REQUEST',
        `expected protocol version ${agentProtocolVersion}, got ${hello.protocolVersion}`,
      );
    }
    if (hello.clusterId !== undefined && hello.clusterId !== this.clusterId) {
      throw new ContinuumError(
        'CONTINUUM_ERR_CONFLICT',
        `agent ${hello.node} belongs to cluster ${hello.clusterId}, this is ${this.clusterId}`,
      );
    }
    await this.exclusive(() => upsertNode(this.store, hello, now));
    this.sessions.attach(hello.node, channel, hello.reportSeq);
    this.sessions.heard(hello.node, now);
    channel.send({
      type: 'welcome',
      clusterId: this.clusterId,
      controllerId: this.controllerId,
      heartbeatIntervalMs: this.config.heartbeatIntervalMs,
    });
    for (const status of hello.instances) await this.instanceReport(status, now);
    this.poke();
  }

  private instanceReport(status: InstanceRecord | AgentMessageStatus, now: number): Promise<void> {
    return this.exclusive(async () => {
      for (let attempt = 0; attempt < this.config.writeAttemptsMax; attempt++) {
        if (await writeInstance(this.store, this.logger, status, now)) return;
      }
      this.logger.log('warn', 'instance report not written after retries', {
        workload: status.workload,
        node: status.node,
      });
    }).then(() => this.poke());
  }
}
