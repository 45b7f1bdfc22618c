// The file-backed replication state store: what one instance saves, a fresh one (a restarted
// volume server) loads; deletes stick; peer names that could escape the directory are refused;
// and a damaged bitmap is reported as VOLUME_CORRUPT rather than trusted.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { ContinuumError } from '../../core/errors.js';
import { DirtyBitmap } from './dirty-bitmap.js';
import { FileReplicationStateStore } from './file-state-store.js';
import type { ReplicaMeta } from './replica-meta.js';

const kib = 1024;
const meta: ReplicaMeta = {
  volume: 'db-1',
  highestEpoch: 12,
  generations: ['00000000000000aa', '00000000000000bb'],
  dataGeneration: 7,
};

async function scratch(t: TestContext): Promise<string> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'continuum-repl-state-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  return root;
}

function bitmap(): DirtyBitmap {
  const result = DirtyBitmap.create({
    regionSizeBytes: 64 * kib,
    volumeSizeBytes: 10 * 64 * kib + 512,
    startGeneration: '00000000000000bb',
  });
  result.markRange(3 * 64 * kib + 5, 100);
  result.markRange(10 * 64 * kib, 512);
  return result;
}

function runsOf(loaded: DirtyBitmap | null): [number, number][] {
  assert.ok(loaded !== null);
  return [...loaded.dirtyRuns()].map((run) => [run.startRegion, run.regionCount]);
}

describe('FileReplicationStateStore', () => {
  it('reads back meta and bitmaps through a fresh instance, creating the directory on first save', async (t) => {
    const root = await scratch(t);
    const directory = FileReplicationStateStore.directoryFor(root, 'db-1');
    const store = new FileReplicationStateStore(directory, { volume: 'db-1' });
    assert.equal(await store.loadMeta(), null);
    assert.equal(await store.loadBitmap('node-b'), null);

    await store.saveMeta(meta);
    await store.saveBitmap('node-b', bitmap());
    assert.deepEqual((await readdir(directory)).sort(), ['bitmap-node-b.bin', 'meta.json']);

    const fresh = new FileReplicationStateStore(directory, { volume: 'db-1' });
    assert.deepEqual(await fresh.loadMeta(), meta);
    const loaded = await fresh.loadBitmap('node-b');
    assert.deepEqual(runsOf(loaded), [
      [3, 1],
      [10, 1],
    ]);
    assert.equal(loaded?.startGeneration, '00000000000000bb');
    assert.equal(await fresh.loadBitmap('node-c'), null);
  });

  it('keeps the last of several saves called without waiting', async (t) => {
    const store = new FileReplicationStateStore(path.join(await scratch(t), 'db-1'));
    await Promise.all(
      [13, 14, 15].map((highestEpoch) => store.saveMeta({ ...meta, highestEpoch })),
    );
    assert.equal((await store.loadMeta())?.highestEpoch, 15);
  });

  it('deletes a bitmap for good, and a missing one is no error', async (t) => {
    const directory = path.join(await scratch(t), 'db-1');
    const store = new FileReplicationStateStore(directory);
    await store.deleteBitmap('node-b'); // No directory yet.
    await store.saveBitmap('node-b', bitmap());
    await store.saveBitmap('node-c', bitmap());
    await store.deleteBitmap('node-b');
    await store.deleteBitmap('node-b');
    assert.equal(await new FileReplicationStateStore(directory).loadBitmap('node-b'), null);
    assert.notEqual(await new FileReplicationStateStore(directory).loadBitmap('node-c'), null);
    assert.deepEqual(await readdir(directory), ['bitmap-node-c.bin']);
  });

  it('refuses peer names that are not node names, before touching the disk', async (t) => {
    const directory = path.join(await scratch(t), 'db-1');
    const store = new FileReplicationStateStore(directory);
    const bad = ['', '../etc', 'Node-B', '-b', 'node_b', 'node.b', 'a/b', 'x'.repeat(64)];
    for (const peer of bad) {
      await assert.rejects(store.loadBitmap(peer), RangeError, peer);
      await assert.rejects(store.saveBitmap(peer, bitmap()), RangeError, peer);
      await assert.rejects(store.deleteBitmap(peer), RangeError, peer);
    }
    await assert.rejects(readdir(directory), { code: 'ENOENT' });
    await store.saveBitmap('x'.repeat(63), bitmap());
    assert.deepEqual(await readdir(directory), [`bitmap-${'x'.repeat(63)}.bin`]);
  });

  it('reports a corrupt bitmap as VOLUME_CORRUPT', async (t) => {
    const directory = path.join(await scratch(t), 'db-1');
    const store = new FileReplicationStateStore(directory);
    await store.saveBitmap('node-b', bitmap());
    const filePath = path.join(directory, 'bitmap-node-b.bin');
    const contents = await readFile(filePath);
    contents[contents.length - 1]! ^= 0x01;
    await writeFile(filePath, contents);
    await assert.rejects(store.loadBitmap('node-b'), (error: unknown) => {
      assert.ok(error instanceof ContinuumError, String(error));
      assert.equal(error.code, 'CONTINUUM_ERR_VOLUME_CORRUPT');
      assert.match(error.message, /bitmap-node-b\.bin fails its CRC-32/);
      return true;
    });
  });

  it('refuses a meta file that names another volume', async (t) => {
    const directory = path.join(await scratch(t), 'db-1');
    await new FileReplicationStateStore(directory).saveMeta({ ...meta, volume: 'db-2' });
    await assert.rejects(
      new FileReplicationStateStore(directory, { volume: 'db-1' }).loadMeta(),
      (error: unknown) =>
        error instanceof ContinuumError && error.code === 'CONTINUUM_ERR_VOLUME_CORRUPT',
    );
  });
});
