// Resync and the guest file system on real processes, with the demo key-value service on a 2-copy
// volume (harness/replicated-kv.ts):
// - the replica's node is killed and stays away while keys are written; when it returns its copy
//   is resynced by delta, copying at most a small factor of the bytes clients wrote meanwhile
//   (the primary's NBD counters), and it rejoins the in-sync set;
// - the primary's node is then killed during writes (each fdatasynced before it is answered):
//   the workload fails over to the resynced copy, every acknowledged key reads back, and the ext4
//   file system read from the new primary (after replaying its journal, as a mount would) passes
//   `e2fsck -fn`, with every acknowledged key in the service's data file;
// - blocks of a replica's copy rot on disk while its node hangs (bytes flipped in its data file,
//   checksums left as recorded): the verify pass when it reconnects finds them and copies them
//   again, and after a failover to that copy every acknowledged key reads back right.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  statSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { z } from 'zod';
import { callVolumeServer } from '../src/agent/volume-jobs.js';
import { dataFileName } from '../src/demo/kv-service.js';
import { serverMallocTunables } from '../src/platform/malloc-tunables.js';
import { TestCluster, waitFor } from './harness/cluster.js';
import { ReplicatedKv, replicatedKvSkip } from './harness/replicated-kv.js';

/** A delta resync may copy at most this many times the bytes written while the replica was away. */
const deltaFactorMax = 4;
const skip = await replicatedKvSkip(['nbdcopy', 'e2fsck', 'debugfs']);

const helloSchema = z.object({ pid: z.number(), nbd: z.object({ bytesWritten: z.number() }) });

describe('resync and ext4 across failover on real processes', { skip }, () => {
  const cluster = new TestCluster();
  const nodes = [
    { name: 'node-1', role: 'production' as const },
    { name: 'node-2', role: 'production' as const },
  ];
  const kv = new ReplicatedKv(cluster, nodes);
  const logTail = (error: Error) => kv.logTail(error);

  /** What a node's volume server answers to hello. */
  const hello = async (node: string): Promise<z.infer<typeof helloSchema>> => {
    const answer = await callVolumeServer(cluster.nodeDir(node), { op: 'hello' });
    assert.ok(answer !== null, `the volume server of ${node} answers`);
    return helloSchema.parse(answer.result);
  };

  /** Bytes NBD clients have written through a node's volume server since it started. */
  const bytesWritten = async (node: string): Promise<number> =>
    (await hello(node)).nbd.bytesWritten;

  /** The GLIBC_TUNABLES a node's volume server runs with, read from /proc. */
  const mallocTunablesOf = async (node: string): Promise<string | undefined> => {
    const { pid } = await hello(node);
    const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    return environ.find((entry) => entry.startsWith('GLIBC_TUNABLES='))?.slice(15);
  };

  /**
   * Flips the bytes of every 8th block-sized slot of each layer data file of a node's volume
   * store (docs/storage-engine.md: `layers/<id>.data`), leaving the recorded checksums alone.
   */
  const rot = (node: string): number => {
    const layers = join(cluster.nodeDir(node), 'volumes', 'layers');
    let slots = 0;
    for (const name of readdirSync(layers).filter((n) => n.endsWith('.data'))) {
      const file = join(layers, name);
      const fd = openSync(file, 'r+');
      try {
        const block = Buffer.alloc(4096);
        for (let at = 0; at + 4096 <= statSync(file).size; at += 8 * 4096) {
          readSync(fd, block, 0, 4096, at);
          for (let i = 0; i < block.length; i++) block[i] = block[i]! ^ 0xff;
          writeSync(fd, block, 0, 4096, at);
          slots++;
        }
      } finally {
        closeSync(fd);
      }
    }
    return slots;
  };

  before(() => kv.start());
  after(() => cluster.close());

  it('a replica away while keys are written returns by delta resync, and the primary then fails over to it with ext4 intact', async (t) => {
    const before = await cluster.workload('kv');
    const primary = before.node!;
    const replica = nodes.map((n) => n.name).find((n) => n !== primary)!;
    // The agent starts each volume server with the malloc thresholds (malloc-tunables.ts). glibc
    // 2.36 parses GLIBC_TUNABLES in place, so /proc may show only the first of them.
    for (const node of [primary, replica]) {
      const tunables = await mallocTunablesOf(node);
      assert.ok(
        tunables !== undefined && tunables !== '' && serverMallocTunables.startsWith(tunables),
        `${node}: GLIBC_TUNABLES=${tunables}`,
      );
    }
    kv.startWriting('away');
    await kv.waitAcked('keys to flow', 3, 30_000);

    // The replica's node dies; the controller takes it out of the in-sync set.
    const writtenBefore = await bytesWritten(primary);
    cluster.signalGroup(replica, 'SIGKILL');
    await cluster.waitExit(replica);
    await waitFor(`${replica} to leave the in-sync set`, 60_000, async () =>
      (await kv.copies())?.isr.includes(replica) === false ? true : undefined,
    ).catch(logTail);
    await kv.waitAcked(`keys written while ${replica} is away`, 150, 60_000);
    const resyncsBefore = (await cluster.events('volume.resynced')).length;

    // It returns: a delta of what changed, then it is in sync again.
    await cluster.startAgent(nodes.find((n) => n.name === replica)!);
    const resync = await waitFor(`${replica} to be resynced`, 90_000, async () =>
      (await cluster.events('volume.resynced'))
        .slice(resyncsBefore)
        .find((e) => e.data?.node === replica),
    ).catch(logTail);
    const writtenAway = (await bytesWritten(primary)) - writtenBefore;
    const copied = Number(resync.data?.bytesCopied);
    assert.equal(resync.data?.mode, 'delta', resync.message);
    assert.ok(copied > 0, `the delta copied something (${copied} bytes)`);
    assert.ok(
      copied <= deltaFactorMax * writtenAway,
      `the delta copied ${copied} bytes for ${writtenAway} bytes written while away ` +
        `(at most ${deltaFactorMax}x)`,
    );
    await kv.waitInSync(`${replica} back in the in-sync set`, 60_000);
    t.diagnostic(
      `delta resync copied ${copied} bytes for ${writtenAway} bytes written while ${replica} ` +
        `was away (${(copied / writtenAway).toFixed(2)}x; the volume is 64 MiB)`,
    );

    // The primary's node dies during writes: the resynced copy takes over with every key.
    await kv.waitAcked('keys to flow before the kill', 20, 30_000);
    cluster.signalGroup(primary, 'SIGKILL');
    await cluster.waitExit(primary);
    await kv.waitMoved(`kv to fail over to ${replica}`, before.epoch, (n) => n === replica);
    await kv.waitAcked(`writes to succeed on ${replica}`, 5, 30_000);
    await kv.stopWriting();
    assert.deepEqual(await kv.readBack(), [], 'every acknowledged key reads back');

    // The file system as the new primary serves it, read over NBD, its journal replayed on the copy.
    const socket = join(cluster.nodeDir(replica), 'run', 'nbd.sock');
    const image = join(cluster.dir, 'kvdata.img');
    execFileSync('nbdcopy', [`nbd+unix:///kvdata?socket=${socket}`, image]);
    execFileSync('e2fsck', ['-E', 'journal_only', '-y', image], { stdio: 'pipe' });
    execFileSync('e2fsck', ['-fn', image], { stdio: 'pipe' });
    const log = execFileSync('debugfs', ['-R', `cat /${dataFileName}`, image], {
      stdio: 'pipe',
      maxBuffer: 64 * 1024 * 1024,
    }).toString();
    const missing = [...kv.acked].filter(([, value]) => !log.includes(JSON.stringify(value)));
    assert.deepEqual(
      missing.map(([key]) => key),
      [],
      'every acknowledged key is in the data file',
    );
  });

  it("blocks rotten on a replica's disk are found when it reconnects and copied again; the client never reads them", async (t) => {
    // The node killed above returns and is brought back in sync first.
    const before = await cluster.workload('kv');
    const primary = before.node!;
    const replica = nodes.map((n) => n.name).find((n) => n !== primary)!;
    await cluster.startAgent(nodes.find((n) => n.name === replica)!);
    await kv.waitInSync(`${replica} back in the in-sync set`, 90_000);
    kv.startWriting('rot');
    await kv.waitAcked('keys to flow', 50, 30_000);
    await kv.stopWriting();

    // The replica's node hangs, its disk rots meanwhile (its store stays open: no crash
    // recovery reads the slots), the controller drops it from the in-sync set, and it resumes.
    cluster.signalGroup(replica, 'SIGSTOP');
    const rotten = rot(replica);
    assert.ok(rotten > 0, 'slots were damaged');
    const resyncsBefore = (await cluster.events('volume.resynced')).length;
    await waitFor(`${replica} to leave the in-sync set`, 60_000, async () =>
      (await kv.copies())?.isr.includes(replica) === false ? true : undefined,
    ).catch(logTail);
    cluster.signalGroup(replica, 'SIGCONT');
    const resync = await waitFor(`${replica} to be verified`, 90_000, async () =>
      (await cluster.events('volume.resynced'))
        .slice(resyncsBefore)
        .find((e) => e.data?.node === replica),
    ).catch(logTail);
    await kv.waitInSync(`${replica} in sync again`, 60_000);
    const copied = Number(resync.data?.bytesCopied);
    assert.ok(copied >= 4096, `the damaged blocks were copied again (${copied} bytes)`);

    // The repaired copy takes over: every key reads back right from it.
    cluster.signalGroup(primary, 'SIGKILL');
    await cluster.waitExit(primary);
    await kv.waitMoved(`kv to fail over to ${replica}`, before.epoch, (n) => n === replica);
    assert.deepEqual(await kv.readBack(), [], 'every acknowledged key reads back right');
    t.diagnostic(
      `${rotten} slots rotten on ${replica}; its resync (${String(resync.data?.mode)}) copied ` +
        `${copied} bytes; ${kv.acked.size} keys read back from it after the failover`,
    );
  });
});
