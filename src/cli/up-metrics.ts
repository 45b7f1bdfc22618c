// Where `continuum up` serves each daemon's Prometheus metrics: a free loopback port per agent and
// for the redirector, chosen before they start (they bind it with --metrics-listen), so that `up`
// can print every address. A port taken by someone else in between makes that daemon fail its
// start, which its log says; the rest of the demo runs on.
import { createServer } from 'node:net';

const loopback = '127.0.0.1';

function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, loopback, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** A metrics address ("127.0.0.1:port") for each daemon name. */
export async function metricsAddresses(names: string[]): Promise<Map<string, string>> {
  const addresses = new Map<string, string>();
  for (const name of names) addresses.set(name, `${loopback}:${await freeLoopbackPort()}`);
  return addresses;
}

/** The lines `up` prints: the controller's (token needed) and each daemon's (no auth). */
export function metricsLines(controllerUrl: string, addresses: Map<string, string>): string[] {
  const width = Math.max(...[...addresses.keys()].map((n) => n.length), 'controller'.length);
  return [
    'Prometheus metrics (docs/metrics.md):',
    `  ${'controller'.padEnd(width)}  ${controllerUrl}/metrics    (Authorization: Bearer <API token>)`,
    ...[...addresses].map(
      ([name, address]) => `  ${name.padEnd(width)}  http://${address}/metrics`,
    ),
  ];
}
