// A small HTTP listener that serves one Prometheus registry at GET /metrics, for the daemons that
// have no HTTP server of their own (agent, redirector) and for a controller told to serve metrics
// without auth on a separate address (`continuum controller --metrics-listen`). It answers
// nothing else, so binding it to a wider address than the API exposes no control.
import { createServer, type Server } from 'node:http';
import { isIPv4, isIPv6 } from 'node:net';
import type { Logger } from '../core/ports.js';

export interface MetricsSource {
  /** The text exposition, computed now. */
  scrape(): Promise<string>;
  readonly contentType: string;
}

export interface MetricsListener {
  /** Where the metrics are, http://host:port/metrics. */
  readonly url: string;
  close(): Promise<void>;
}

/** "host:port" with an IPv4 address or a bracketed IPv6 one; port 0 takes any free port. */
export function parseMetricsListen(
  text: string,
  flag = '--metrics-listen',
): {
  host: string;
  port: number;
} {
  const match = /^(?:\[([^\]]*)\]|([^:[\]]*)):(\d{1,5})$/.exec(text);
  const expected =
    'expected host:port with an IPv4 address or a bracketed IPv6 one, port 0 to 65535';
  if (match === null) throw new Error(`${flag}: ${expected}, got "${text}"`);
  const [, ipv6, ipv4, portText] = match;
  const port = Number(portText);
  const host = ipv6 ?? ipv4!;
  const validHost = ipv6 !== undefined ? isIPv6(ipv6) : isIPv4(host);
  if (!validHost || port > 65535) throw new Error(`${flag}: ${expected}, got "${text}"`);
  return { host, port };
}

export async function listenMetrics(
  listen: string,
  source: MetricsSource,
  logger: Logger,
): Promise<MetricsListener> {
  const { host, port } = parseMetricsListen(listen);
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (request.method !== 'GET' || path !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics here\n');
      return;
    }
    source.scrape().then(
      (text) => response.writeHead(200, { 'content-type': source.contentType }).end(text),
      (err: unknown) => {
        logger.log('warn', 'metrics scrape failed', { error: String(err) });
        response.writeHead(500, { 'content-type': 'text/plain' }).end('scrape failed\n');
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  const bound = typeof address === 'object' && address !== null ? address.port : port;
  const shown = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shown}:${bound}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
