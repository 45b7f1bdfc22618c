// One listening socket of the redirector. A listen error (EADDRINUSE, EACCES, an address not yet
// on this host) is logged and retried every listenRetryDelayMs: a redirector must never crash
// because another process briefly holds a port, and it must take the port as soon as it is free.
import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from '../core/ports.js';

export interface ListenerOptions {
  host: string;
  port: number;
  /** The endpoint whose clients this listener accepts; applyRoutes may rebind it. */
  endpointKey: string;
  listenRetryDelayMs: number;
  logger: Logger;
  onConnection(listener: Listener, socket: Socket): void;
}

export class Listener {
  readonly host: string;
  readonly port: number;
  endpointKey: string;
  private readonly options: ListenerOptions;
  private server: Server | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private failedAttempts = 0;
  private lastErrorCode: string | undefined;
  private listening = false;
  private closed = false;

  constructor(options: ListenerOptions) {
    this.options = options;
    this.host = options.host;
    this.port = options.port;
    this.endpointKey = options.endpointKey;
    this.start();
  }

  isListening(): boolean {
    return this.listening;
  }

  /** Stops accepting at once; connections already accepted are left to run. */
  close(): Promise<void> {
    this.closed = true;
    this.listening = false;
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const server = this.server;
    this.server = null;
    if (server === null) return Promise.resolve();
    // The callback waits for accepted connections to end; close() of the redirector destroys them.
    return new Promise((resolve) => server.close(() => resolve()));
  }

  private start(): void {
    // pauseOnConnect: a waiting client's bytes stay in the kernel until a target is connected.
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) =>
      this.options.onConnection(this, socket),
    );
    this.server = server;
    server.on('error', (error: NodeJS.ErrnoException) => this.onError(server, error));
    server.listen({ host: this.host, port: this.port }, () => {
      this.listening = true;
      this.options.logger.log('info', 'listening', {
        address: `${this.host}:${this.port}`,
        endpoint: this.endpointKey,
        failedAttempts: this.failedAttempts,
      });
    });
  }

  private onError(server: Server, error: NodeJS.ErrnoException): void {
    if (this.closed || server !== this.server) return;
    const fields = { address: `${this.host}:${this.port}`, endpoint: this.endpointKey };
    if (this.listening) {
      // An accept error (EMFILE, ...) once listening: the server keeps listening, so just report it.
      this.options.logger.log('warn', 'accept failed', { ...fields, error: error.message });
      return;
    }
    this.failedAttempts += 1;
    // The first failure, and any change of cause, is an error; the same cause again is noise.
    const level = error.code === this.lastErrorCode ? 'debug' : 'error';
    this.lastErrorCode = error.code;
    this.options.logger.log(
      level,
      `cannot listen; retrying every ${this.options.listenRetryDelayMs} ms`,
      {
        ...fields,
        error: error.message,
        failedAttempts: this.failedAttempts,
      },
    );
    this.server = null;
    server.close();
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (!this.closed) this.start();
    }, this.options.listenRetryDelayMs);
  }
}
