// The demo key-value service on a replicated volume (two copies, ext4 over nbdfuse and a loop
// device on each node), on a TestCluster of real processes: what the replication tests share. A
// writer PUTs numbered keys through the redirector's endpoint and records each acknowledgement
// (the service fdatasyncs before answering); readBack checks every acknowledged key.
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { join } from 'node:path';
import { detectAttachMethods } from '../../src/storage/attach/index.js';
import { onPath } from '../attach/harness.js';
import {
  demoServicePath,
  freePort,
  logEnd,
  type AgentSpec,
  type TestCluster,
  type WorkloadInfo,
  waitFor,
} from './cluster.js';

/**
 * Why the replicated-volume tests cannot run here (a tool missing, no way to attach a volume), or
 * false: they need nbdfuse, mkfs.ext4 and losetup, and `tools` besides.
 */
export async function replicatedKvSkip(tools: readonly string[] = []): Promise<string | false> {
  const absent = ['nbdfuse', 'mkfs.ext4', 'losetup', ...tools].find((tool) => !onPath(tool));
  if (absent !== undefined) return `${absent} is not installed`;
  const detection = await detectAttachMethods();
  return detection.preferred === null ? 'no volume attach method works here' : false;
}

export interface Copies {
  replicas: string[];
  isr: string[];
  isrVersion: number;
}

/** How long one PUT may take before the writer counts it as not acknowledged. */
const putTimeoutMs = 2000;

/** Two production nodes and a spare: a failover always has a node with a copy and one to refill. */
export const threeNodes: AgentSpec[] = [
  { name: 'node-1', role: 'production' },
  { name: 'node-2', role: 'production' },
  { name: 'spare-1', role: 'spare' },
];

export class ReplicatedKv {
  /** Every key the service acknowledged, with its value. */
  readonly acked = new Map<string, string>();
  /** When each acknowledged PUT was sent and answered (Date.now()), in order of the answers. */
  readonly ackTimes: { sentAt: number; ackedAt: number }[] = [];
  endpoint = '';
  private writing = false;
  private writer: Promise<void> | undefined;

  constructor(
    readonly cluster: TestCluster,
    readonly nodes: AgentSpec[],
  ) {}

  /** Controller, the kv workload with a 2-copy volume, the agents and the redirector; kv active. */
  async start(): Promise<void> {
    const { cluster } = this;
    const port = await freePort();
    this.endpoint = `http://127.0.0.1:${port}`;
    await cluster.startController();
    const mountPath = join(cluster.dir, 'mnt', '{node}', 'kv');
    const applied = await cluster.api('POST', '/v1/apply', {
      apiVersion: 'continuum/v1',
      sites: [{ name: 'local' }],
      nodes: this.nodes.map((n) => ({
        name: n.name,
        site: 'local',
        role: n.role,
        capacity: { cpu: 2, memoryMiB: 2048 },
      })),
      workloads: [
        {
          name: 'kv',
          driver: 'process',
          process: {
            command: [process.execPath, demoServicePath],
            cwd: mountPath,
            stopGraceMs: 2000,
          },
          resources: { cpu: 1, memoryMiB: 256 },
          endpoints: [{ name: 'http', port, host: '127.0.0.1' }],
          probes: [
            {
              name: 'health',
              type: 'http',
              endpoint: 'http',
              path: '/health',
              intervalMs: 300,
              failureThreshold: 2,
            },
          ],
          volumes: [{ name: 'kvdata', sizeMiB: 64, replicas: 2, mountPath }],
          availability: { mode: 'ha', priority: 500 },
        },
      ],
    });
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
    for (const node of this.nodes) await cluster.startAgent(node);
    await cluster.startRedirector();
    await this.waitInSync('kv to be active with two copies in sync', 60_000);
  }

  async copies(): Promise<Copies | undefined> {
    const view = await this.cluster.api<{ volumes?: Record<string, Copies> }>(
      'GET',
      '/v1/workloads/kv',
    );
    return view.body.volumes?.kvdata;
  }

  /** Waits for kv active with both copies in the ISR (a returning node resynced). */
  async waitInSync(what: string, timeoutMs: number): Promise<void> {
    await waitFor(what, timeoutMs, async () => {
      const kv = await this.cluster.workload('kv');
      return kv.phase === 'active' && (await this.copies())?.isr.length === 2;
    }).catch((error: Error) => this.logTail(error));
  }

  /** Waits for kv active at an epoch above `epoch` on a node `where` accepts (after a failover). */
  async waitMoved(
    what: string,
    epoch: number,
    where: (node: string | null) => boolean,
  ): Promise<WorkloadInfo> {
    return waitFor(what, 60_000, async () => {
      const now = await this.cluster.workload('kv');
      return now.phase === 'active' && where(now.node) && now.epoch > epoch ? now : undefined;
    }).catch((error: Error) => this.logTail(error));
  }

  /** One PUT; true only when the service answered with success. */
  async put(key: string, value: string): Promise<boolean> {
    try {
      const response = await fetch(`${this.endpoint}/kv/${key}`, {
        method: 'PUT',
        body: value,
        signal: AbortSignal.timeout(putTimeoutMs),
      });
      await response.text();
      return response.ok;
    } catch {
      return false;
    }
  }

  /** Starts writing keys `${prefix}-k<n>` in a loop, recording the acknowledged ones. */
  startWriting(prefix: string): void {
    this.writing = true;
    let sent = 0;
    this.writer = (async () => {
      while (this.writing) {
        const key = `${prefix}-k${++sent}`;
        const value = `${prefix}:${sent}:${'x'.repeat(randomInt(1, 200))}`;
        const sentAt = Date.now();
        if (await this.put(key, value)) {
          this.acked.set(key, value);
          this.ackTimes.push({ sentAt, ackedAt: Date.now() });
        } else await new Promise((r) => setTimeout(r, 50));
      }
    })();
  }

  async stopWriting(): Promise<void> {
    this.writing = false;
    await this.writer;
  }

  /** Waits until `count` more keys than now are acknowledged. */
  async waitAcked(what: string, count: number, timeoutMs: number): Promise<void> {
    const from = this.acked.size;
    await waitFor(what, timeoutMs, () => this.acked.size >= from + count).catch((error: Error) =>
      this.logTail(error),
    );
  }

  /** Every acknowledged key that does not read back with its value. */
  async readBack(): Promise<string[]> {
    const wrong: string[] = [];
    for (const [key, value] of this.acked) {
      const response = await fetch(`${this.endpoint}/kv/${key}`, {
        signal: AbortSignal.timeout(5000),
      });
      const body = await response.text();
      if (response.status !== 200 || body !== value)
        wrong.push(`${key}: expected ${value}, got ${response.status} ${body.slice(0, 80)}`);
    }
    return wrong;
  }

  /** Rethrows `error` with the end of every node's logs, for a failure that says why. */
  logTail(error: Error): never {
    const tails = this.nodes.flatMap(({ name }) =>
      ['volume-server.log', 'agent.log', 'run/kv/logs/output.log'].map((log) =>
        logEnd(join(this.cluster.nodeDir(name), log)),
      ),
    );
    throw new Error(`${error.message}\n${tails.join('\n')}`);
  }
}
