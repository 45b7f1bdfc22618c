// Helpers for the channel tests: a notification to send, and a real webhook receiver on loopback
// that records each request with its raw body and headers.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Notification } from '../model.js';

export function sampleNotification(
  id = 'n-1',
  overrides: Partial<Notification> = {},
): Notification {
  return {
    id,
    channel: 'hook',
    group: { key: 'rule=failover', labels: { rule: 'failover' } },
    status: 'firing',
    createdAt: 1_700_000_000_000,
    test: false,
    alerts: [
      {
        id: 'failover/workload/web@7',
        rule: 'failover',
        severity: 'warning',
        subject: { kind: 'workload', name: 'web' },
        status: 'firing',
        change: 'fired',
        firedAt: 1_700_000_000_000,
        events: 2,
        lastEventKind: 'failover.started',
        message: 'node n1 is down: "quoted" [bracketed] \\ back-slashed, café',
      },
    ],
    omitted: 0,
    ...overrides,
  };
}

export interface ReceivedRequest {
  headers: IncomingHttpHeaders;
  body: string;
}

/** A webhook receiver answering each request with the next status of `statuses` (then 200). */
export async function startReceiver(statuses: number[] = []): Promise<{
  url: string;
  received: ReceivedRequest[];
  server: Server;
  close: () => Promise<void>;
  next: (count: number) => Promise<void>;
}> {
  const received: ReceivedRequest[] = [];
  const waiters: { count: number; resolve: () => void }[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (c: Buffer) => chunks.push(c));
    request.on('end', () => {
      received.push({ headers: request.headers, body: Buffer.concat(chunks).toString('utf8') });
      response.statusCode = statuses.shift() ?? 200;
      response.end('ok');
      for (const w of waiters.filter((w) => received.length >= w.count)) w.resolve();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook?token=abc`,
    received,
    server,
    close: () => new Promise((resolve) => server.close(() => resolve())),
    next: (count) =>
      received.length >= count
        ? Promise.resolve()
        : new Promise((resolve) => waiters.push({ count, resolve })),
  };
}

/** A port nothing listens on: bound, noted, closed. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
