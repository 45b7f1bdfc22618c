// A copy that was not closed cleanly (replica-meta.ts `unclean`): the flag is set at every open
// and cleared by a clean close of a copy known complete; a primary whose copy is unclean holds
// every client operation and reports itself while other ISR members exist (it must not verify
// them: that would copy its stale blocks over theirs), and serves when it is the only one in sync.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  cluster,
  eventually,
  isIo,
  pattern,
  settled,
  volume,
  type Cluster,
} from './cluster-harness.js';
import { openReplica } from './replica.js';
import { ChecksumMemoryDevice, MemoryStateStore } from './test-support.js';

const generation = '00000000000000aa';

/** The primary's state as a crash left it: epoch 1 accepted, the volume open (unclean). */
function crashed(c: Cluster): void {
  c.state.meta = {
    volume,
    highestEpoch: 1,
    generations: [generation],
    dataGeneration: 0,
    unclean: true,
  };
}

async function advance(c: Cluster, ms: number): Promise<number[]> {
  const at: number[] = [];
  for (let moved = 0; moved < ms; moved += 50) {
    const before = c.reportsOf('unclean').length;
    c.clock.advance(50);
    await settled(Promise.resolve());
    if (c.reportsOf('unclean').length > before) at.push(c.clock.now());
  }
  return at;
}

describe('primary: a copy that was not closed cleanly', () => {
  it('with other ISR members: holds every operation, connects to nobody, reports itself until a newer membership', async () => {
    const c = await cluster({ prepare: crashed, limits: { replicaAckTimeoutMs: 1000 } });
    assert.deepEqual(c.reportsOf('unclean'), [
      { kind: 'unclean', volume, epoch: 1, node: 'a', isrVersion: 1, waitingMs: 0 },
    ]);
    assert.equal(c.primary.status().unclean, true);
    const write = c.primary.write(0, pattern(7));
    const read = c.primary.read(0, 4096);
    const flush = c.primary.flush();
    const again = await advance(c, 3500);
    assert.ok(again.length >= 3, `reported again (${again.length})`);
    for (let i = 1; i < again.length; i++) assert.ok(again[i]! - again[i - 1]! >= 1000);
    for (const held of [write, read, flush]) assert.equal(await settled(held), false, 'held');
    assert.equal(c.replica('b').links.length + c.replica('c').links.length, 0, 'no verify pass');
    assert.deepEqual(await c.device.read(0, 4), Buffer.alloc(4), 'nothing written locally');
    // The same membership again (a controller restart): the report goes at once.
    const before = c.reportsOf('unclean').length;
    c.primary.setMembership(c.membership);
    assert.equal(c.reportsOf('unclean').length, before + 1);
    const ages = c.reportsOf('unclean').map((r) => (r.kind === 'unclean' ? r.waitingMs : -1));
    assert.ok(ages.at(-2)! >= 3000, `the reports say how long it has held (${ages.join(', ')})`);
    // The controller dropped it from the ISR: nothing more to report, still held.
    c.setMembership(['b', 'c']);
    assert.deepEqual(await advance(c, 3000), []);
    assert.equal(await settled(write), false);
    // Closing fails what it held with EIO, and leaves the copy unclean.
    await c.primary.close();
    for (const held of [write, read, flush]) await assert.rejects(held, isIo);
    await assert.rejects(c.primary.write(0, pattern(1)), isIo);
    assert.equal(c.state.meta?.unclean, true);
    assert.deepEqual(c.state.meta?.generations, [generation], 'no generation of its own');
  });

  it('self-fenced while held: the held operations fail with EIO and a fenced report goes', async () => {
    const c = await cluster({ prepare: crashed, limits: { replicaAckTimeoutMs: 1000 } });
    const write = c.primary.write(0, pattern(7));
    assert.equal(await settled(write), false, 'held');
    c.primary.fence('self-fenced: test');
    await assert.rejects(write, isIo);
    await assert.rejects(c.primary.read(0, 4096), isIo);
    assert.equal(c.primary.fenced, true);
    assert.equal(c.primary.status().fenced, true);
    assert.deepEqual(c.reportsOf('fenced'), [
      { kind: 'fenced', volume, epoch: 1, reason: 'self-fenced: test' },
    ]);
    const reports = c.reportsOf('unclean').length;
    assert.deepEqual(await advance(c, 3000), [], 'it reports itself no more');
    assert.equal(c.reportsOf('unclean').length, reports);
    await c.primary.close();
  });

  it('alone in the ISR: it is the best copy there is, and serves (resyncing the others)', async () => {
    const c = await cluster({ prepare: crashed, isr: [] });
    assert.deepEqual(c.reportsOf('unclean'), []);
    await c.primary.write(0, pattern(9));
    await eventually(() => c.reportsOf('caught-up').length === 2, { what: 'b and c caught up' });
    assert.deepEqual(await c.replica('b').device.read(0, 4), Buffer.alloc(4, 9));
    await c.primary.close();
    assert.equal(c.state.meta?.unclean, false, 'a clean close of a primary that served');
  });

  it('held, then left the only ISR member: serves, and the held write goes through', async () => {
    const c = await cluster({ prepare: crashed });
    const write = c.primary.write(4096, pattern(3));
    assert.equal(await settled(write), false);
    c.setMembership(['a']);
    await write;
    assert.deepEqual(await c.device.read(4096, 4), Buffer.alloc(4, 3));
    assert.equal(c.primary.status().unclean, undefined);
    await c.primary.close();
    assert.equal(c.state.meta?.unclean, false);
  });

  it('a clean open sets the flag, and a clean close clears it after flushing', async () => {
    const c = await cluster();
    assert.equal(c.state.meta?.unclean, true, 'set while open');
    await c.primary.write(0, pattern(5));
    const flushes = c.device.calls.flush;
    await c.primary.close();
    assert.ok(c.device.calls.flush > flushes, 'flushed before recording the clean close');
    assert.equal(c.state.meta?.unclean, false);
  });
});

describe('replica: a copy that was not closed cleanly', () => {
  const context = (c: Cluster, node: string) => c.context(node);

  it('a replica opened clean is closed clean; one opened unclean stays so until a primary verified it', async () => {
    const c = await cluster({
      replicas: ['b'],
      prepare: async (cl) => {
        // b crashed: its meta says open. It reopens before the primary connects.
        const b = cl.replica('b');
        await b.handle.close();
        assert.equal(b.state.meta?.unclean, false, 'clean close of a fresh replica');
        const meta = b.state.meta;
        assert.ok(meta !== null);
        b.state.meta = { ...meta, unclean: true };
        b.handle = await openReplica({
          context: context(cl, 'b'),
          volume,
          device: b.device,
          state: b.state,
          epoch: 1,
        });
      },
    });
    await eventually(() => c.reportsOf('resync').some((r) => r.node === 'b' && r.done), {
      what: 'b verified',
    });
    await eventually(
      () => c.replica('b').state.meta?.generations[0] === c.primary.status().generation,
      {
        what: 'b adopted the generation',
      },
    );
    await c.replica('b').handle.close();
    assert.equal(c.replica('b').state.meta?.unclean, false, 'verified, then closed cleanly');
  });

  it('an unclean replica closed before any primary verified it stays unclean', async () => {
    const c = await cluster({ replicas: [] });
    const state = new MemoryStateStore();
    state.meta = {
      volume,
      highestEpoch: 1,
      generations: [generation],
      dataGeneration: 0,
      unclean: true,
    };
    const device = new ChecksumMemoryDevice({ sizeBytes: c.device.sizeBytes });
    const handle = await openReplica({ context: c.context('b'), volume, device, state, epoch: 2 });
    assert.equal(state.meta.unclean, true);
    assert.equal(state.meta.highestEpoch, 2);
    await handle.close();
    assert.equal(state.meta.unclean, true);
  });
});
