// Time to restore service after a node crash on the multi-host cluster: three control hosts (an
// etcd member and a controller each) and three nodes as network namespaces, the redirector in a
// client namespace (test/harness/ns-cluster.ts). Each run crashes the host running the demo
// service (every process frozen then killed, link down) and times until a request through the
// endpoint is answered by a new instance; the host then comes back (link up, a new agent).
import { waitFor } from '../test/harness/cluster.js';
import {
  multihostDemoSpec,
  NsCluster,
  nsClusterMissingReason,
  unixRequest,
} from '../test/harness/ns-cluster.js';
import { stats } from './restore.js';

const endpointPort = 18080;

async function servedPid(endpoint: string): Promise<{ pid: number; node: string } | undefined> {
  try {
    const reply = await unixRequest<{ pid: number; node: string }>(endpoint, 'GET', '/info', {
      timeoutMs: 1000,
    });
    return reply.status === 200 ? reply.body : undefined;
  } catch {
    return undefined;
  }
}

export async function benchMultihostRestore(options: {
  runs: number;
}): Promise<
  { skipped: string } | { runs: number; restoreMs: ReturnType<typeof stats>; samples: number[] }
> {
  const missing = nsClusterMissingReason();
  if (missing !== undefined) return { skipped: missing };
  const cluster = await NsCluster.start({ hosts: 6, controlHosts: 3, name: 'bm' });
  try {
    const spec = multihostDemoSpec(
      cluster.nodeMembers.map((h) => h.name),
      endpointPort,
    );
    const applied = await cluster.api('POST', '/v1/apply', spec);
    if (applied.status !== 200) throw new Error(`apply: ${JSON.stringify(applied.body)}`);
    const endpoint = cluster.startRedirector(endpointPort);
    await waitFor('kv to serve', 60_000, async () => (await servedPid(endpoint)) !== undefined);
    const samples: number[] = [];
    for (let run = 0; run < options.runs; run++) {
      const before = await waitFor('kv to serve', 60_000, () => servedPid(endpoint));
      const host = cluster.hostOf(before.node);
      const t0 = performance.now();
      await host.crash();
      const restoredMs = await waitFor(
        'service restored',
        60_000,
        async () => {
          const now = await servedPid(endpoint);
          return now !== undefined && now.pid !== before.pid ? performance.now() - t0 : undefined;
        },
        10,
      );
      samples.push(restoredMs);
      // The host comes back (a repaired machine), so every run has the same capacity.
      await host.linkUp();
      await cluster.startAgent(host);
      await waitFor(
        'kv active',
        60_000,
        async () => (await cluster.workload('kv')).phase === 'active',
      );
    }
    return { runs: samples.length, restoreMs: stats(samples), samples };
  } finally {
    await cluster.close();
  }
}
