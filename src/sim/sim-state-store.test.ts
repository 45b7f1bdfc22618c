import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DirtyBitmap } from '../storage/replication/dirty-bitmap.js';
import type { ReplicaMeta } from '../storage/replication/replica-meta.js';
import { FakeClock } from './fake-clock.js';
import { NodeClock } from './node-clock.js';
import { newSimStateDisk, SimStateStore, snapshot } from './sim-state-store.js';

const generation = '00000000000000a1';

function setup() {
  const base = new FakeClock();
  const clock = new NodeClock(base);
  const disk = newSimStateDisk();
  const store = new SimStateStore({ disk, volume: 'v', clock });
  /** Runs a store call to completion on the fake clock. */
  const done = async <T>(promise: Promise<T>): Promise<T> => {
    base.advance(5);
    return promise;
  };
  return { base, clock, disk, store, done };
}

function bitmap(): DirtyBitmap {
  return DirtyBitmap.create({
    regionSizeBytes: 4096,
    volumeSizeBytes: 64 * 4096,
    startGeneration: generation,
  });
}

describe('SimStateStore', () => {
  it('keeps a copy of the meta: later changes to either side do not reach the other', async () => {
    const { store, done } = setup();
    assert.equal(await done(store.loadMeta()), null);
    const meta = { volume: 'v', highestEpoch: 4, generations: [generation], dataGeneration: 2 };
    await done(store.saveMeta(meta));
    meta.generations.push('00000000000000b2');
    meta.highestEpoch = 9;
    const loaded = (await done(store.loadMeta())) as { generations: string[] } & ReplicaMeta;
    assert.deepEqual(loaded, {
      volume: 'v',
      highestEpoch: 4,
      generations: [generation],
      dataGeneration: 2,
    });
    loaded.generations.push('00000000000000c3');
    assert.deepEqual((await done(store.loadMeta()))?.generations, [generation]);
  });

  it('keeps a bitmap as it was when saved, and rebuilds an equal one', async () => {
    const { store, done } = setup();
    assert.equal(await done(store.loadBitmap('b')), null);
    const live = bitmap();
    live.markRange(0, 1);
    live.markRange(10 * 4096, 3 * 4096);
    const saving = store.saveBitmap('b', live);
    live.markRange(40 * 4096, 4096); // After the save was called: not in it.
    await done(saving);
    const loaded = await done(store.loadBitmap('b'));
    assert.ok(loaded instanceof DirtyBitmap);
    assert.equal(loaded.countDirty(), 4);
    assert.equal(loaded.startGeneration, generation);
    assert.equal(loaded.regionCount, 64);
    assert.deepEqual(
      [...loaded.dirtyRuns()].map((run) => [run.startRegion, run.regionCount]),
      [
        [0, 1],
        [10, 3],
      ],
    );
    loaded.clearRange(0, 64 * 4096);
    assert.equal((await done(store.loadBitmap('b')))?.countDirty(), 4);
    assert.equal(await done(store.loadBitmap('c')), null);
    await done(store.deleteBitmap('b'));
    assert.equal(await done(store.loadBitmap('b')), null);
  });

  it('survives a crash of the node, except a save still waiting on its clock', async () => {
    const { base, clock, disk, store, done } = setup();
    const meta: ReplicaMeta = { volume: 'v', highestEpoch: 1, generations: [], dataGeneration: 0 };
    await done(store.saveMeta(meta));
    let settled = false;
    void store.saveMeta({ ...meta, highestEpoch: 2 }).then(() => (settled = true));
    clock.reset(); // Power loss before the save's delay elapsed.
    base.advance(5);
    await Promise.resolve();
    assert.equal(settled, false, 'the process that waited is gone');
    const after = new SimStateStore({ disk, volume: 'v', clock });
    assert.equal((await done(after.loadMeta()))?.highestEpoch, 1);
    const other = new SimStateStore({ disk, volume: 'w', clock });
    assert.equal(await done(other.loadMeta()), null, 'volumes are apart');
  });

  it('lands saves of one item in call order: the last one wins', async () => {
    const { store, done } = setup();
    const first = bitmap();
    first.markRange(0, 4096);
    const second = bitmap();
    second.markRange(4096, 4096);
    const saves = Promise.all([store.saveBitmap('b', first), store.saveBitmap('b', second)]);
    await done(saves);
    assert.deepEqual(snapshot((await done(store.loadBitmap('b')))!), snapshot(second));
    assert.equal(store.saves, 2);
  });
});
