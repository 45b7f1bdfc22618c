// The agent's Prometheus metrics (docs/metrics.md), served by `continuum agent --metrics-listen`.
// Everything is read at scrape time from what the agent holds (instance statuses, the session)
// and from its volume server (NBD counters, by volume); resync progress and replica waits come
// from the primaries' reports as they pass through. Its own Registry, so tests may run several.
import { readFileSync } from 'node:fs';
import { Counter, Gauge, Registry } from 'prom-client';
import type { InstanceStatus, ProbeStatus } from '../core/model.js';
import type { PrimaryReportMessage } from '../core/protocol.js';
import { registerProcessMetrics } from '../platform/process-metrics.js';
import type { NbdCounters } from '../storage/nbd/counters.js';

export interface AgentMetricsSources {
  statuses(): InstanceStatus[];
  /** The volume server's NBD counters, undefined while it does not answer. */
  nbdCounters?(): Promise<NbdCounters | undefined>;
  /** CPU time and resident memory of a process (default: from /proc). */
  processUsage?(pid: number): ProcessUsage | undefined;
}

export interface ProcessUsage {
  cpuSeconds: number;
  residentBytes: number;
}

/** Linux reports /proc/<pid>/stat times in USER_HZ ticks, 100 a second on every architecture. */
const ticksPerSecond = 100;
const pageBytes = 4096;

/** CPU and memory of a process from /proc, or undefined where there is no /proc or no process. */
export function procUsage(pid: number): ProcessUsage | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may hold spaces and parentheses: fields count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    const residentPages = Number(fields[21]);
    if (!Number.isFinite(ticks) || !Number.isFinite(residentPages)) return undefined;
    return { cpuSeconds: ticks / ticksPerSecond, residentBytes: residentPages * pageBytes };
  } catch {
    return undefined;
  }
}

type ProbeReport = ProbeStatus & { lastDurationMs?: number };

export class AgentMetrics {
  readonly registry = new Registry();
  readonly contentType = this.registry.contentType;
  private readonly resyncs = new Map<string, Extract<PrimaryReportMessage, { kind: 'resync' }>>();
  private readonly waits = new Map<string, { volume: string; node: string; waitingMs: number }>();
  private readonly restartsSeen = new Map<string, { epoch: number; restarts: number }>();
  /** Welcomed by the leader and not closed since. */
  private inSession = false;
  private sessionsWelcomed = 0;
  private readonly m;

  constructor(private readonly sources: AgentMetricsSources) {
    const registers = [this.registry];
    const gauge = (name: string, help: string, labelNames: string[] = []) =>
      new Gauge({ name, help, labelNames, registers });
    const counter = (name: string, help: string, labelNames: string[] = []) =>
      new Counter({ name, help, labelNames, registers });
    const probe = ['workload', 'probe'];
    const volume = ['volume'];
    this.m = {
      instances: gauge('continuum_agent_instances', 'Instances on this node by state.', ['state']),
      probeUp: gauge('continuum_agent_probe_up', '1 if the last probe run passed, else 0.', probe),
      probeFailures: gauge(
        'continuum_agent_probe_consecutive_failures',
        'Consecutive failed runs of the probe.',
        probe,
      ),
      probeDuration: gauge(
        'continuum_agent_probe_duration_seconds',
        'Duration of the last run of the probe.',
        probe,
      ),
      restartsWindow: gauge(
        'continuum_agent_instance_restarts_in_window',
        'Restarts in place within the current restart window.',
        ['workload'],
      ),
      restarts: counter(
        'continuum_agent_instance_restarts_total',
        'Restarts in place seen since the agent started.',
        ['workload'],
      ),
      cpu: counter(
        'continuum_agent_instance_cpu_seconds_total',
        'CPU time of the instance process.',
        ['workload'],
      ),
      memory: gauge(
        'continuum_agent_instance_resident_memory_bytes',
        'Resident memory of the instance process.',
        ['workload'],
      ),
      nbdOpen: gauge('continuum_agent_nbd_connections_open', 'NBD connections open now.'),
      nbdAccepted: counter(
        'continuum_agent_nbd_connections_accepted_total',
        'NBD connections accepted.',
      ),
      nbdRequests: counter('continuum_agent_nbd_requests_total', 'NBD requests received.'),
      nbdErrors: counter(
        'continuum_agent_nbd_error_replies_total',
        'NBD requests answered with an error.',
      ),
      reads: counter('continuum_agent_volume_reads_total', 'NBD reads completed.', volume),
      writes: counter('continuum_agent_volume_writes_total', 'NBD writes completed.', volume),
      flushes: counter('continuum_agent_volume_flushes_total', 'NBD flushes completed.', volume),
      trims: counter('continuum_agent_volume_trims_total', 'NBD trims completed.', volume),
      readBytes: counter('continuum_agent_volume_read_bytes_total', 'Bytes read over NBD.', volume),
      writtenBytes: counter(
        'continuum_agent_volume_written_bytes_total',
        'Bytes written over NBD.',
        volume,
      ),
      resyncCopied: gauge(
        'continuum_agent_resync_copied_bytes',
        'Bytes a resync led by a primary here has copied so far.',
        ['volume', 'node', 'mode'],
      ),
      resyncTotal: gauge(
        'continuum_agent_resync_to_copy_bytes',
        'Bytes that resync has to copy in all.',
        ['volume', 'node', 'mode'],
      ),
      replicaWaiting: gauge(
        'continuum_agent_replica_waiting_seconds',
        'How long a primary here has waited on a replica that is unresponsive or unclean.',
        ['volume', 'node'],
      ),
      connected: gauge(
        'continuum_agent_session_connected',
        '1 while in a session with the leading controller.',
      ),
      reconnects: counter(
        'continuum_agent_session_reconnects_total',
        'Sessions with the leading controller after the first (each follows a lost one).',
      ),
    };
    this.m.reconnects.inc(0);
    registerProcessMetrics(this.registry);
  }

  /** A primary's report on its way to the controller: keeps resync progress and replica waits. */
  volumeReport(report: PrimaryReportMessage): void {
    const key = `${report.volume}/${'node' in report ? report.node : ''}`;
    if (report.kind === 'resync') {
      if (report.done) this.resyncs.delete(key);
      else this.resyncs.set(key, report);
    } else if (report.kind === 'unresponsive' || report.kind === 'unclean') {
      this.waits.set(key, {
        volume: report.volume,
        node: report.node,
        waitingMs: report.waitingMs,
      });
    } else if (report.kind === 'caught-up') this.waits.delete(key);
  }

  /** The leading controller answered (AgentSession onContact: its welcome, then every pong). */
  sessionContact(): void {
    if (this.inSession) return;
    this.inSession = true;
    if (this.sessionsWelcomed++ > 0) this.m.reconnects.inc();
  }

  /** The session closed (AgentSession onClosed, also after attempts that never got in). */
  sessionClosed(): void {
    this.inSession = false;
  }

  async scrape(): Promise<string> {
    await this.refresh();
    return this.registry.metrics();
  }

  private async refresh(): Promise<void> {
    const m = this.m;
    for (const metric of [m.instances, m.probeUp, m.probeFailures, m.probeDuration, m.memory])
      metric.reset();
    for (const metric of [m.restartsWindow, m.cpu]) metric.reset();
    const usage = (pid: number) =>
      this.sources.processUsage === undefined ? procUsage(pid) : this.sources.processUsage(pid);
    for (const status of this.sources.statuses()) {
      const workload = status.workload;
      m.instances.inc({ state: status.state });
      for (const [name, probe] of Object.entries(status.probes) as [string, ProbeReport][]) {
        const labels = { workload, probe: name };
        m.probeUp.set(labels, probe.ok ? 1 : 0);
        m.probeFailures.set(labels, probe.consecutiveFailures);
        if (typeof probe.lastDurationMs === 'number')
          m.probeDuration.set(labels, probe.lastDurationMs / 1000);
      }
      m.restartsWindow.set({ workload }, status.restarts);
      this.countRestarts(status);
      const process = status.pid === undefined ? undefined : usage(status.pid);
      if (process !== undefined) {
        m.cpu.inc({ workload }, process.cpuSeconds);
        m.memory.set({ workload }, process.residentBytes);
      }
    }
    m.resyncCopied.reset();
    m.resyncTotal.reset();
    for (const r of this.resyncs.values()) {
      const labels = { volume: r.volume, node: r.node, mode: r.mode };
      m.resyncCopied.set(labels, r.bytesCopied);
      m.resyncTotal.set(labels, r.bytesToCopy);
    }
    m.replicaWaiting.reset();
    for (const w of this.waits.values())
      m.replicaWaiting.set({ volume: w.volume, node: w.node }, w.waitingMs / 1000);
    m.connected.set(this.inSession ? 1 : 0);
    await this.refreshNbd();
  }

  /** Restarts are a count within a window; the total adds each rise seen (a new epoch starts anew). */
  private countRestarts(status: InstanceStatus): void {
    const seen = this.restartsSeen.get(status.workload);
    const before = seen === undefined || seen.epoch !== status.epoch ? 0 : seen.restarts;
    if (status.restarts > before)
      this.m.restarts.inc({ workload: status.workload }, status.restarts - before);
    else this.m.restarts.inc({ workload: status.workload }, 0);
    this.restartsSeen.set(status.workload, { epoch: status.epoch, restarts: status.restarts });
  }

  private async refreshNbd(): Promise<void> {
    const m = this.m;
    const nbd = await this.sources.nbdCounters?.().catch(() => undefined);
    const perVolume = [m.reads, m.writes, m.flushes, m.trims, m.readBytes, m.writtenBytes];
    for (const metric of [m.nbdAccepted, m.nbdRequests, m.nbdErrors, ...perVolume]) metric.reset();
    m.nbdOpen.reset();
    if (nbd === undefined) return;
    m.nbdOpen.set(nbd.connectionsOpen);
    m.nbdAccepted.inc(nbd.connectionsAccepted);
    m.nbdRequests.inc(nbd.requests);
    m.nbdErrors.inc(nbd.errorReplies);
    for (const [volume, c] of Object.entries(nbd.byExport ?? {})) {
      m.reads.inc({ volume }, c.reads);
      m.writes.inc({ volume }, c.writes);
      m.flushes.inc({ volume }, c.flushes);
      m.trims.inc({ volume }, c.trims);
      m.readBytes.inc({ volume }, c.bytesRead);
      m.writtenBytes.inc({ volume }, c.bytesWritten);
    }
  }
}
