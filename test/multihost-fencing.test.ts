// A node isolated from everything, on hosts as network namespaces (issue 6 Show): three hosts with
// an etcd member, a controller and an agent each; the demo kv service keeps its keys on a volume
// replicated on two of them. A client writes numbered keys through the redirector and records
// each acknowledgement, and a local client on the primary's host keeps writing to it directly.
// The primary's host is then cut off from every other host and the client: its workload fails
// over to the host with the in-sync copy, its agent self-fences (its writes wait on a replica it
// cannot reach and no controller answers), after the heal there is never a moment with two
// instances at one epoch, and every acknowledged key reads back.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { scanWorkloads, waitFor } from './harness/cluster.js';
import {
  multihostDemoSpec,
  NsCluster,
  nsClusterMissingReason,
  unixRequest,
} from './harness/ns-cluster.js';
import { replicatedKvSkip } from './harness/replicated-kv.js';

const endpointPort = 18080;
const fenceTimeoutMs = 3000;
const skip = nsClusterMissingReason() ?? (await replicatedKvSkip());

/** PUTs from the primary's own host, straight to the instance, for ever: writes that must wait. */
const localWriterScript = `
const http = require('node:http');
const [host, port] = process.argv.slice(1);
let n = 0;
const put = () => {
  const req = http.request({ host, port: Number(port), method: 'PUT', path: '/kv/local-' + n++, timeout: 60000 }, (res) => {
    res.resume();
    res.on('end', put);
  });
  req.on('error', () => setTimeout(put, 100));
  req.on('timeout', () => req.destroy());
  req.end('local');
};
put();
put();
`;

interface Copies {
  isr: string[];
  outdated: Record<string, unknown>;
}

/** The demo kv on a 2-copy volume, and a client writing numbered keys through the redirector. */
class Writer {
  readonly acked = new Map<string, string>();
  private writing = true;
  private loop: Promise<void> | undefined;

  private constructor(
    readonly cluster: NsCluster,
    readonly endpoint: string,
  ) {}

  static async start(cluster: NsCluster): Promise<Writer> {
    const spec = multihostDemoSpec(
      cluster.nodeMembers.map((h) => h.name),
      endpointPort,
    );
    const kv = spec.workloads[0]!;
    const mountPath = `${cluster.dir}/mnt/{node}`;
    Object.assign(kv, { volumes: [{ name: 'kvdata', sizeMiB: 64, replicas: 2, mountPath }] });
    Object.assign(kv.process, { cwd: mountPath });
    const applied = await cluster.api('POST', '/v1/apply', spec);
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
    const writer = new Writer(cluster, cluster.startRedirector(endpointPort));
    await writer.waitInSync('kv active with two copies in sync', 90_000);
    writer.loop = writer.write();
    return writer;
  }

  async copies(): Promise<Copies | undefined> {
    const view = await this.cluster.api<{ volumes?: Record<string, Copies> }>(
      'GET',
      '/v1/workloads/kv',
    );
    return view.body.volumes?.kvdata;
  }

  async waitInSync(what: string, timeoutMs: number): Promise<void> {
    await waitFor(what, timeoutMs, async () => {
      const kv = await this.cluster.workload('kv');
      const copies = await this.copies();
      if (
        kv.phase === 'active' &&
        copies !== undefined &&
        copies.isr.length >= 2 &&
        Object.keys(copies.outdated).length === 0
      )
        return true;
      // Says, on a timeout, what it last saw.
      throw new Error(`kv ${kv.phase} on ${kv.node}, copies ${JSON.stringify(copies)}`);
    });
  }

  private async put(key: string, value: string): Promise<boolean> {
    try {
      const reply = await unixRequest(this.endpoint, 'PUT', `/kv/${key}`, {
        body: value,
        timeoutMs: 2000,
      });
      return reply.status === 204;
    } catch {
      return false;
    }
  }

  private async write(): Promise<void> {
    for (let n = 0; this.writing; n++) {
      const key = `k${n}`;
      const value = `v${n}-${Date.now()}`;
      if (await this.put(key, value)) this.acked.set(key, value);
      else await new Promise((r) => setTimeout(r, 50));
    }
  }

  async waitAcked(what: string, count: number, timeoutMs: number): Promise<void> {
    const start = this.acked.size;
    await waitFor(what, timeoutMs, () => this.acked.size >= start + count);
  }

  /** The kv processes of this cluster that really run (read from /proc). */
  processes() {
    return scanWorkloads().filter((p) => p.workload === 'kv' && p.cwd.startsWith(this.cluster.dir));
  }

  assertNoTwoAtOneEpoch(): void {
    const running = this.processes();
    const epochs = running.map((p) => p.epoch);
    assert.equal(
      new Set(epochs).size,
      epochs.length,
      `two at one epoch: ${JSON.stringify(running)}`,
    );
  }

  async noTwoAtOneEpochFor(ms: number): Promise<void> {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      this.assertNoTwoAtOneEpoch();
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Stops writing; the acknowledged keys that do not read back with their value. */
  async readBack(): Promise<string[]> {
    await this.stop();
    const lost: string[] = [];
    for (const [key, value] of this.acked) {
      const reply = await unixRequest<string>(this.endpoint, 'GET', `/kv/${key}`, {
        timeoutMs: 5000,
      });
      if (reply.status !== 200 || String(reply.body) !== value) lost.push(key);
    }
    this.writing = true;
    this.loop = this.write();
    return lost;
  }

  async stop(): Promise<void> {
    this.writing = false;
    await this.loop;
  }
}

describe('several hosts in network namespaces: a node isolated from everything', { skip }, () => {
  let cluster: NsCluster;
  let kv: Writer;

  before(async () => {
    cluster = await NsCluster.start({ hosts: 3, fenceTimeoutMs });
    kv = await Writer.start(cluster);
  });
  after(async () => {
    await kv?.stop();
    await cluster?.close();
  });

  it('fails its workload over, self-fences, never runs two instances at one epoch, and loses no acknowledged write', async (t) => {
    await kv.waitAcked('the first writes', 20, 30_000);
    const before = await cluster.workload('kv');
    const owner = cluster.hostOf(before.node);
    const instances = await cluster.api<{
      items: { workload: string; node: string; ports: Record<string, number> }[];
    }>('GET', '/v1/instances');
    const port = instances.body.items.find((i) => i.workload === 'kv' && i.node === owner.name)
      ?.ports.http;
    assert.ok(port !== undefined, 'the instance port');
    owner.spawn([process.execPath, '-e', localWriterScript, owner.ip, String(port)]);
    const ackedBefore = kv.acked.size;

    const cutAt = Date.now();
    const others = cluster.members.filter((h) => h !== owner);
    await cluster.hosts.partition([owner], [...others, cluster.client]);
    const moved = await waitFor('kv to fail over to the in-sync copy', 60_000, async () => {
      const now = await cluster.workload('kv');
      return now.phase === 'active' && now.node !== owner.name ? now : undefined;
    });
    assert.ok(moved.epoch > before.epoch);
    await kv.waitAcked(`writes to succeed on ${moved.node!}`, 10, 30_000);
    const restoredMs = Date.now() - cutAt;
    assert.ok(kv.acked.size > ackedBefore);

    // Cut off, with writes waiting on a replica it cannot reach: the agent fences the primary and
    // stops its instance on its own.
    await waitFor('the cut-off agent to self-fence', 30_000, () =>
      cluster.log(`agent-${owner.name}`).includes('self-fencing: cut off from the controller'),
    );
    const fencedAfterMs = Date.now() - cutAt;
    assert.ok(
      fencedAfterMs >= fenceTimeoutMs,
      `not before the fence timeout (${fencedAfterMs} ms)`,
    );
    await waitFor('the old instance to stop', 15_000, () =>
      kv.processes().every((p) => p.epoch !== before.epoch),
    );

    await cluster.hosts.heal();
    // From the heal on: never two kv processes at one epoch, and the fence is journaled.
    await waitFor(
      'the self-fence in the journal',
      30_000,
      async () => {
        kv.assertNoTwoAtOneEpoch();
        const fenced = await cluster.events('volume.fenced');
        return fenced.some((e) => /self-fenced/.test(e.message));
      },
      100,
    );
    await kv.waitAcked('writes after the heal', 10, 30_000);
    assert.deepEqual(await kv.readBack(), [], 'every acknowledged key reads back');
    t.diagnostic(
      `served again ${restoredMs} ms after the cut, self-fenced after ${fencedAfterMs} ms; ` +
        `${kv.acked.size} acknowledged keys read back`,
    );
  });
});

describe('several hosts in network namespaces: cut off from the controllers only', { skip }, () => {
  let cluster: NsCluster;
  let kv: Writer;

  before(async () => {
    // Three control hosts (etcd and a controller each) apart from three nodes, so that a node can
    // lose the controllers and keep its replica.
    cluster = await NsCluster.start({ hosts: 6, controlHosts: 3, fenceTimeoutMs });
    kv = await Writer.start(cluster);
  });
  after(async () => {
    await kv?.stop();
    await cluster?.close();
  });

  it('the primary cut off from the controllers: the in-sync replica takes over at a new epoch, the old primary is fenced by it, nothing acknowledged is lost', async () => {
    await kv.waitAcked('the first writes', 20, 30_000);
    const before = await cluster.workload('kv');
    const owner = cluster.hostOf(before.node);
    await cluster.hosts.partition([owner], cluster.controlMembers);
    const moved = await waitFor('kv to fail over to the in-sync copy', 60_000, async () => {
      const now = await cluster.workload('kv');
      return now.phase === 'active' && now.node !== owner.name ? now : undefined;
    });
    assert.ok(moved.epoch > before.epoch);
    // The new primary made its copy accept the new epoch first: the old one is refused there.
    await waitFor('the old instance to stop', 30_000, () =>
      kv.processes().every((p) => p.epoch !== before.epoch),
    );
    await kv.waitAcked(`writes to succeed on ${moved.node!}`, 10, 30_000);
    await cluster.hosts.heal();
    await kv.noTwoAtOneEpochFor(3000);
    assert.deepEqual(await kv.readBack(), [], 'every acknowledged key reads back');
  });

  it('the replica cut off from the controllers: it still acknowledges every write, so it stays in sync; the primary keeps its epoch and nothing is lost', async () => {
    await kv.waitInSync('both copies in sync again', 90_000);
    const before = await cluster.workload('kv');
    const copies = await kv.copies();
    const replica = cluster.hostOf(copies!.isr.find((n) => n !== before.node)!);
    await cluster.hosts.partition([replica], cluster.controlMembers);
    await waitFor("the replica's node to be judged down", 30_000, async () => {
      const node = await cluster.api<{ state: string }>('GET', `/v1/nodes/${replica.name}`);
      return node.body.state === 'down';
    });
    // Only the primary may ask for a replica to leave the in-sync set, and only one that stops
    // answering: this one answers, so it stays, and every write still reaches both copies.
    await kv.waitAcked('writes while the replica is cut off from the controllers', 20, 30_000);
    const during = await cluster.workload('kv');
    assert.equal(during.epoch, before.epoch, 'the primary kept its epoch');
    assert.equal(during.node, before.node);
    assert.ok((await kv.copies())?.isr.includes(replica.name), 'the replica is still in sync');
    await cluster.hosts.heal();
    await waitFor("the replica's node to be up again", 30_000, async () => {
      const node = await cluster.api<{ state: string }>('GET', `/v1/nodes/${replica.name}`);
      return node.body.state === 'up';
    });
    // While its node was judged down the controller placed a third copy to restore redundancy;
    // the returning one is still in sync, so all are.
    await kv.waitInSync('every copy in sync', 60_000);
    assert.ok((await kv.copies())?.isr.includes(replica.name));
    assert.equal((await cluster.workload('kv')).epoch, before.epoch);
    assert.deepEqual(await kv.readBack(), [], 'every acknowledged key reads back');
  });
});
