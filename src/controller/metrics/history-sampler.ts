// Feeds the metrics history (history.ts) every metricsSampleIntervalMs from what the controller
// already holds: its cached state, the usage agents report in heartbeats, and the failover count
// of its metrics. The series are the ones the console charts (docs/metrics.md lists them).
import type { InstanceState, WorkloadPhase } from '../../core/model.js';
import type { TimerHandle } from '../../core/ports.js';
import type { Controller } from '../controller.js';
import { workloadPhase } from '../views.js';
import { MetricsHistory } from './history.js';

const instanceStates: InstanceState[] = [
  'starting',
  'healthy',
  'unhealthy',
  'restarting',
  'failed',
  'stopping',
  'stopped',
];
const phases: WorkloadPhase[] = ['pending', 'starting', 'active', 'degraded', 'moving'];

/** The series the history keeps, by name; the API refuses any other. */
export const historySeries = [
  'workload_response_seconds',
  'workload_probe_duration_seconds',
  'node_cpu_usage_ratio',
  'node_memory_used_bytes',
  'instances',
  'workloads',
  'failovers_total',
] as const;

export class HistorySampler {
  readonly history: MetricsHistory;
  private timer: TimerHandle | undefined;
  private stopped = false;

  constructor(
    private readonly controller: Controller,
    /** Failovers counted so far (ControllerMetrics.failoversCounted). */
    private readonly failoversTotal: () => number,
  ) {
    const config = controller.config;
    this.history = new MetricsHistory({
      sampleIntervalMs: config.metricsSampleIntervalMs,
      historyMs: config.metricsHistoryMs,
      seriesMax: config.metricsSeriesMax,
    });
  }

  /** Samples at once (so a fresh controller has something to show), then every interval. */
  start(): void {
    this.stopped = false;
    this.tick();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) this.controller.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private tick(): void {
    this.sample()
      .catch((err: unknown) =>
        this.controller.logger.log('warn', 'metrics history sample failed', {
          error: String(err),
        }),
      )
      .finally(() => {
        if (this.stopped) return;
        this.timer = this.controller.clock.setTimeout(
          () => this.tick(),
          this.controller.config.metricsSampleIntervalMs,
        );
      });
  }

  async sample(): Promise<void> {
    const state = await this.controller.snapshot();
    const at = this.controller.clock.now();
    const record = this.history.record.bind(this.history);
    const states = new Map(instanceStates.map((s) => [s, 0]));
    for (const instance of state.instances)
      states.set(instance.state, (states.get(instance.state) ?? 0) + 1);
    for (const [s, count] of states) record('instances', { state: s }, at, count);
    const phaseCounts = new Map(phases.map((p) => [p, 0]));
    for (const w of state.workloads) {
      const phase = workloadPhase(w, state.instances);
      phaseCounts.set(phase, (phaseCounts.get(phase) ?? 0) + 1);
      // The response time of a workload is what its active instance's probes last measured.
      const active = state.instances.find((i) => i.workload === w.name && i.node === w.node);
      let slowestSeconds: number | undefined;
      for (const [probe, status] of Object.entries(active?.probes ?? {})) {
        const durationMs = status.lastDurationMs;
        if (typeof durationMs !== 'number') continue;
        record(
          'workload_probe_duration_seconds',
          { workload: w.name, probe },
          at,
          durationMs / 1000,
        );
        slowestSeconds = Math.max(slowestSeconds ?? 0, durationMs / 1000);
      }
      if (slowestSeconds !== undefined)
        record('workload_response_seconds', { workload: w.name }, at, slowestSeconds);
    }
    for (const [phase, count] of phaseCounts) record('workloads', { phase }, at, count);
    for (const node of state.nodes) {
      const usage = this.controller.sessions.usage.get(node.name);
      if (usage === undefined) continue;
      record('node_cpu_usage_ratio', { node: node.name }, at, usage.cpuPercent / 100);
      record('node_memory_used_bytes', { node: node.name }, at, usage.memoryUsedMiB * 1_048_576);
    }
    record('failovers_total', {}, at, this.failoversTotal());
    this.history.prune(at);
  }
}
