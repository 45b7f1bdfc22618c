// Silent corruption: a byte flipped in a layer's data file behind the engine's back must be
// reported by every read that touches the block (kind 'corrupt', never the bad bytes) and by
// scrub, and scrub must repair it from a good copy, but only with data that matches the checksum.
import assert from 'node:assert/strict';
import { open, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { BlockDeviceError } from '../block-device.js';
import { ContinuumError } from '../../core/errors.js';
import { openRawReader } from './raw-reader.js';
import { distinctBlocks, pattern, tempStore, type TempStore } from './test-support.js';

const blockSize = 4096;
const volumeBytes = 64 * blockSize;

/** Flips one byte of the copy of `content` in a layer's data file; returns the file offset. */
async function flipByteOf(dataPath: string, content: Buffer): Promise<number> {
  const file = await readFile(dataPath);
  const at = file.indexOf(content);
  assert.ok(at >= 0, 'block content found in the data file');
  const handle = await open(dataPath, 'r+');
  const byte = Buffer.from([file[at + 1234]! ^ 0x40]);
  await handle.write(byte, 0, 1, at + 1234);
  await handle.close();
  return at;
}

function isCorrupt(block: number) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof BlockDeviceError, String(error));
    assert.equal(error.kind, 'corrupt');
    assert.match(error.message, new RegExp(`block ${block}\\b`));
    return true;
  };
}

describe('corruption', () => {
  let temp: TempStore;
  const content = distinctBlocks(7, volumeBytes / blockSize);
  const damagedBlock = 17;

  beforeEach(async () => {
    temp = await tempStore();
    await temp.store.create('vol', volumeBytes);
    const volume = await temp.store.open('vol');
    await volume.write(0, content);
    await volume.close();
    await temp.store.export({ volume: 'vol' }, path.join(temp.dir, 'good.raw'));
    const [info] = await temp.store.list();
    await temp.store.close();
    const dataPath = path.join(temp.root, 'layers', `${info!.layers[0]!.id}.data`);
    const start = damagedBlock * blockSize;
    await flipByteOf(dataPath, content.subarray(start, start + blockSize));
    temp.store = await (await import('./volume-store.js')).VolumeStore.open(temp.root);
  });
  afterEach(async () => {
    await temp.cleanup();
  });

  it('is reported by read, never returned', async () => {
    const volume = await temp.store.open('vol');
    await assert.rejects(volume.read(damagedBlock * blockSize, blockSize), isCorrupt(damagedBlock));
    await assert.rejects(volume.read(0, volumeBytes), isCorrupt(damagedBlock));
    await assert.rejects(volume.read(damagedBlock * blockSize + 10, 5), isCorrupt(damagedBlock));
    // A partial write needs the old block: it fails too rather than build on bad data.
    await assert.rejects(
      volume.write(damagedBlock * blockSize + 1, Buffer.from('x')),
      isCorrupt(damagedBlock),
    );
    const neighbour = await volume.read((damagedBlock + 1) * blockSize, blockSize);
    assert.ok(
      neighbour.equals(
        content.subarray((damagedBlock + 1) * blockSize, (damagedBlock + 2) * blockSize),
      ),
    );
    await volume.close();
    await assert.rejects(temp.store.export({ volume: 'vol' }, path.join(temp.dir, 'bad.raw')), {
      code: 'CONTINUUM_ERR_VOLUME_CORRUPT',
    });
  });

  it('is reported by scrub and repaired from a good copy', async () => {
    const report = await temp.store.scrub({ volume: 'vol' });
    assert.equal(report.blocksChecked, 64);
    assert.equal(report.damaged.length, 1);
    assert.equal(report.damaged[0]!.block, damagedBlock);
    assert.equal(report.damaged[0]!.visible, true);
    assert.equal(report.repairedCount, 0);

    const good = await openRawReader(path.join(temp.dir, 'good.raw'));
    const repaired = await temp.store.scrub({ volume: 'vol' }, { repairFrom: good });
    await good.close();
    assert.equal(repaired.repairedCount, 1);
    const volume = await temp.store.open('vol');
    assert.ok((await volume.read(0, volumeBytes)).equals(content));
    await volume.close();
    assert.equal((await temp.store.scrub({ volume: 'vol' })).damaged.length, 0);
  });

  it('is not "repaired" from a copy that does not match the checksum', async () => {
    const wrong = {
      read: (_offset: number, length: number) => Promise.resolve(pattern(99, length)),
    };
    const report = await temp.store.scrub({ volume: 'vol' }, { repairFrom: wrong });
    assert.equal(report.repairedCount, 0);
    assert.match(report.damaged[0]!.detail, /differs from the checksum/);
    const volume = await temp.store.open('vol');
    await assert.rejects(volume.read(damagedBlock * blockSize, blockSize), isCorrupt(damagedBlock));
    await volume.close();
  });

  it('is found in a snapshot layer hidden by newer writes, and repaired through the snapshot', async () => {
    await temp.store.snapshot('vol', 'old');
    const volume = await temp.store.open('vol');
    await volume.write(damagedBlock * blockSize, pattern(8, blockSize));
    assert.ok(
      (await volume.read(damagedBlock * blockSize, blockSize)).equals(pattern(8, blockSize)),
    );
    await volume.close();
    const report = await temp.store.scrub({ volume: 'vol' });
    assert.equal(report.damaged.length, 1);
    assert.equal(report.damaged[0]!.visible, false);
    const good = await openRawReader(path.join(temp.dir, 'good.raw'));
    const repaired = await temp.store.scrub(
      { volume: 'vol', snapshot: 'old' },
      { repairFrom: good },
    );
    await good.close();
    assert.equal(repaired.repairedCount, 1);
    assert.equal((await temp.store.scrub({ volume: 'vol' })).damaged.length, 0);
  });

  it('keeps a damaged journal from opening silently', async () => {
    const [info] = await temp.store.list();
    await temp.store.close();
    const journalPath = path.join(temp.root, 'layers', `${info!.layers[0]!.id}.journal`);
    const handle = await open(journalPath, 'r+');
    // The header record takes bytes 0-39; byte 40 starts the first batch. Later records stay intact.
    await handle.write(Buffer.from([0xff]), 0, 1, 40);
    await handle.close();
    temp.store = await (await import('./volume-store.js')).VolumeStore.open(temp.root);
    await assert.rejects(temp.store.open('vol'), (error: unknown) => {
      assert.ok(error instanceof ContinuumError);
      assert.equal(error.code, 'CONTINUUM_ERR_VOLUME_CORRUPT');
      assert.match(error.message, /damaged at byte 40/);
      return true;
    });
  });
});
