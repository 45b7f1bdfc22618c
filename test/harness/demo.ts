// The standard test topology: a controller, node-1 and node-2 (production), spare-1 (spare), the
// redirector, and the demo key-value service protected by an HTTP health probe.
import { demoNodes, demoSpec } from '../../src/cli/demo-spec.js';
import { demoServicePath, freePort, TestCluster, waitFor, type WorkloadInfo } from './cluster.js';

export interface Demo {
  cluster: TestCluster;
  endpoint: string;
}

export interface DemoOptions {
  /** Overrides the demo's restart policy (benchmarks use a short window). */
  restart?: {
    maxRestarts: number;
    windowMs: number;
    backoffInitialMs: number;
    backoffMaxMs: number;
  };
}

export async function startDemo(options: DemoOptions = {}): Promise<Demo> {
  const cluster = new TestCluster();
  try {
    await cluster.startController();
    const endpointPort = await freePort();
    const spec = demoSpec({ endpointPort, servicePath: demoServicePath });
    if (options.restart !== undefined) {
      for (const w of spec.workloads ?? [])
        w.availability = { ...w.availability, restart: options.restart };
    }
    const applied = await cluster.api('POST', '/v1/apply', spec);
    if (applied.status !== 200) throw new Error(`apply failed: ${JSON.stringify(applied.body)}`);
    for (const node of demoNodes) await cluster.startAgent(node);
    await cluster.startRedirector();
    const endpoint = `http://127.0.0.1:${endpointPort}`;
    await waitFor(
      'kv to be active',
      20_000,
      async () => (await cluster.workload('kv')).phase === 'active',
    );
    await waitFor('the endpoint to serve', 20_000, () => serves(endpoint));
    return { cluster, endpoint };
  } catch (err) {
    await cluster.close();
    throw err;
  }
}

/** One request through the endpoint; true if the service answered healthy. */
export async function serves(endpoint: string, timeoutMs = 2000): Promise<boolean> {
  try {
    const response = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(timeoutMs) });
    await response.text();
    return response.ok;
  } catch {
    return false;
  }
}

export async function info(
  endpoint: string,
): Promise<{ pid: number; node: string; epoch: number }> {
  const response = await fetch(`${endpoint}/info`, { signal: AbortSignal.timeout(5000) });
  return (await response.json()) as { pid: number; node: string; epoch: number };
}

export async function activeOn(
  cluster: TestCluster,
  predicate: (w: WorkloadInfo) => boolean,
  what: string,
  timeoutMs = 20_000,
): Promise<WorkloadInfo> {
  return waitFor(what, timeoutMs, async () => {
    const w = await cluster.workload('kv');
    return w.phase === 'active' && predicate(w) ? w : undefined;
  });
}
