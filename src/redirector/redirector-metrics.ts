// The redirector's Prometheus metrics (docs/metrics.md), served by `continuum redirector
// --metrics-listen`: connections and bytes per endpoint, read at scrape time from the counters
// every endpoint already keeps (Redirector.stats()). An endpoint that left the route table drops
// out once its last connection ends, and its counters with it (Prometheus reads that as a reset).
import { Counter, Gauge, Registry } from 'prom-client';
import { registerProcessMetrics } from '../platform/process-metrics.js';
import type { EndpointStats } from './endpoint.js';

export class RedirectorMetrics {
  readonly registry = new Registry();
  readonly contentType = this.registry.contentType;
  private readonly m;

  constructor(private readonly stats: () => EndpointStats[]) {
    const registers = [this.registry];
    const labelNames = ['workload', 'endpoint'];
    const gauge = (name: string, help: string) => new Gauge({ name, help, labelNames, registers });
    const counter = (name: string, help: string) =>
      new Counter({ name, help, labelNames, registers });
    this.m = {
      listening: gauge(
        'continuum_redirector_listening',
        '1 while the endpoint accepts connections.',
      ),
      epoch: gauge('continuum_redirector_route_epoch', 'Epoch of the route in force.'),
      hasTarget: gauge('continuum_redirector_target_up', '1 while the route has an active target.'),
      active: gauge(
        'continuum_redirector_connections_active',
        'Connections piped to a target now.',
      ),
      pending: gauge(
        'continuum_redirector_connections_pending',
        'Connections waiting for a target or connecting to one.',
      ),
      accepted: counter('continuum_redirector_connections_total', 'Client connections accepted.'),
      rejected: counter(
        'continuum_redirector_connections_rejected_total',
        'Connections closed at once because too many were pending.',
      ),
      timedOut: counter(
        'continuum_redirector_connections_timed_out_total',
        'Connections closed because no target answered in time.',
      ),
      connectFailures: counter(
        'continuum_redirector_connect_failures_total',
        'Failed connection attempts to a target.',
      ),
      bytesIn: counter(
        'continuum_redirector_received_bytes_total',
        'Bytes from clients, forwarded to targets.',
      ),
      bytesOut: counter(
        'continuum_redirector_sent_bytes_total',
        'Bytes from targets, forwarded to clients.',
      ),
    };
    registerProcessMetrics(this.registry);
  }

  async scrape(): Promise<string> {
    for (const metric of Object.values(this.m)) metric.reset();
    const m = this.m;
    for (const s of this.stats()) {
      const labels = { workload: s.workload, endpoint: s.endpoint };
      m.listening.set(labels, s.listening ? 1 : 0);
      if (s.epoch !== null) m.epoch.set(labels, s.epoch);
      m.hasTarget.set(labels, s.target === null ? 0 : 1);
      m.active.set(labels, s.connectionsActive);
      m.pending.set(labels, s.connectionsPending);
      m.accepted.inc(labels, s.connectionsAcceptedTotal);
      m.rejected.inc(labels, s.connectionsRejectedTotal);
      m.timedOut.inc(labels, s.connectionsTimedOutTotal);
      m.connectFailures.inc(labels, s.connectFailuresTotal);
      m.bytesIn.inc(labels, s.inboundBytesTotal);
      m.bytesOut.inc(labels, s.outboundBytesTotal);
    }
    return this.registry.metrics();
  }
}
