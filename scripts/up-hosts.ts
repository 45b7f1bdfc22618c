// `npm run up:hosts -- [--hosts N] [--port P]`: the multi-host cluster of the tests, for a person to
// try (issue 6 item 6). Needs root (network namespaces), etcd-server and nftables, as
// `npm test` installs them. N hosts as network namespaces, each with an etcd member, a controller
// and an agent; the redirector in a client namespace; the demo kv service. The controllers and the
// endpoint are relayed to loopback ports of this machine, so the CLI and curl work from any shell.
// Ctrl-C stops everything and removes the namespaces.
import { createServer, connect, type Server } from 'node:net';
import { parseArgs } from 'node:util';
import { waitFor } from '../test/harness/cluster.js';
import {
  multihostDemoSpec,
  NsCluster,
  nsClusterMissingReason,
} from '../test/harness/ns-cluster.js';

const { values } = parseArgs({
  options: {
    hosts: { type: 'string', default: '3' },
    port: { type: 'string', default: '7400' },
  },
});
const count = Number(values.hosts);
const basePort = Number(values.port);
if (!Number.isInteger(count) || count < 2 || count > 9)
  throw new RangeError(`--hosts: expected 2 to 9 hosts, got "${values.hosts}"`);
if (!Number.isInteger(basePort) || basePort < 1024 || basePort + count + 1 > 65535)
  throw new RangeError(`--port: expected a TCP port from 1024, got "${values.port}"`);

/** Relays 127.0.0.1:port of this namespace to a forwarder's Unix socket. */
function relay(port: number, socketPath: string): Promise<Server> {
  const server = createServer((client) => {
    const upstream = connect(socketPath);
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

async function main(): Promise<void> {
  const missing = nsClusterMissingReason();
  if (missing !== undefined) {
    process.stderr.write(`up:hosts: cannot run here: ${missing}\n`);
    process.exit(2);
  }
  const endpointPort = 8080;
  process.stdout.write(`starting ${count} hosts (etcd, controller and agent on each)...\n`);
  const cluster = await NsCluster.start({ hosts: count, name: 'up' });
  const relays: Server[] = [];
  const stop = async () => {
    for (const server of relays) server.close();
    await cluster.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
  try {
    const applied = await cluster.api(
      'POST',
      '/v1/apply',
      multihostDemoSpec(
        cluster.nodeMembers.map((h) => h.name),
        endpointPort,
      ),
    );
    if (applied.status !== 200) throw new Error(`apply: ${JSON.stringify(applied.body)}`);
    const endpoint = cluster.startRedirector(endpointPort);
    for (const [i, host] of cluster.members.entries())
      relays.push(await relay(basePort + i + 1, cluster.controllerSocket(host)));
    relays.push(await relay(basePort, endpoint));
    await waitFor(
      'kv to be active',
      60_000,
      async () => (await cluster.workload('kv')).phase === 'active',
    );
  } catch (err) {
    process.stderr.write(`up:hosts: ${String(err)}\n`);
    await stop();
    return;
  }
  const controllers = cluster.members.map((_, i) => `http://127.0.0.1:${basePort + i + 1}`);
  const leader = await cluster.leader();
  const lines = [
    '',
    `hosts (namespaces, ip netns list): ${cluster.members.map((h) => `${h.ns} ${h.ip}`).join(', ')}`,
    `client namespace: ${cluster.client.ns} (the redirector)`,
    `controller leader: ${cluster.controllerName(leader)} on ${leader.name}`,
    '',
    `  the demo service:  curl http://127.0.0.1:${basePort}/info`,
    `  the CLI:           export CONTINUUM_CONTROLLER=${controllers.join(',')}`,
    `                     node dist/cli/main.js get workloads --token-file ${cluster.controllerDir(cluster.members[0]!)}/api.token`,
    `  crash a host:      ip netns pids ${cluster.members[0]!.ns} | xargs kill -9; ip -n ${cluster.members[0]!.ns} link set eth0 down`,
    `  cut a host off:    ip -n ${cluster.members[0]!.ns} link set eth0 down   (and up again)`,
    `  logs:              ${cluster.dir}/*.log`,
    '',
    'Ctrl-C stops everything and removes the namespaces.',
    '',
  ];
  process.stdout.write(lines.join('\n'));
}

void main();
