// The controller's Prometheus metrics (docs/metrics.md). Gauges that describe the cluster are
// computed at scrape time from the controller's cached state, so they never drift from the store;
// counters and the restore-time histogram come from the journal as this controller sees it while
// it leads, so the sum over several controllers counts each event once. Each controller has its
// own Registry (not prom-client's global one), so tests may run several in one process.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { nodeState, type JournalEvent } from '../../core/model.js';
import type { Controller } from '../controller.js';
import { registerProcessMetrics } from '../../platform/process-metrics.js';
import { workloadPhase } from '../views.js';
import { HistorySampler } from './history-sampler.js';

/** Restore times span a fast local failover (sub-second) to a slow VM start (minutes). */
export const restoreBucketsSeconds = [0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300];

const transitionKinds = new Set(['placement', 'failover', 'switchover', 'preemption', 'eviction']);

export class ControllerMetrics {
  readonly registry = new Registry();
  /** The in-memory history of the console's series, sampled every metricsSampleIntervalMs. */
  readonly sampler: HistorySampler;
  /** Failovers counted so far (the value of continuum_failovers_total), for the history. */
  failoversCounted = 0;
  private readonly watches: { cancel(): void }[] = [];
  private readonly gauges;
  private readonly counters;

  constructor(private readonly controller: Controller) {
    const registers = [this.registry];
    const gauge = (name: string, help: string, labelNames: string[] = []) =>
      new Gauge({ name, help, labelNames, registers });
    const counter = (name: string, help: string, labelNames: string[] = []) =>
      new Counter({ name, help, labelNames, registers });
    this.gauges = {
      nodes: gauge('continuum_nodes', 'Nodes by state and role.', ['state', 'role']),
      nodeConnected: gauge('continuum_node_connected', '1 while the node has an agent session.', [
        'node',
      ]),
      nodeCpu: gauge('continuum_node_cpu_usage_ratio', 'CPU busy share of the node (0-1).', [
        'node',
      ]),
      nodeMemory: gauge('continuum_node_memory_used_bytes', 'Memory in use on the node.', ['node']),
      nodeLoad: gauge('continuum_node_load1', 'One-minute load average of the node.', ['node']),
      heartbeatAge: gauge(
        'continuum_node_heartbeat_age_seconds',
        'Time since the last heartbeat from the node.',
        ['node'],
      ),
      workloads: gauge('continuum_workloads', 'Workloads by phase.', ['phase']),
      instances: gauge('continuum_instances', 'Instances by state.', ['state']),
      probeUp: gauge('continuum_probe_up', '1 if the last probe run passed, else 0.', [
        'workload',
        'node',
        'probe',
      ]),
      probeFailures: gauge(
        'continuum_probe_consecutive_failures',
        'Consecutive failed runs of the probe.',
        ['workload', 'node', 'probe'],
      ),
      probeDuration: gauge(
        'continuum_probe_duration_seconds',
        'Duration of the last run of the probe.',
        ['workload', 'node', 'probe'],
      ),
      epoch: gauge('continuum_workload_epoch', 'Current epoch of the workload.', ['workload']),
      isr: gauge('continuum_volume_isr_replicas', 'Copies of the volume in the in-sync set.', [
        'workload',
        'volume',
      ]),
      wanted: gauge('continuum_volume_wanted_replicas', 'Copies the spec asks for.', [
        'workload',
        'volume',
      ]),
      outdated: gauge('continuum_volume_outdated_replicas', 'Copies outside the in-sync set.', [
        'workload',
        'volume',
      ]),
      resyncCopied: gauge('continuum_resync_copied_bytes', 'Bytes copied so far by a resync.', [
        'volume',
        'node',
        'mode',
      ]),
      resyncTotal: gauge('continuum_resync_to_copy_bytes', 'Bytes a resync has to copy in all.', [
        'volume',
        'node',
        'mode',
      ]),
      leader: gauge('continuum_controller_leader', '1 while this controller leads, else 0.'),
      sessions: gauge('continuum_agent_sessions', 'Agent sessions connected to this controller.'),
    };
    this.counters = {
      events: counter('continuum_journal_events_total', 'Journal events by kind.', ['kind']),
      transitions: counter(
        'continuum_transitions_total',
        'Changes of owner decided, by kind (failover, switchover, placement, ...).',
        ['kind'],
      ),
      failovers: counter('continuum_failovers_total', 'Failovers decided.'),
      elections: counter(
        'continuum_controller_elections_total',
        'Times this controller took office (elected, or started as the only controller).',
      ),
      restore: new Histogram({
        name: 'continuum_restore_duration_seconds',
        help: 'Time to restore service of completed changes of owner, from failure to healthy.',
        labelNames: ['kind'],
        buckets: restoreBucketsSeconds,
        registers,
      }),
    };
    // Counters with no event yet still appear, so a query sees 0 rather than nothing.
    this.counters.failovers.inc(0);
    this.counters.elections.inc(0);
    registerProcessMetrics(this.registry);
    this.sampler = new HistorySampler(controller, () => this.failoversCounted);
  }

  /** Counts journal events from now on, while this controller leads, and samples the history. */
  start(): void {
    this.sampler.start();
    this.watches.push(
      this.controller.store.watch('events/', {}, (batch) => {
        if (!this.controller.isLeader) return;
        for (const event of batch.events) this.count(event);
      }),
    );
  }

  stop(): void {
    this.sampler.stop();
    for (const watch of this.watches.splice(0)) watch.cancel();
  }

  private count(event: JournalEvent): void {
    this.counters.events.inc({ kind: event.kind });
    const [kind, step] = event.kind.split('.');
    if (kind === 'controller' && (step === 'elected' || step === 'started')) {
      if (event.subject.name === this.controller.controllerId) this.counters.elections.inc();
      return;
    }
    if (kind === undefined || !transitionKinds.has(kind)) return;
    if (step === 'decided') {
      this.counters.transitions.inc({ kind });
      if (kind === 'failover') {
        this.counters.failovers.inc();
        this.failoversCounted++;
      }
    } else if (step === 'completed' && typeof event.data?.restoreMs === 'number') {
      this.counters.restore.observe({ kind }, event.data.restoreMs / 1000);
    }
  }

  /** The text exposition, with the state gauges computed now. */
  async scrape(): Promise<string> {
    await this.refresh();
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private async refresh(): Promise<void> {
    const state = await this.controller.snapshot();
    const now = this.controller.clock.now();
    const g = this.gauges;
    for (const metric of Object.values(g)) metric.reset();
    for (const node of state.nodes) g.nodes.inc({ state: nodeState(node), role: node.role });
    const connected = new Set(this.controller.sessions.connectedNodes());
    for (const node of state.nodes) {
      const name = node.name;
      g.nodeConnected.set({ node: name }, connected.has(name) ? 1 : 0);
      const usage = this.controller.sessions.usage.get(name);
      if (usage !== undefined) {
        g.nodeCpu.set({ node: name }, usage.cpuPercent / 100);
        g.nodeMemory.set({ node: name }, usage.memoryUsedMiB * 1_048_576);
        g.nodeLoad.set({ node: name }, usage.load1);
      }
      const heard = this.controller.sessions.lastHeartbeatAt[name];
      if (heard !== undefined) g.heartbeatAge.set({ node: name }, (now - heard) / 1000);
    }
    for (const w of state.workloads) {
      g.workloads.inc({ phase: workloadPhase(w, state.instances) });
      g.epoch.set({ workload: w.name }, w.epoch);
      for (const [volume, record] of Object.entries(w.volumes ?? {})) {
        const labels = { workload: w.name, volume };
        g.isr.set(labels, record.isr.length);
        g.outdated.set(labels, Object.keys(record.outdated).length);
        const wanted = w.spec.volumes?.find((v) => v.name === volume)?.replicas;
        if (wanted !== undefined) g.wanted.set(labels, wanted);
      }
    }
    for (const instance of state.instances) {
      g.instances.inc({ state: instance.state });
      for (const [probe, status] of Object.entries(instance.probes)) {
        const labels = { workload: instance.workload, node: instance.node, probe };
        g.probeUp.set(labels, status.ok ? 1 : 0);
        g.probeFailures.set(labels, status.consecutiveFailures);
        if (typeof status.lastDurationMs === 'number')
          g.probeDuration.set(labels, status.lastDurationMs / 1000);
      }
    }
    for (const resync of this.controller.resyncs.values()) {
      const labels = { volume: resync.volume, node: resync.node, mode: resync.mode };
      g.resyncCopied.set(labels, resync.bytesCopied);
      g.resyncTotal.set(labels, resync.bytesToCopy);
    }
    g.leader.set(this.controller.isLeader ? 1 : 0);
    g.sessions.set(connected.size);
  }
}
