// The standard test topology: a controller, node-1 and node-2 (production), spare-1 (spare), the
// redirector, and the demo key-value service protected by an HTTP health probe; and a client that
// keeps sending requests through its endpoint.
import { request as httpRequest } from 'node:http';
import { demoNodes, demoSpec } from '../../src/cli/demo-spec.js';
import {
  demoServicePath,
  freePort,
  TestCluster,
  waitFor,
  type AgentSpec,
  type TestClusterOptions,
  type WorkloadInfo,
} from './cluster.js';

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
  /** Replaces the demo's nodes (the chaos run uses four); each gets the demo's node capacity. */
  nodes?: AgentSpec[];
  /** Probes added to the demo workload's own health check. */
  extraProbes?: Record<string, unknown>[];
  /** Several controllers sharing this etcd (they elect a leader) instead of one on SQLite. */
  etcd?: TestClusterOptions['etcd'];
  /** The controllers' --down-after-ms (default 1200). */
  downAfterMs?: number;
}

export async function startDemo(options: DemoOptions = {}): Promise<Demo> {
  const cluster = new TestCluster({
    ...(options.etcd === undefined ? {} : { etcd: options.etcd }),
    ...(options.downAfterMs === undefined ? {} : { downAfterMs: options.downAfterMs }),
  });
  try {
    for (let index = 0; index < (options.etcd?.controllers ?? 1); index++)
      await cluster.startController(index);
    if (options.etcd !== undefined) await cluster.leader();
    const endpointPort = await freePort();
    const spec = demoSpec({ endpointPort, servicePath: demoServicePath });
    if (options.restart !== undefined) {
      for (const w of spec.workloads ?? [])
        w.availability = { ...w.availability, restart: options.restart };
    }
    if (options.extraProbes !== undefined) {
      for (const w of spec.workloads ?? [])
        w.probes = [...(w.probes ?? []), ...(options.extraProbes as typeof w.probes & [])];
    }
    const nodes = options.nodes ?? demoNodes;
    if (options.nodes !== undefined) {
      const template = spec.nodes![0]!;
      spec.nodes = options.nodes.map((n) => ({ ...template, name: n.name, role: n.role }));
    }
    const applied = await cluster.api('POST', '/v1/apply', spec);
    if (applied.status !== 200) throw new Error(`apply failed: ${JSON.stringify(applied.body)}`);
    for (const node of nodes) await cluster.startAgent(node);
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

export interface EndpointClientLimits {
  requestTimeoutMs: number;
  /** Pause between requests, so the client does not starve the cluster of CPU. */
  pauseMs: number;
  requestsMax: number;
  /** The loop ends by itself after this long even if nobody stops it. */
  runMs: number;
}

/**
 * A client that sends sequential requests through the endpoint, each on a new connection (so each
 * goes through the redirector's routing): mostly GET /health, now and then a PUT or a GET of a key.
 */
export class EndpointClient {
  private requests = 0;
  private succeeded = 0;
  private keyReadsMissing = 0;
  private longestOutageMs = 0;
  private lastSuccessAt = Date.now();
  private stopped = false;
  private done: Promise<void> = Promise.resolve();

  constructor(
    private readonly endpoint: string,
    private readonly random: () => number,
    private readonly limits: EndpointClientLimits,
  ) {}

  start(): void {
    this.lastSuccessAt = Date.now();
    this.done = this.loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }

  counts() {
    const { requests, succeeded, keyReadsMissing, longestOutageMs } = this;
    const successShare = requests === 0 ? 0 : succeeded / requests;
    return { requests, succeeded, successShare, longestOutageMs, keyReadsMissing };
  }

  private async loop(): Promise<void> {
    const endAt = Date.now() + this.limits.runMs;
    let written: string | undefined;
    while (!this.stopped && this.requests < this.limits.requestsMax && Date.now() < endAt) {
      const draw = this.random();
      let ok: boolean;
      if (draw < 0.05) {
        const key = `chaos-${this.requests}`;
        ok = (await this.send('PUT', `/kv/${key}`, key)) === 204;
        if (ok) written = key;
      } else if (draw < 0.1 && written !== undefined) {
        const status = await this.send('GET', `/kv/${written}`);
        // A missing key is the service answering; the demo keeps its data on its node.
        if (status === 404) this.keyReadsMissing++;
        ok = status === 200 || status === 404;
      } else ok = (await this.send('GET', '/health')) === 200;
      this.requests++;
      // A request the redirector held through a failover counts in the gap until it succeeded.
      this.longestOutageMs = Math.max(this.longestOutageMs, Date.now() - this.lastSuccessAt);
      if (ok) {
        this.succeeded++;
        this.lastSuccessAt = Date.now();
      }
      await new Promise((r) => setTimeout(r, this.limits.pauseMs));
    }
  }

  /** The response status, or 0 if the request failed or timed out. */
  private send(method: string, path: string, body?: string): Promise<number> {
    return new Promise((resolve) => {
      const request = httpRequest(
        `${this.endpoint}${path}`,
        { method, agent: false, signal: AbortSignal.timeout(this.limits.requestTimeoutMs) },
        (response) => {
          response.resume();
          response.on('end', () => resolve(response.statusCode ?? 0));
          response.on('error', () => resolve(0));
        },
      );
      request.on('error', () => resolve(0));
      request.end(body);
    });
  }
}
