// The per-endpoint state of the redirector: its current route, the client connections that wait
// for a target or are piped to one, and the counters that stats() reports. A small wake-up signal
// lets waiting connections react to a new target at once instead of polling.
import type { Socket } from 'node:net';
import type { Route } from '../core/model.js';

/** Counters of one endpoint, as stats() reports them. */
export interface EndpointStats {
  workload: string;
  endpoint: string;
  /** Null once the route has left the table (its piped connections may still run). */
  listenHost: string | null;
  listenPort: number | null;
  listening: boolean;
  epoch: number | null;
  target: Route['target'];
  /** Client connections piped to a target now. */
  connectionsActive: number;
  /** Client connections waiting for a target, or connecting to one. */
  connectionsPending: number;
  connectionsAcceptedTotal: number;
  /** Connections closed at once because connectionsPending had reached pendingConnectionsMax. */
  connectionsRejectedTotal: number;
  /** Connections closed because no target answered within connectWaitMs. */
  connectionsTimedOutTotal: number;
  /** Failed connect attempts to a target (refused, unreachable, timed out). */
  connectFailuresTotal: number;
  /** Bytes from clients to targets. */
  inboundBytesTotal: number;
  /** Bytes from targets to clients. */
  outboundBytesTotal: number;
}

export class EndpointState {
  readonly key: string;
  readonly workload: string;
  readonly endpoint: string;
  /** The route in force, or null once it left the table. */
  route: Route | null;
  readonly pending = new Set<Socket>();
  /** Target sockets of connect attempts in flight, so close() can abort them. */
  readonly connecting = new Set<Socket>();
  /** Client sockets piped to a target, with their target sockets. */
  readonly active = new Map<Socket, Socket>();
  connectionsAcceptedTotal = 0;
  connectionsRejectedTotal = 0;
  connectionsTimedOutTotal = 0;
  connectFailuresTotal = 0;
  inboundBytesTotal = 0;
  outboundBytesTotal = 0;
  /** True from a rejection until the next admitted client, so an overload is logged once. */
  overloaded = false;
  private waiters = new Set<() => void>();

  constructor(route: Route) {
    this.key = endpointKey(route);
    this.workload = route.workload;
    this.endpoint = route.endpoint;
    this.route = route;
  }

  /** Resolves at the next notify() or after timeoutMs, whichever comes first. */
  waitForChange(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.waiters.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, Math.max(0, timeoutMs));
      this.waiters.add(wake);
    });
  }

  /** Wakes every waiting connection so it looks at the route again. */
  notify(): void {
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const wake of waiters) wake();
  }

  /** True when nothing refers to this endpoint any more and its state can be dropped. */
  idle(): boolean {
    return this.route === null && this.pending.size === 0 && this.active.size === 0;
  }

  stats(listening: boolean): EndpointStats {
    return {
      workload: this.workload,
      endpoint: this.endpoint,
      listenHost: this.route?.listenHost ?? null,
      listenPort: this.route?.listenPort ?? null,
      listening,
      epoch: this.route?.epoch ?? null,
      target: this.route?.target ?? null,
      connectionsActive: this.active.size,
      connectionsPending: this.pending.size,
      connectionsAcceptedTotal: this.connectionsAcceptedTotal,
      connectionsRejectedTotal: this.connectionsRejectedTotal,
      connectionsTimedOutTotal: this.connectionsTimedOutTotal,
      connectFailuresTotal: this.connectFailuresTotal,
      inboundBytesTotal: this.inboundBytesTotal,
      outboundBytesTotal: this.outboundBytesTotal,
    };
  }
}

/** Workload and endpoint names are DNS-like labels (spec.ts nameSchema), so '/' cannot occur in either. */
export function endpointKey(route: Pick<Route, 'workload' | 'endpoint'>): string {
  return `${route.workload}/${route.endpoint}`;
}

export function listenAddressKey(route: Pick<Route, 'listenHost' | 'listenPort'>): string {
  return `${route.listenHost}:${route.listenPort}`;
}
