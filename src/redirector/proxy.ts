// The redirector: a TCP proxy that gives each workload endpoint a stable address and sends new
// connections to the active instance of the current epoch (ARCHITECTURE.md section 3, rule 5).
// It follows a RouteTable: one listener per (listenHost, listenPort), one target per endpoint.
// Connections already piped are never cut when a route changes: see docs/redirector.md.
import type { Socket } from 'node:net';
import type { Route, RouteTable } from '../core/model.js';
import type { Logger } from '../core/ports.js';
import { serveClient, type ConnectionContext } from './connection.js';
import { EndpointState, endpointKey, listenAddressKey, type EndpointStats } from './endpoint.js';
import { Listener } from './listener.js';

export type { EndpointStats } from './endpoint.js';

export interface RedirectorOptions {
  logger: Logger;
  /** How long a new client waits for a routable target before it is closed. */
  connectWaitMs?: number;
  /** Clients waiting for a target, per endpoint; beyond it new clients are closed at once. */
  pendingConnectionsMax?: number;
  /** How long one connect attempt to a target may take. */
  connectAttemptTimeoutMs?: number;
  /** Pause between failed connect attempts to a target. */
  retryDelayMs?: number;
  /** Pause between attempts to listen on an address that is busy or not available. */
  listenRetryDelayMs?: number;
}

export type RedirectorLimits = Required<Omit<RedirectorOptions, 'logger'>>;

export const redirectorDefaults: RedirectorLimits = {
  connectWaitMs: 15_000,
  pendingConnectionsMax: 1024,
  connectAttemptTimeoutMs: 1000,
  retryDelayMs: 50,
  listenRetryDelayMs: 1000,
};

/** Node's timers treat anything longer than this as 1 ms. */
const timerDelayMsMax = 2_147_483_647;

export class Redirector {
  readonly limits: RedirectorLimits;
  private readonly logger: Logger;
  private readonly endpoints = new Map<string, EndpointState>();
  /** By listen address ("host:port"). */
  private readonly listeners = new Map<string, Listener>();
  private readonly context: ConnectionContext;
  private revision = -1;
  private closed = false;

  constructor(options: RedirectorOptions) {
    this.limits = validateLimits(options);
    this.logger = options.logger;
    this.context = {
      limits: this.limits,
      logger: this.logger,
      isClosed: () => this.closed,
      onSettled: (endpoint) => this.release(endpoint),
    };
  }

  /** The revision of the last table applied, or -1 before the first. */
  appliedRevision(): number {
    return this.revision;
  }

  /**
   * Makes the listeners and targets match the table. Returns false, changing nothing, for a table
   * older than the last one applied (a slow controller or a stale cache must not roll routes back).
   */
  applyRoutes(table: RouteTable): boolean {
    if (this.closed) return false;
    if (table.revision < this.revision) {
      this.logger.log('warn', 'ignoring a route table older than the one in force', {
        revision: table.revision,
        appliedRevision: this.revision,
      });
      return false;
    }
    this.revision = table.revision;
    const wanted = this.distinctRoutes(table);
    const wantedEndpoints = new Set([...wanted.values()].map(endpointKey));
    for (const [address, listener] of this.listeners) {
      if (wanted.has(address)) continue;
      this.listeners.delete(address);
      this.logger.log('info', 'route removed; closing listener', {
        address,
        endpoint: listener.endpointKey,
      });
      void listener.close();
    }
    for (const endpoint of this.endpoints.values()) {
      if (endpoint.route !== null && !wantedEndpoints.has(endpoint.key)) this.retire(endpoint);
    }
    for (const [address, route] of wanted) this.applyRoute(address, route);
    return true;
  }

  /** One entry per endpoint in the table, and per removed endpoint whose connections still run. */
  stats(): EndpointStats[] {
    return [...this.endpoints.values()].map((endpoint) => {
      const route = endpoint.route;
      const listener = route === null ? undefined : this.listeners.get(listenAddressKey(route));
      const listening = listener?.endpointKey === endpoint.key && listener.isListening();
      return endpoint.stats(listening);
    });
  }

  /** Stops listening and destroys every connection, waiting or piped. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const closing = [...this.listeners.values()].map((listener) => listener.close());
    this.listeners.clear();
    for (const endpoint of this.endpoints.values()) {
      for (const socket of endpoint.connecting) socket.destroy();
      for (const client of endpoint.pending) client.destroy();
      for (const [client, upstream] of endpoint.active) {
        client.destroy();
        upstream.destroy();
      }
      endpoint.notify();
    }
    this.endpoints.clear();
    await Promise.all(closing);
  }

  /** Keeps the first route for each listen address and each endpoint; logs the others. */
  private distinctRoutes(table: RouteTable): Map<string, Route> {
    const byAddress = new Map<string, Route>();
    const endpoints = new Set<string>();
    for (const route of table.routes) {
      const address = listenAddressKey(route);
      const key = endpointKey(route);
      if (byAddress.has(address) || endpoints.has(key)) {
        this.logger.log('warn', 'ignoring a route whose address or endpoint is already routed', {
          address,
          endpoint: key,
          revision: table.revision,
        });
        continue;
      }
      byAddress.set(address, route);
      endpoints.add(key);
    }
    return byAddress;
  }

  private applyRoute(address: string, route: Route): void {
    const key = endpointKey(route);
    let endpoint = this.endpoints.get(key);
    const previous = endpoint?.route ?? null;
    if (endpoint === undefined) {
      endpoint = new EndpointState(route);
      this.endpoints.set(key, endpoint);
    } else {
      endpoint.route = route;
    }
    const listener = this.listeners.get(address);
    if (listener === undefined) {
      this.listeners.set(address, this.openListener(route, key));
    } else {
      listener.endpointKey = key;
    }
    if (sameTarget(previous?.target ?? null, route.target) && previous?.epoch === route.epoch) {
      return;
    }
    this.logger.log('info', 'route changed', {
      endpoint: key,
      epoch: route.epoch,
      target: route.target === null ? null : `${route.target.host}:${route.target.port}`,
      previousTarget: previous?.target ? `${previous.target.host}:${previous.target.port}` : null,
    });
    // Existing piped connections stay on their target; only waiting and new clients move.
    if (route.target !== null) endpoint.notify();
  }

  private openListener(route: Route, key: string): Listener {
    return new Listener({
      host: route.listenHost,
      port: route.listenPort,
      endpointKey: key,
      listenRetryDelayMs: this.limits.listenRetryDelayMs,
      logger: this.logger,
      onConnection: (listener, socket) => this.accept(listener, socket),
    });
  }

  /** The route left the table: waiting clients are closed, piped ones run to their end. */
  private retire(endpoint: EndpointState): void {
    endpoint.route = null;
    endpoint.notify();
    this.release(endpoint);
  }

  private release(endpoint: EndpointState): void {
    if (endpoint.idle() && this.endpoints.get(endpoint.key) === endpoint) {
      this.endpoints.delete(endpoint.key);
    }
  }

  private accept(listener: Listener, socket: Socket): void {
    // Until the connection is piped, an error only ends this client; it must never reach the process.
    socket.on('error', (error) => {
      this.logger.log('debug', 'client connection failed', {
        endpoint: listener.endpointKey,
        error: error.message,
      });
    });
    const endpoint = this.endpoints.get(listener.endpointKey);
    if (this.closed || endpoint === undefined || endpoint.route === null) {
      socket.destroy();
      return;
    }
    if (endpoint.pending.size >= this.limits.pendingConnectionsMax) {
      endpoint.connectionsRejectedTotal += 1;
      // One line per overload episode; the count is in stats().
      if (!endpoint.overloaded) {
        this.logger.log('warn', 'too many clients waiting; closing new ones', {
          endpoint: endpoint.key,
          pendingConnectionsMax: this.limits.pendingConnectionsMax,
        });
      }
      endpoint.overloaded = true;
      socket.destroy();
      return;
    }
    endpoint.overloaded = false;
    endpoint.connectionsAcceptedTotal += 1;
    serveClient(socket, endpoint, this.context).catch((error: unknown) => {
      // serveClient handles every operating error itself; reaching here is a bug worth shouting about.
      this.logger.log('error', 'unexpected failure serving a client', { error: String(error) });
      socket.destroy();
    });
  }
}

function sameTarget(a: Route['target'], b: Route['target']): boolean {
  if (a === null || b === null) return a === b;
  return a.host === b.host && a.port === b.port && a.node === b.node;
}

function validateLimits(options: RedirectorOptions): RedirectorLimits {
  const limits = { ...redirectorDefaults };
  const minimums: Record<keyof RedirectorLimits, number> = {
    connectWaitMs: 0,
    pendingConnectionsMax: 1,
    connectAttemptTimeoutMs: 1,
    retryDelayMs: 1,
    listenRetryDelayMs: 1,
  };
  for (const name of Object.keys(minimums) as (keyof RedirectorLimits)[]) {
    const value = options[name];
    if (value === undefined) continue;
    if (!Number.isInteger(value) || value < minimums[name] || value > timerDelayMsMax) {
      throw new RangeError(
        `${name}: expected an integer from ${minimums[name]} to ${timerDelayMsMax}, got ${String(value)}`,
      );
    }
    limits[name] = value;
  }
  return limits;
}
