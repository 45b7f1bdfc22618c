// Synchronous replication on real processes: the demo key-value service keeps its keys on a volume
// with two copies (ext4 over nbdfuse and a loop device on each node, the copies kept by the volume
// servers over TCP). A client writes numbered keys through the endpoint and records every
// acknowledgement; the node of the primary is killed (SIGKILL of its whole process group: agent,
// volume server, instance) at a random moment in the stream; after the failover every
// acknowledged key is read back with its value. The killed node then comes back, is resynced, and
// rejoins the in-sync set before the next round. Twenty rounds.
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { TestCluster, waitFor } from './harness/cluster.js';
import { ReplicatedKv, replicatedKvSkip, threeNodes } from './harness/replicated-kv.js';

const rounds = Number(process.env.REPLICATION_ROUNDS ?? 20);
const skip = await replicatedKvSkip();

describe('replicated volumes on real processes', { skip }, () => {
  const cluster = new TestCluster();
  const nodes = threeNodes;
  const kv = new ReplicatedKv(cluster, nodes);
  const logTail = (error: Error) => kv.logTail(error);

  before(() => kv.start());
  after(() => cluster.close());

  it(`loses no acknowledged key over ${rounds} kills of the primary's node`, async (t) => {
    const restoreMs: number[] = [];
    for (let round = 1; round <= rounds; round++) {
      const before = await cluster.workload('kv');
      const victim = before.node;
      assert.ok(victim !== null, `round ${round}: kv has an owner`);
      kv.startWriting(`r${round}`);
      // A random moment in the stream, once it flows (the first writes to a fresh file system
      // can take a while on a loaded machine).
      await kv.waitAcked(`round ${round}: a first key acknowledged`, 1, 30_000);
      await new Promise((r) => setTimeout(r, randomInt(200, 1500)));
      const ackedBeforeKill = kv.acked.size;
      const killedAt = Date.now();
      cluster.signalGroup(victim, 'SIGKILL');
      await cluster.waitExit(victim);
      const moved = await kv.waitMoved(
        `round ${round}: kv to fail over from ${victim}`,
        before.epoch,
        (n) => n !== victim,
      );
      const ackedAtFailover = kv.acked.size;
      restoreMs.push(Date.now() - killedAt);
      await waitFor(
        `round ${round}: writes to succeed on ${moved.node}`,
        30_000,
        () => kv.acked.size > ackedAtFailover + 5,
      ).catch(async (error: Error) => {
        // Straight to the instance, past the redirector, with time to answer.
        const view = await cluster.workload('kv');
        const direct = await fetch(`${kv.endpoint}/kv/probe`, {
          method: 'PUT',
          body: 'x',
          signal: AbortSignal.timeout(20_000),
        }).then(
          async (r) => `${r.status} ${await r.text()}`,
          (e: unknown) => String(e),
        );
        return logTail(new Error(`${error.message}\nkv: ${JSON.stringify(view)}\nPUT: ${direct}`));
      });
      await kv.stopWriting();
      const wrong = await kv.readBack();
      assert.deepEqual(
        wrong,
        [],
        `round ${round}: acknowledged keys lost after the failover to ${moved.node}`,
      );
      assert.ok(ackedBeforeKill > 0, `round ${round}: keys were acknowledged before the kill`);
      // The killed node comes back, is resynced, and rejoins the in-sync set.
      await cluster.startAgent(nodes.find((n) => n.name === victim)!);
      await kv.waitInSync(`round ${round}: two copies in sync again`, 90_000);
    }
    assert.ok(kv.acked.size > rounds * 10, `keys were acknowledged (${kv.acked.size})`);
    restoreMs.sort((a, b) => a - b);
    t.diagnostic(
      `${kv.acked.size} keys acknowledged and read back; kill to active on the new primary: ` +
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
