// Helpers shared by the redirector's tests: real sockets on 127.0.0.1, a logger that remembers,
// and waiting on a condition with a deadline instead of sleeping for a fixed time.
import { createServer as createHttpServer, type ServerResponse } from 'node:http';
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { Route, RouteTable } from '../core/model.js';
import type { Logger, LogLevel } from '../core/ports.js';

export const loopback = '127.0.0.1';

export interface LogEntry {
  level: LogLevel;
  message: string;
  fields: Record<string, unknown>;
}

export function captureLogger(): Logger & { entries: LogEntry[]; has(text: string): boolean } {
  const entries: LogEntry[] = [];
  const make = (base: Record<string, unknown>): Logger => ({
    log: (level, message, fields = {}) =>
      entries.push({ level, message, fields: { ...base, ...fields } }),
    child: (fields) => make({ ...base, ...fields }),
  });
  return Object.assign(make({}), {
    entries,
    has: (text: string) => entries.some((entry) => entry.message.includes(text)),
  });
}

/** Polls `condition` until it holds; fails with `what` after deadlineMs. */
export async function waitFor(
  what: string,
  condition: () => boolean | Promise<boolean>,
  deadlineMs = 5000,
): Promise<void> {
  const giveUpAt = performance.now() + deadlineMs;
  while (!(await condition())) {
    if (performance.now() > giveUpAt)
      throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A port that was free a moment ago (the kernel hands out ephemeral ports in turn, so reuse is rare). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen({ host: loopback, port: 0 }, resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface TestServer {
  port: number;
  server: Server;
  /** Stops listening and resets every connection, as a crashed instance would. */
  kill(): Promise<void>;
}

/** A TCP server that answers each chunk with `<name>:<chunk>` and ends when the client ends. */
export async function startTaggedEchoServer(name: string): Promise<TestServer> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => socket.write(`${name}:${chunk.toString()}`));
    socket.on('end', () => socket.end());
  });
  await new Promise<void>((resolve) => server.listen({ host: loopback, port: 0 }, resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    server,
    kill: async () => {
      const closed = new Promise((resolve) => server.close(resolve));
      for (const socket of sockets) socket.resetAndDestroy();
      await closed;
    },
  };
}

/** A client socket that collects what it receives. */
export class TestClient {
  readonly socket: Socket;
  received = '';
  ended = false;
  closed = false;
  error: Error | null = null;

  constructor(port: number) {
    this.socket = connect({ host: loopback, port, allowHalfOpen: true });
    this.socket.on('data', (chunk: Buffer) => (this.received += chunk.toString()));
    this.socket.on('end', () => (this.ended = true));
    this.socket.on('close', () => (this.closed = true));
    this.socket.on('error', (error) => (this.error = error));
  }

  async expectReceived(text: string): Promise<void> {
    await waitFor(`"${text}" (received so far: "${this.received}")`, () =>
      this.received.includes(text),
    );
  }

  /** The redirector ended or reset the connection (the client allows half-open, so may stay open). */
  async waitDisconnected(): Promise<void> {
    await waitFor('the redirector to end the connection', () => this.ended || this.closed);
  }

  async waitClosed(): Promise<void> {
    await waitFor('the client connection to close', () => this.closed);
  }
}

export function route(
  listenPort: number,
  target: { port: number; node?: string } | null,
  overrides: Partial<Route> = {},
): Route {
  return {
    workload: 'web',
    endpoint: 'http',
    listenHost: loopback,
    listenPort,
    epoch: 1,
    target:
      target === null ? null : { node: target.node ?? 'a', host: loopback, port: target.port },
    ...overrides,
  };
}

/** A stand-in for the controller's GET /v1/routes/stream. */
export class ControllerStub {
  current: RouteTable | null = null;
  /** Status answered to the next requests, front first; 200 once empty. */
  statuses: number[] = [];
  requests: { at: number; authorization: string | undefined }[] = [];
  private readonly streams = new Set<ServerResponse>();
  private server: ReturnType<typeof createHttpServer> | null = null;
  url = '';

  async start(): Promise<this> {
    this.server = createHttpServer((request, response) => {
      this.requests.push({ at: performance.now(), authorization: request.headers.authorization });
      const status = this.statuses.shift() ?? 200;
      if (request.url !== '/v1/routes/stream' || status !== 200) {
        response.writeHead(request.url === '/v1/routes/stream' ? status : 404).end('{}');
        return;
      }
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      response.write(': keep-alive\n\n');
      if (this.current !== null) this.send(response, JSON.stringify(this.current));
      this.streams.add(response);
      response.on('close', () => this.streams.delete(response));
    });
    await new Promise<void>((resolve) => this.server?.listen({ host: loopback, port: 0 }, resolve));
    this.url = `http://${loopback}:${(this.server.address() as { port: number }).port}`;
    return this;
  }

  publish(next: RouteTable): void {
    this.current = next;
    for (const response of this.streams) this.send(response, JSON.stringify(next));
  }

  /** Sends raw `data` text, valid or not, as a routes event, split in two writes. */
  send(response: ServerResponse | null, data: string): void {
    for (const target of response === null ? this.streams : [response]) {
      const text = `event: routes\ndata: ${data}\n\n`;
      target.write(text.slice(0, 9));
      target.write(text.slice(9));
    }
  }

  dropStreams(): void {
    for (const response of this.streams) response.destroy();
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (server === null) return;
    this.dropStreams();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}
