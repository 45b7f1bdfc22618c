// The store's boundary and the device's behaviour under concurrency: bad input is refused with a
// coded error and changes nothing; overlapping requests at queue depth 32 never corrupt a block;
// the hooks replication will use (change listener, checksums in bulk, data generation) report
// what happened.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { BlockDeviceError } from '../block-device.js';
import { ContinuumError } from '../../core/errors.js';
import type { BlockChange } from './volume-device.js';
import { VolumeStore } from './volume-store.js';
import { pattern, seededRandom, tempStore, type TempStore } from './test-support.js';
import { zeroChecksum } from './zero-block.js';
import zlib from 'node:zlib';

const mebibyte = 2 ** 20;

async function rejectsWith(promise: Promise<unknown>, code: string, text?: RegExp) {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof ContinuumError, `expected ContinuumError, got ${String(error)}`);
    assert.equal(error.code, code);
    if (text !== undefined) assert.match(error.message, text);
    return true;
  });
}

function blockError(kind: string) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof BlockDeviceError, String(error));
    assert.equal(error.kind, kind);
    return true;
  };
}

describe('volume store', () => {
  let temp: TempStore;
  beforeEach(async () => {
    temp = await tempStore();
  });
  afterEach(async () => {
    await temp.cleanup();
  });

  it('refuses bad names, sizes and duplicates without changing anything', async () => {
    const store = temp.store;
    for (const name of ['', 'Upper', '-dash', 'a/b', '../x', 'x'.repeat(64), '__proto__']) {
      await rejectsWith(store.create(name, mebibyte), 'CONTINUUM_ERR_VOLUME_BAD_NAME');
    }
    for (const size of [0, -4096, 1000, 4097, 1.5, Number.NaN, 2 ** 60]) {
      await rejectsWith(store.create('v', size), 'CONTINUUM_ERR_VOLUME_BAD_SIZE');
    }
    await store.create('v', mebibyte);
    await rejectsWith(store.create('v', mebibyte), 'CONTINUUM_ERR_VOLUME_EXISTS', /volume v/);
    await rejectsWith(store.open('nope'), 'CONTINUUM_ERR_VOLUME_NOT_FOUND', /volume nope/);
    await rejectsWith(store.grow('v', mebibyte / 2), 'CONTINUUM_ERR_VOLUME_BAD_SIZE', /shrink/);
    await rejectsWith(store.snapshot('v', 'Bad'), 'CONTINUUM_ERR_VOLUME_BAD_NAME');
    await rejectsWith(store.clone('c', { volume: 'v' }), 'CONTINUUM_ERR_BAD_REQUEST', /snapshot/);
    await rejectsWith(
      store.clone('c', { volume: 'v', snapshot: 'none' }),
      'CONTINUUM_ERR_VOLUME_NOT_FOUND',
    );
    await rejectsWith(store.deleteSnapshot('v', 'none'), 'CONTINUUM_ERR_VOLUME_NOT_FOUND');
    await rejectsWith(store.deleteImage('none'), 'CONTINUUM_ERR_VOLUME_NOT_FOUND');
    const volumes = await store.list();
    assert.deepEqual(
      volumes.map((volume) => [volume.name, volume.sizeBytes]),
      [['v', mebibyte]],
    );
    await assert.rejects(VolumeStore.open(temp.root), {
      code: 'CONTINUUM_ERR_VOLUME_STORE_LOCKED',
    });
    await assert.rejects(temp.reopen({ blockSizeBytes: 512 }), { code: 'CONTINUUM_ERR_CONFIG' });
    temp.store = await VolumeStore.open(temp.root);
  });

  it('refuses out-of-range and read-only requests with the right kind', async () => {
    await temp.store.create('v', mebibyte);
    const volume = await temp.store.open('v');
    await assert.rejects(volume.read(mebibyte - 10, 20), blockError('range'));
    await assert.rejects(volume.read(-1, 1), blockError('range'));
    await assert.rejects(volume.write(0.5, Buffer.alloc(1)), blockError('range'));
    await assert.rejects(volume.trim(0, mebibyte + 1), blockError('range'));
    await assert.rejects(volume.blockStatus(mebibyte, 1), blockError('range'));
    const reader = await temp.store.open('v', { readOnly: true });
    await assert.rejects(reader.write(0, Buffer.alloc(1)), blockError('read-only'));
    await reader.close();
    await assert.rejects(reader.read(0, 1), blockError('closed'));
    assert.equal((await volume.read(0, 0)).length, 0);
    await volume.close();
  });

  it('keeps data across close and reopen, and grows while open', async () => {
    await temp.store.create('v', mebibyte);
    let volume = await temp.store.open('v');
    await volume.write(4096, pattern(1, 8192));
    await temp.store.grow('v', 2 * mebibyte);
    assert.equal(volume.sizeBytes, 2 * mebibyte);
    await volume.write(mebibyte + 512, Buffer.from('after grow'));
    await volume.close();
    volume = await (await temp.reopen()).open('v');
    assert.equal(volume.sizeBytes, 2 * mebibyte);
    assert.ok((await volume.read(4096, 8192)).equals(pattern(1, 8192)));
    assert.equal((await volume.read(mebibyte + 512, 10)).toString(), 'after grow');
    const extents = await volume.blockStatus(0, 2 * mebibyte);
    assert.deepEqual(extents.slice(0, 3), [
      { lengthBytes: 4096, hole: true, zero: true },
      { lengthBytes: 8192, hole: false, zero: false },
      { lengthBytes: mebibyte - 12288, hole: true, zero: true },
    ]);
    assert.equal(
      extents.reduce((sum, extent) => sum + extent.lengthBytes, 0),
      2 * mebibyte,
    );
    await volume.close();
  });

  it('never corrupts a block under 32 overlapping requests', async () => {
    await temp.store.create('v', 64 * 4096);
    const volume = await temp.store.open('v');
    const next = seededRandom(7);
    const written = new Map<number, Set<string>>();
    const requests: Promise<unknown>[] = [];
    for (let index = 0; index < 400; index++) {
      const block = Math.floor(next() * 60);
      const count = 1 + Math.floor(next() * 4);
      const roll = next();
      if (roll < 0.55) {
        const data = pattern(1000 + index, count * 4096);
        for (let offset = 0; offset < count; offset++) {
          const set = written.get(block + offset) ?? new Set<string>();
          set.add(data.subarray(offset * 4096, offset * 4096 + 4096).toString('hex', 0, 32));
          written.set(block + offset, set);
        }
        requests.push(volume.write(block * 4096, data, { fua: roll < 0.05 }));
      } else if (roll < 0.9) {
        requests.push(volume.read(block * 4096, count * 4096));
      } else requests.push(volume.flush());
      if (requests.length === 32) await Promise.all(requests.splice(0, 8));
    }
    await Promise.all(requests);
    const check = async (): Promise<void> => {
      const all = await volume.read(0, 64 * 4096);
      for (const [block, versions] of written) {
        const head = all.toString('hex', block * 4096, block * 4096 + 32);
        assert.ok(versions.has(head), `block ${block} holds a version nobody wrote`);
      }
    };
    await check();
    await volume.close();
    const reopened = await (await temp.reopen()).open('v');
    assert.equal((await temp.store.scrub({ volume: 'v' })).damaged.length, 0);
    await reopened.close();
  });

  it('reports changes, checksums and the data generation for replication', async () => {
    await temp.store.create('v', mebibyte);
    const volume = await temp.store.open('v');
    const changes: BlockChange[] = [];
    const stop = volume.onChange((change) => changes.push(change));
    const generation = volume.dataGeneration;
    await volume.write(8192, pattern(3, 8192));
    await volume.writeZeroes(100, 5000);
    await volume.trim(65536, 3 * 4096);
    assert.deepEqual(changes, [
      { kind: 'write', startBlock: 2, blockCount: 2 },
      { kind: 'zero', startBlock: 0, blockCount: 2 },
      { kind: 'trim', startBlock: 16, blockCount: 3 },
    ]);
    stop();
    await volume.write(0, pattern(4, 4096));
    assert.equal(changes.length, 3, 'no change reported after unsubscribing');
    assert.equal(volume.dataGeneration, generation, 'nothing flushed yet');
    await volume.flush();
    assert.equal(volume.dataGeneration, generation + 1);
    const { checksums, allocated } = await volume.readChecksums(0, 5);
    assert.deepEqual([...allocated], [1, 0, 1, 1, 0], 'zeroed block 1 holds no data');
    assert.equal(checksums[2], zlib.crc32(pattern(3, 8192).subarray(0, 4096)));
    assert.equal(checksums[4], zeroChecksum(4096));
    await assert.rejects(volume.readChecksums(250, 10), blockError('range'));
    await volume.close();
  });
});
