// Resync against real replica cores: a delta copies only what the dirty bitmap marks, a full
// resync of an empty replica copies exactly what is allocated, an interrupted resync starts over
// on the next connection and converges with writes going on, and the verify pass repairs an
// in-sync replica that holds a different block. Every case ends with identical checksums.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  blockBytes,
  cluster,
  eventually,
  pattern,
  settled,
  type Cluster,
} from './cluster-harness.js';
import type { ReplicationMessage } from './wire.js';

const kib = 1024;
const mib = 1024 * kib;

function copiesTo(c: Cluster, node: string, fromLink = 0): [number, number][] {
  return c
    .replica(node)
    .links.slice(fromLink)
    .flatMap(([primaryEnd]) => primaryEnd.sent)
    .filter(
      (message): message is Extract<ReplicationMessage, { type: 'REPL_WRITE' }> =>
        message.type === 'REPL_WRITE',
    )
    .map((message) => [message.offset, message.data.length]);
}

async function sameChecksums(c: Cluster, node: string): Promise<void> {
  assert.deepEqual(await c.replica(node).device.allChecksums(), await c.device.allChecksums());
}

const verified = (c: Cluster, node: string) =>
  eventually(() => c.reportsOf('resync').some((r) => r.node === node && r.done), {
    what: `${node} verified`,
  });

describe('resync', () => {
  it('delta: copies only the dirty regions, then verifies, and reports caught-up', async () => {
    const c = await cluster({ limits: { bitmapRegionBytes: 64 * kib } });
    await verified(c, 'b');
    await verified(c, 'c');
    await c.primary.write(0, pattern(1, 2 * mib)); // shared by everyone
    const c1 = c.replica('c');
    c1.reachable = false;
    c.link('c')[0].close('cable cut');
    const pending = c.primary.write(512 * kib, pattern(2, 8 * kib));
    await eventually(() => c.primary.status().replicas.find((r) => r.node === 'c')!.unacked === 1);
    c.setMembership(['a', 'b']);
    await pending;
    await c.primary.write(3 * mib, pattern(3, blockBytes));
    const linksBefore = c1.links.length;
    c1.reachable = true;
    await eventually(() => c.reportsOf('caught-up').length === 1, {
      clock: c.clock,
      advanceMs: 20,
      what: 'c caught up',
    });
    const delta = c.reportsOf('resync').filter((r) => r.node === 'c' && r.mode === 'delta');
    assert.ok(delta.length > 0, 'a delta resync');
    assert.deepEqual(copiesTo(c, 'c', linksBefore), [
      [512 * kib, 64 * kib],
      [3 * mib, 64 * kib],
    ]);
    const last = delta.at(-1)!;
    assert.equal(last.done, true);
    assert.equal(last.bytesCopied, 128 * kib);
    assert.equal(last.blocksCompared, c.device.sizeBytes / blockBytes);
    await sameChecksums(c, 'c');
    assert.equal(c.primary.status().replicas.find((r) => r.node === 'c')!.state, 'caught-up');
    assert.equal(c.state.bitmaps.has('c'), false, 'bitmap discarded once caught up');
    assert.deepEqual(c.reportsOf('caught-up')[0], {
      kind: 'caught-up',
      volume: 'vol-1',
      epoch: 1,
      node: 'c',
      isrVersion: 2,
    });
    // From now on c is required: a write waits for it.
    c.setMembership(['a', 'b', 'c']);
    assert.equal(c.primary.status().replicas.find((r) => r.node === 'c')!.state, 'in-sync');
  });

  it('full: an empty replica gets exactly the allocated blocks', async () => {
    const allocated = [0, 5, 6, 700, 1023];
    const c = await cluster({
      replicas: ['c'],
      isr: [],
      prepare: async (cl) => {
        for (const block of allocated)
          await cl.device.write(block * blockBytes, pattern((block % 250) + 1));
      },
    });
    await eventually(() => c.reportsOf('caught-up').length === 1, { what: 'caught up' });
    const full = c.reportsOf('resync').filter((r) => r.mode === 'full');
    assert.equal(full.at(-1)!.bytesCopied, allocated.length * blockBytes);
    assert.deepEqual(copiesTo(c, 'c'), [
      [0, blockBytes],
      [5 * blockBytes, 2 * blockBytes],
      [700 * blockBytes, blockBytes],
      [1023 * blockBytes, blockBytes],
    ]);
    await sameChecksums(c, 'c');
    // Caught up means required: a write now waits for c, until a newer membership leaves it out.
    assert.equal(c.primary.status().replicas[0]!.state, 'caught-up');
    const [, toC] = c.link('c');
    toC.hold();
    const write = c.primary.write(0, pattern(0x77));
    assert.equal(await settled(write), false, 'a caught-up replica is waited for');
    c.setMembership(['a']);
    await write;
    assert.equal(c.primary.status().replicas[0]!.state, 'outdated');
    assert.deepEqual(c.state.bitmaps.get('c')?.dirty, [[0, 64 * kib]]);
  });

  it('an interrupted resync starts over on the next connection and converges with live writes', async () => {
    const c = await cluster({
      replicas: ['c'],
      isr: [],
      limits: { resyncBytesPerSecondMax: mib, resyncChunkBytes: 256 * kib },
      prepare: async (cl) => {
        await cl.device.write(0, pattern(9, 4 * mib));
      },
    });
    await eventually(() => c.reportsOf('resync').some((r) => r.blocksCompared >= 256), {
      clock: c.clock,
      advanceMs: 50,
      what: 'some progress',
    });
    const live = c.primary.write(2 * mib + 100, Buffer.alloc(10_000, 0x5a));
    c.link('c')[0].close('link reset');
    const reportsBefore = c.reportsOf('resync').length;
    assert.equal(
      c.reportsOf('resync').some((r) => r.done),
      false,
      'interrupted mid-pass',
    );
    await live;
    await eventually(() => c.replica('c').links.length === 2, { clock: c.clock, advanceMs: 50 });
    const writes: Promise<void>[] = [];
    for (let index = 0; index < 8; index++) {
      writes.push(c.primary.write(index * 512 * kib, pattern(0x60 + index, 3 * blockBytes)));
    }
    await eventually(() => c.reportsOf('caught-up').length === 1, {
      clock: c.clock,
      advanceMs: 50,
      steps: 5000,
      what: 'caught up after the restart',
    });
    await Promise.all(writes);
    const after = c.reportsOf('resync').slice(reportsBefore);
    assert.equal(after[0]!.blocksCompared, 64, 'the verify pass restarted from the first chunk');
    assert.equal(after.filter((r) => r.done).length, 1, 'one completed pass');
    await sameChecksums(c, 'c');
  });

  it('the verify pass after a new primary opens repairs a block that differs on an ISR member', async () => {
    const c = await cluster({
      prepare: async (cl) => {
        for (const device of [cl.device, cl.replica('b').device, cl.replica('c').device]) {
          await device.write(0, pattern(4, 64 * blockBytes));
        }
        // The old primary wrote block 17 to b only before it crashed.
        await cl.replica('b').device.write(17 * blockBytes, pattern(0xee));
      },
    });
    await verified(c, 'b');
    await verified(c, 'c');
    assert.deepEqual(copiesTo(c, 'b'), [[17 * blockBytes, blockBytes]]);
    assert.deepEqual(copiesTo(c, 'c'), []);
    await sameChecksums(c, 'b');
    const verify = c.reportsOf('resync').filter((r) => r.node === 'b' && r.done);
    assert.equal(verify[0]!.mode, 'verify');
    // The ISR members adopted the primary's new generation once verified.
    await eventually(
      () => c.replica('b').state.meta?.generations[0] === c.state.meta!.generations[0],
    );
  });

  it('a block rotten on a replica (recorded checksum intact, data not) is found by the verify pass and copied again', async () => {
    const c = await cluster({
      prepare: async (cl) => {
        for (const device of [cl.device, cl.replica('b').device, cl.replica('c').device]) {
          await device.write(0, pattern(5, 64 * blockBytes));
        }
        cl.replica('c').device.damage(23);
      },
    });
    await verified(c, 'b');
    await verified(c, 'c');
    assert.deepEqual(copiesTo(c, 'b'), []);
    assert.deepEqual(copiesTo(c, 'c'), [[23 * blockBytes, blockBytes]], 'only the rotten block');
    const repaired = await c.replica('c').device.read(23 * blockBytes, blockBytes);
    assert.deepEqual(repaired, await c.device.read(23 * blockBytes, blockBytes));
    await sameChecksums(c, 'c');
  });
});
