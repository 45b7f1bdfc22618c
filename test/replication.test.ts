// Synchronous replication on real processes: the demo key-value service keeps its keys on a volume
// with two copies (ext4 over nbdfuse and a loop device on each node, the copies kept by the volume
// servers over TCP). A client writes numbered keys through the endpoint and records every
// acknowledgement; the node of the primary is killed (SIGKILL of its whole process group: agent,
// volume server, instance) at a random moment in the stream; after the failover every
// acknowledged key is read back with its value. The killed node then comes back, is resynced, and
// rejoins the in-sync set before the next round. Twenty rounds.
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { detectAttachMethods } from '../src/storage/attach/index.js';
import { onPath } from './attach/harness.js';
import { demoServicePath, freePort, TestCluster, waitFor } from './harness/cluster.js';

const rounds = Number(process.env.REPLICATION_ROUNDS ?? 20);
const tools = ['nbdfuse', 'mkfs.ext4', 'losetup'];

function missing(): string | false {
  const absent = tools.find((tool) => !onPath(tool));
  return absent === undefined ? false : `${absent} is not installed`;
}

const detection = await detectAttachMethods();
const skip =
  missing() || (detection.preferred === null ? 'no volume attach method works here' : false);

interface Copies {
  replicas: string[];
  isr: string[];
  isrVersion: number;
}

describe('replicated volumes on real processes', { skip }, () => {
  const cluster = new TestCluster();
  const nodes = [
    { name: 'node-1', role: 'production' as const },
    { name: 'node-2', role: 'production' as const },
    { name: 'spare-1', role: 'spare' as const },
  ];
  let endpoint = '';
  const acked = new Map<string, string>();

  const copies = async (): Promise<Copies | undefined> => {
    const view = await cluster.api<{ volumes?: Record<string, Copies> }>('GET', '/v1/workloads/kv');
    return view.body.volumes?.kvdata;
  };

  const logTail = (error: Error): never => {
    const tails = nodes.flatMap(({ name }) =>
      ['volume-server.log', 'agent.log', 'run/kv/logs/output.log'].map((log) => {
        const file = join(cluster.nodeDir(name), log);
        const text = existsSync(file) ? readFileSync(file, 'utf8').slice(-4000) : '(none)';
        return `--- ${name} ${log} (end):\n${text}`;
      }),
    );
    throw new Error(`${error.message}\n${tails.join('\n')}`);
  };

  before(async () => {
    const port = await freePort();
    endpoint = `http://127.0.0.1:${port}`;
    await cluster.startController();
    const mountPath = join(cluster.dir, 'mnt', '{node}', 'kv');
    const applied = await cluster.api('POST', '/v1/apply', {
      apiVersion: 'continuum/v1',
      sites: [{ name: 'local' }],
      nodes: nodes.map((n) => ({
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
    for (const node of nodes) await cluster.startAgent(node);
    await cluster.startRedirector();
    await waitFor('kv to be active with two copies in sync', 60_000, async () => {
      const kv = await cluster.workload('kv');
      return kv.phase === 'active' && (await copies())?.isr.length === 2;
    }).catch(logTail);
  });
  after(() => cluster.close());

  /** One PUT; true only when the service answered with success (it fdatasyncs before answering). */
  const put = async (key: string, value: string): Promise<boolean> => {
    try {
      const response = await fetch(`${endpoint}/kv/${key}`, {
        method: 'PUT',
        body: value,
        signal: AbortSignal.timeout(2000),
      });
      await response.text();
      return response.ok;
    } catch {
      return false;
    }
  };

  const readBack = async (): Promise<string[]> => {
    const wrong: string[] = [];
    for (const [key, value] of acked) {
      const response = await fetch(`${endpoint}/kv/${key}`, { signal: AbortSignal.timeout(5000) });
      const body = await response.text();
      if (response.status !== 200 || body !== value)
        wrong.push(`${key}: expected ${value}, got ${response.status} ${body.slice(0, 80)}`);
    }
    return wrong;
  };

  it(`loses no acknowledged key over ${rounds} kills of the primary's node`, async (t) => {
    const restoreMs: number[] = [];
    for (let round = 1; round <= rounds; round++) {
      const before = await cluster.workload('kv');
      const victim = before.node;
      assert.ok(victim !== null, `round ${round}: kv has an owner`);
      let writing = true;
      let sent = 0;
      const writer = (async () => {
        while (writing) {
          const key = `r${round}-k${++sent}`;
          const value = `${round}:${sent}:${'x'.repeat(randomInt(1, 200))}`;
          if (await put(key, value)) acked.set(key, value);
          else await new Promise((r) => setTimeout(r, 50));
        }
      })();
      // A random moment in the stream, once it flows (the first writes to a fresh file system
      // can take a while on a loaded machine).
      const ackedAtStart = acked.size;
      await waitFor(
        `round ${round}: a first key acknowledged`,
        30_000,
        () => acked.size > ackedAtStart,
      ).catch(logTail);
      await new Promise((r) => setTimeout(r, randomInt(200, 1500)));
      const ackedBeforeKill = acked.size;
      const killedAt = Date.now();
      cluster.signalGroup(victim, 'SIGKILL');
      await cluster.waitExit(victim);
      const moved = await waitFor(
        `round ${round}: kv to fail over from ${victim}`,
        60_000,
        async () => {
          const kv = await cluster.workload('kv');
          return kv.phase === 'active' && kv.node !== victim && kv.epoch > before.epoch
            ? kv
            : undefined;
        },
      ).catch(logTail);
      const ackedAtFailover = acked.size;
      restoreMs.push(Date.now() - killedAt);
      await waitFor(
        `round ${round}: writes to succeed on ${moved.node}`,
        30_000,
        () => acked.size > ackedAtFailover + 5,
      ).catch(async (error: Error) => {
        // Straight to the instance, past the redirector, with time to answer.
        const kv = await cluster.workload('kv');
        const direct = await fetch(`${endpoint}/kv/probe`, {
          method: 'PUT',
          body: 'x',
          signal: AbortSignal.timeout(20_000),
        }).then(
          async (r) => `${r.status} ${await r.text()}`,
          (e: unknown) => String(e),
        );
        return logTail(new Error(`${error.message}\nkv: ${JSON.stringify(kv)}\nPUT: ${direct}`));
      });
      writing = false;
      await writer;
      const wrong = await readBack();
      assert.deepEqual(
        wrong,
        [],
        `round ${round}: acknowledged keys lost after the failover to ${moved.node}`,
      );
      assert.ok(ackedBeforeKill > 0, `round ${round}: keys were acknowledged before the kill`);
      // The killed node comes back, is resynced, and rejoins the in-sync set.
      await cluster.startAgent(nodes.find((n) => n.name === victim)!);
      await waitFor(`round ${round}: two copies in sync again`, 90_000, async () => {
        const current = await copies();
        return current?.isr.length === 2;
      }).catch(logTail);
    }
    assert.ok(acked.size > rounds * 10, `keys were acknowledged (${acked.size})`);
    restoreMs.sort((a, b) => a - b);
    t.diagnostic(
      `${acked.size} keys acknowledged and read back; kill to active on the new primary: ` +
        `median ${restoreMs[Math.floor(restoreMs.length / 2)]} ms, max ${restoreMs.at(-1)} ms`,
    );
    const resynced = await cluster.events('volume.resynced');
    assert.ok(
      resynced.length >= rounds,
      `every returning node was resynced (${resynced.length} resyncs)`,
    );
    const failovers = (await cluster.events('failover.decided')).length;
    assert.ok(failovers >= rounds, `one failover per kill (${failovers})`);
  });
});
