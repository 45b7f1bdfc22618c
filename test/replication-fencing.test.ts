// Fencing on real processes, with the demo key-value service on a 2-copy volume (harness/
// replicated-kv.ts) and agents whose fence timeout is 3 s:
// - the primary's node hangs (SIGSTOP of its process group) past the detection timeout: the
//   workload fails over to the copy; on SIGCONT the old primary's writes are refused (it is
//   fenced), its instance stops, and every acknowledged key reads back;
// - the controller dies (SIGKILL) and the replica's node hangs: the primary's writes wait, and
//   after the fence timeout its agent self-fences (instance stopped, nothing acknowledged) with no
//   controller to ask; once the controller and the replica are back the workload runs again at a
//   new epoch, the journal says why it stopped, and every acknowledged key reads back.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { scanWorkloads, TestCluster, waitFor } from './harness/cluster.js';
import { ReplicatedKv, replicatedKvSkip } from './harness/replicated-kv.js';

const fenceTimeoutMs = 3000;
const skip = await replicatedKvSkip();

describe('fencing of replicated volumes on real processes', { skip }, () => {
  const cluster = new TestCluster();
  const args = ['--fence-timeout-ms', String(fenceTimeoutMs)];
  const nodes = [
    { name: 'node-1', role: 'production' as const, args },
    { name: 'node-2', role: 'production' as const, args },
  ];
  const kv = new ReplicatedKv(cluster, nodes);
  const logTail = (error: Error) => kv.logTail(error);

  /** Live kv processes at `epoch` on `node`, as /proc shows them. */
  const running = (node: string, epoch: number) =>
    scanWorkloads().filter(
      (p) =>
        p.cwd.startsWith(cluster.dir) &&
        p.workload === 'kv' &&
        p.node === node &&
        p.epoch === epoch,
    );
  const agentLog = (node: string): string => {
    const file = join(cluster.nodeDir(node), 'agent.log');
    return existsSync(file) ? readFileSync(file, 'utf8') : '';
  };

  before(() => kv.start());
  after(() => cluster.close());

  it("a hung primary's node is failed over; on SIGCONT its writes are refused and its instance stops", async () => {
    const before = await cluster.workload('kv');
    const victim = before.node!;
    kv.startWriting('hang');
    await kv.waitAcked('keys to flow', 3, 30_000);
    assert.equal(running(victim, before.epoch).length, 1, 'the instance runs on the primary');
    cluster.signalGroup(victim, 'SIGSTOP');
    const moved = await kv.waitMoved(
      `kv to fail over from ${victim}`,
      before.epoch,
      (n) => n !== victim,
    );
    await kv.waitAcked(`writes to succeed on ${moved.node!}`, 5, 30_000);
    cluster.signalGroup(victim, 'SIGCONT');
    // The old primary, resumed, reaches the copy that now serves a newer epoch and is refused.
    const fenced = await waitFor('the old primary to be fenced', 30_000, async () =>
      (await cluster.events('volume.fenced')).find(
        (e) => e.data?.node === victim && e.data.epoch === before.epoch,
      ),
    ).catch(logTail);
    assert.match(fenced.message, new RegExp(`primary on ${victim} at epoch ${before.epoch}`));
    await waitFor(`the old instance on ${victim} to stop`, 30_000, () =>
      running(victim, before.epoch).length === 0 ? true : undefined,
    ).catch(logTail);
    await kv.waitAcked('writes to go on after the old node resumed', 5, 30_000);
    await kv.stopWriting();
    assert.deepEqual(await kv.readBack(), [], 'every acknowledged key reads back');
    await kv.waitInSync('the old node to resync and rejoin the in-sync set', 90_000);
  });

  it('self-fences a primary whose writes wait with no controller, and the workload comes back at a new epoch', async (t) => {
    const before = await cluster.workload('kv');
    const owner = before.node!;
    const replica = nodes.map((n) => n.name).find((n) => n !== owner)!;
    kv.startWriting('fence');
    await kv.waitAcked('keys to flow', 3, 30_000);
    cluster.signalGroup('controller', 'SIGKILL');
    await cluster.waitExit('controller');
    const ackedWhileControllerDown = kv.acked.size;
    await kv.waitAcked('writes to go on with no controller', 3, 30_000);
    cluster.signalGroup(replica, 'SIGSTOP');
    const stoppedAt = Date.now();
    await waitFor(`the agent on ${owner} to self-fence`, 60_000, () =>
      agentLog(owner).includes('self-fencing: cut off from the controller') ? true : undefined,
    ).catch(logTail);
    await waitFor(`the instance on ${owner} to stop`, 30_000, () =>
      running(owner, before.epoch).length === 0 ? true : undefined,
    ).catch(logTail);
    const fencedAfterMs = Date.now() - stoppedAt;
    assert.ok(
      fencedAfterMs >= fenceTimeoutMs,
      `not before the fence timeout (${fencedAfterMs} ms)`,
    );
    assert.ok(
      kv.acked.size > ackedWhileControllerDown,
      'the controller outage alone stopped nothing',
    );
    // Back: the controller (same store) and the replica's node.
    await cluster.startController();
    cluster.signalGroup(replica, 'SIGCONT');
    const back = await waitFor('kv to run again at a new epoch', 90_000, async () => {
      const now = await cluster.workload('kv');
      return now.phase === 'active' && now.epoch > before.epoch ? now : undefined;
    }).catch(logTail);
    await kv.waitAcked(`writes to succeed on ${back.node!}`, 5, 30_000);
    await kv.stopWriting();
    assert.deepEqual(await kv.readBack(), [], 'every acknowledged key reads back');
    const journaled = (await cluster.events('volume.fenced')).find(
      (e) => e.data?.node === owner && e.data.epoch === before.epoch,
    );
    assert.match(journaled?.message ?? '', /self-fenced: operations waited \d+ ms/);
    const move = (await cluster.events('failover.decided')).at(-1);
    assert.match(move?.message ?? '', new RegExp(`the instance on ${owner} was fenced at epoch`));
    t.diagnostic(
      `self-fenced ${fencedAfterMs} ms after the replica hung; ${move?.message ?? ''}; ` +
        `${kv.acked.size} keys read back`,
    );
  });
});
