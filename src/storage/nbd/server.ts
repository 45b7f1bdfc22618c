// The NBD server: listeners on unix sockets and TCP, the set of open connections under
// connectionsMax, drain on close(), and the counters for metrics. Exports come from a catalog the
// owner supplies (the volume server plugs in its engine); the server never opens or closes devices.
import { createServer, type Server, type Socket } from 'node:net';
import { type Clock, type Logger, silentLogger } from '../../core/ports.js';
import { type LoopPoll, noLoopPoll } from '../../platform/loop-poll.js';
import { systemClock } from '../../platform/real-ports.js';
import { NbdConnection } from './connection.js';
import { copyCounters, newCounters, type NbdCounters } from './counters.js';
import type { NbdExportCatalog } from './exports.js';
import { type NbdLimits, resolveNbdLimits } from './limits.js';

export interface NbdServerOptions extends NbdExportCatalog {
  readonly limits?: Partial<NbdLimits>;
  readonly logger?: Logger;
  readonly clock?: Clock;
  /**
   * Keeps the event loop turning for a short window after replies leave (platform/loop-poll.ts).
   * Default: none. A process shares one among its servers and links.
   */
  readonly loopPoll?: LoopPoll;
}

/** Where to listen: a unix socket path, or a TCP port (0 picks a free one) on `host`. */
export interface NbdListenOptions {
  readonly socketPath?: string;
  readonly host?: string;
  readonly port?: number;
}

export type NbdAddress =
  | { readonly kind: 'unix'; readonly socketPath: string }
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number };

/** The NBD URI of an export at an address, as nbdinfo, nbdcopy and fio take it. */
export function nbdUri(address: NbdAddress, exportName: string): string {
  const name = encodeURIComponent(exportName);
  if (address.kind === 'unix') {
    return `nbd+unix:///${name}?socket=${encodeURIComponent(address.socketPath)}`;
  }
  const host = address.host.includes(':') ? `[${address.host}]` : address.host;
  return `nbd://${host}:${address.port}/${name}`;
}

export class NbdServer {
  readonly limits: NbdLimits;
  private readonly options: NbdServerOptions;
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly state: NbdCounters = newCounters();
  private readonly listeners = new Set<Server>();
  private readonly connections = new Set<NbdConnection>();
  private readonly idleWaiters: (() => void)[] = [];
  private nextConnectionId = 1;
  private closing = false;

  constructor(options: NbdServerOptions) {
    this.options = options;
    this.limits = resolveNbdLimits(options.limits);
    this.logger = options.logger ?? silentLogger;
    this.clock = options.clock ?? systemClock;
  }

  /** Starts one more listener; resolves with the bound address (the port, when 0 was asked). */
  async listen(options: NbdListenOptions): Promise<NbdAddress> {
    if (this.closing) throw new Error('NBD server: listen() after close()');
    const unix = options.socketPath !== undefined;
    if (unix === (options.port !== undefined)) {
      throw new RangeError('NBD listen: expected exactly one of socketPath or port');
    }
    if (!unix && !(Number.isInteger(options.port) && options.port! >= 0 && options.port! < 65536)) {
      throw new RangeError(`NBD listen: port must be 0-65535, got ${String(options.port)}`);
    }
    // Paused: a connection moves its socket onto slab receiving before reading (connection.ts).
    const server = createServer({ pauseOnConnect: true }, (socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      const ready = () => {
        server.off('error', reject);
        resolve();
      };
      if (unix) server.listen(options.socketPath, ready);
      else server.listen(options.port, options.host ?? '127.0.0.1', ready);
    });
    server.on('error', (error) =>
      this.logger.log('error', 'NBD listener failed', { error: error.message }),
    );
    this.listeners.add(server);
    const bound = server.address();
    const address: NbdAddress =
      unix || bound === null || typeof bound === 'string'
        ? { kind: 'unix', socketPath: options.socketPath! }
        : { kind: 'tcp', host: bound.address, port: bound.port };
    this.logger.log('info', 'NBD server listening', { ...address });
    return address;
  }

  /** A copy of the counters: connections, requests, bytes, errors. */
  counters(): NbdCounters {
    return copyCounters(this.state);
  }

  /**
   * Drain: stops listening, ends handshakes, lets every transmission finish the requests it has
   * (new ones get ESHUTDOWN), and cuts whatever is left after drainTimeoutMs.
   */
  async close(): Promise<void> {
    this.closing = true;
    const stopped = [...this.listeners].map(
      (server) => new Promise<void>((resolve) => server.close(() => resolve())),
    );
    this.listeners.clear();
    for (const connection of this.connections) connection.drain();
    const deadline = this.clock.setTimeout(() => {
      for (const connection of this.connections) connection.destroy('drain deadline passed');
    }, this.limits.drainTimeoutMs);
    await this.untilIdle();
    this.clock.clearTimeout(deadline);
    await Promise.all(stopped);
  }

  /** Abort: cuts every connection now; requests in flight get no reply. */
  async destroy(): Promise<void> {
    this.closing = true;
    for (const server of this.listeners) server.close();
    this.listeners.clear();
    for (const connection of this.connections) connection.destroy('server destroyed');
    await this.untilIdle();
  }

  private untilIdle(): Promise<void> {
    if (this.connections.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private accept(socket: Socket): void {
    const counters = this.state;
    counters.connectionsAccepted++;
    const peer =
      socket.remoteAddress === undefined ? 'unix' : `${socket.remoteAddress}:${socket.remotePort}`;
    if (this.closing || this.connections.size >= this.limits.connectionsMax) {
      counters.connectionsRefused++;
      const reason = this.closing
        ? 'server closing'
        : `connectionsMax ${this.limits.connectionsMax} reached`;
      this.logger.log('warn', 'refusing NBD connection', {
        code: 'CONTINUUM_ERR_NBD_CONNECTIONS_MAX',
        peer,
        reason,
      });
      socket.on('error', () => {});
      socket.destroy();
      return;
    }
    counters.connectionsOpen++;
    const logger = this.logger.child({ connection: this.nextConnectionId++, peer });
    const connection = new NbdConnection(
      socket,
      {
        catalog: this.options,
        limits: this.limits,
        counters,
        logger,
        clock: this.clock,
        loopPoll: this.options.loopPoll ?? noLoopPoll,
        onClosed: (closed) => this.onClosed(closed),
      },
      logger,
    );
    this.connections.add(connection);
  }

  private onClosed(connection: NbdConnection): void {
    if (!this.connections.delete(connection)) return;
    this.state.connectionsOpen--;
    if (this.connections.size === 0) {
      for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }
}
