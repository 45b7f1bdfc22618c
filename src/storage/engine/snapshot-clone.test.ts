// Snapshots, clones and golden images: isolation between them, deletion rules, and the space that
// clones of one image take.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { ContinuumError } from '../../core/errors.js';
import { pattern, tempStore, type TempStore } from './test-support.js';

const mebibyte = 2 ** 20;

async function rejectsWith(promise: Promise<unknown>, code: string, text?: RegExp) {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof ContinuumError, `expected ContinuumError, got ${String(error)}`);
    assert.equal(error.code, code);
    if (text !== undefined) assert.match(error.message, text);
    return true;
  });
}

describe('snapshots and clones', () => {
  let temp: TempStore;
  beforeEach(async () => {
    temp = await tempStore();
  });
  afterEach(async () => {
    await temp.cleanup();
  });

  it('keeps data written after a snapshot out of the snapshot', async () => {
    await temp.store.create('vol', 4 * mebibyte);
    const volume = await temp.store.open('vol');
    const before = pattern(1, 3 * 4096);
    await volume.write(8192, before);
    await temp.store.snapshot('vol', 'monday');
    const after = pattern(2, 4096);
    await volume.write(12288, after);
    await volume.write(mebibyte, pattern(3, 4096));
    await volume.trim(8192, 4096);

    const snapshot = await temp.store.openSource({ volume: 'vol', snapshot: 'monday' });
    assert.ok((await snapshot.read(8192, before.length)).equals(before));
    assert.ok((await snapshot.read(mebibyte, 4096)).equals(Buffer.alloc(4096)));
    await assert.rejects(snapshot.write(0, Buffer.alloc(4096)), { kind: 'read-only' });
    const live = await volume.read(8192, 3 * 4096);
    assert.ok(live.subarray(0, 4096).equals(Buffer.alloc(4096)), 'trimmed block reads zeroes');
    assert.ok(live.subarray(4096, 8192).equals(after));
    await snapshot.close();
    await volume.close();
  });

  it('lets a clone diverge from its origin without touching it', async () => {
    await temp.store.create('origin', 2 * mebibyte);
    const origin = await temp.store.open('origin');
    const base = pattern(10, 2 * mebibyte);
    await origin.write(0, base);
    await temp.store.snapshot('origin', 'base');
    await temp.store.clone('copy', { volume: 'origin', snapshot: 'base' });
    const copy = await temp.store.open('copy');
    await copy.write(4096, pattern(11, 4096));
    await copy.writeZeroes(100, 50);
    await origin.write(65536, pattern(12, 4096));

    const expectedCopy = Buffer.from(base);
    pattern(11, 4096).copy(expectedCopy, 4096);
    expectedCopy.fill(0, 100, 150);
    assert.ok((await copy.read(0, 2 * mebibyte)).equals(expectedCopy));
    const expectedOrigin = Buffer.from(base);
    pattern(12, 4096).copy(expectedOrigin, 65536);
    assert.ok((await origin.read(0, 2 * mebibyte)).equals(expectedOrigin));
    const snapshot = await temp.store.openSource({ volume: 'origin', snapshot: 'base' });
    assert.ok((await snapshot.read(0, 2 * mebibyte)).equals(base));
    const listed = new Map((await temp.store.list()).map((v) => [v.name, v.origin]));
    assert.equal(listed.get('copy'), 'origin@base', 'the clone names what it was cloned from');
    assert.equal(listed.get('origin'), null, 'its own snapshot is not an origin');
    await Promise.all([snapshot.close(), copy.close(), origin.close()]);
  });

  it('stores ten clones of a golden image in little more than the image', async () => {
    const imageBytes = 16 * mebibyte;
    const imagePath = path.join(temp.dir, 'golden.raw');
    await writeFile(imagePath, pattern(20, imageBytes));
    await temp.store.importImage('golden', imagePath);
    const [image] = await temp.store.listImages();
    for (let index = 0; index < 10; index++) {
      const name = `vm${index}`;
      await temp.store.clone(name, { image: 'golden' });
      const clone = await temp.store.open(name);
      await clone.write(index * mebibyte, pattern(100 + index, 16 * 4096), { fua: true });
      assert.ok(
        (await clone.read(15 * mebibyte, 4096)).equals(
          pattern(20, imageBytes).subarray(15 * mebibyte, 15 * mebibyte + 4096),
        ),
      );
      await clone.close();
    }
    const volumes = await temp.store.list();
    const cloneBytes = volumes.reduce((sum, volume) => sum + volume.layers[0]!.storedBytes, 0);
    const imageStored = image!.layer.storedBytes;
    const total = imageStored + cloneBytes;
    console.log(
      `golden image ${imageBytes} bytes stored in ${imageStored}; ten clones add ${cloneBytes} ` +
        `(${((100 * cloneBytes) / imageStored).toFixed(1)}% of the image); total ${total}`,
    );
    assert.equal(volumes.length, 10);
    assert.ok(
      volumes.every((volume) => volume.baseImage === 'golden' && volume.origin === 'golden'),
    );
    // Each clone wrote 64 KiB of its own; allow for that plus a journal page or two per clone.
    assert.ok(cloneBytes <= 10 * (64 * 1024 + 16 * 1024), `clones take ${cloneBytes} bytes`);
    assert.ok(total <= imageBytes * 1.1, `store takes ${total} bytes for a ${imageBytes} image`);
  });

  it('refuses to delete a snapshot or image that others are cloned from', async () => {
    await temp.store.create('vol', mebibyte);
    await temp.store.snapshot('vol', 's1');
    await temp.store.clone('child', { volume: 'vol', snapshot: 's1' });
    await rejectsWith(
      temp.store.deleteSnapshot('vol', 's1'),
      'CONTINUUM_ERR_VOLUME_HAS_DEPENDENTS',
      /child/,
    );
    await rejectsWith(
      temp.store.deleteVolume('vol'),
      'CONTINUUM_ERR_VOLUME_HAS_DEPENDENTS',
      /vol@s1.*child/,
    );
    const imagePath = path.join(temp.dir, 'tiny.raw');
    await writeFile(imagePath, pattern(5, 8192));
    await temp.store.importImage('tiny', imagePath);
    await temp.store.clone('vm', { image: 'tiny' });
    await rejectsWith(temp.store.deleteImage('tiny'), 'CONTINUUM_ERR_VOLUME_HAS_DEPENDENTS', /vm/);
    const open = await temp.store.open('vm');
    await rejectsWith(temp.store.deleteVolume('vm'), 'CONTINUUM_ERR_VOLUME_IN_USE');
    await open.close();
    await temp.store.deleteVolume('vm');
    await temp.store.deleteImage('tiny');
    await temp.store.deleteVolume('child');
    await temp.store.deleteSnapshot('vol', 's1');
    assert.deepEqual(
      (await temp.store.list()).map((volume) => volume.name),
      ['vol'],
    );
    assert.deepEqual(await temp.store.listImages(), []);
  });

  it('folds a deleted snapshot into the next layer without changing what anyone reads', async () => {
    await temp.store.create('vol', mebibyte);
    let volume = await temp.store.open('vol');
    await volume.write(0, pattern(1, 8 * 4096));
    await temp.store.snapshot('vol', 'a');
    await volume.write(4096, pattern(2, 4096));
    await volume.trim(8192, 4096);
    await temp.store.snapshot('vol', 'b');
    await temp.store.clone('from-b', { volume: 'vol', snapshot: 'b' });
    await volume.write(3 * 4096, pattern(3, 4096));
    const live = await volume.read(0, mebibyte);
    const atBReader = await temp.store.openSource({ volume: 'vol', snapshot: 'b' });
    const atB = await atBReader.read(0, mebibyte);
    await atBReader.close();
    await volume.close();
    const layersBefore = (await temp.store.list())[1]!.layers.length;
    const reader = await temp.store.open('from-b');
    await rejectsWith(
      temp.store.deleteSnapshot('vol', 'a'),
      'CONTINUUM_ERR_VOLUME_IN_USE',
      /from-b/,
    );
    await reader.close();
    await temp.store.deleteSnapshot('vol', 'a');
    await temp.reopen();
    volume = await temp.store.open('vol');
    assert.ok((await volume.read(0, mebibyte)).equals(live));
    const clone = await temp.store.open('from-b');
    assert.ok((await clone.read(0, mebibyte)).equals(atB));
    const after = (await temp.store.list()).find((info) => info.name === 'vol')!;
    assert.deepEqual(
      after.snapshots.map((snapshot) => snapshot.name),
      ['b'],
    );
    assert.equal(after.layers.length, layersBefore - 1);
    await Promise.all([clone.close(), volume.close()]);
  });

  it('limits the depth of a chain', async () => {
    await temp.reopen({ chainDepthMax: 3 });
    await temp.store.create('deep', mebibyte);
    await temp.store.snapshot('deep', 's1');
    await temp.store.snapshot('deep', 's2');
    await rejectsWith(
      temp.store.snapshot('deep', 's3'),
      'CONTINUUM_ERR_VOLUME_LIMIT',
      /limit is 3/,
    );
  });
});
