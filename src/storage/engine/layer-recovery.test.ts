// Opening a layer after an unclean stop, with the files in the states a crash or a power cut can
// leave: a torn last journal record, a last batch whose data never reached the disk, a journal
// rewritten as a checkpoint. Files are copied while the layer is open, which is what the disk
// holds if the machine stopped at that instant.
import assert from 'node:assert/strict';
import { closeSync, openSync } from 'node:fs';
import { copyFile, open, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { isDataEntry, slotOf } from './block-map.js';
import type { Layer } from './layer.js';
import { createLayerFiles, openLayer, type LayerPaths } from './layer-open.js';
import { pattern, tempDir } from './test-support.js';

const blockSize = 4096;
const options = {
  blockSizeBytes: blockSize,
  frozen: false,
  hasParent: false,
  epochBlocksMax: 1024,
  journalBytesMax: 1 << 20,
};

describe('layer recovery', () => {
  let dir: string;
  const paths = (name: string): LayerPaths => ({
    dataPath: path.join(dir, `${name}.data`),
    journalPath: path.join(dir, `${name}.journal`),
  });
  /** What the disk holds right now for layer `from`, as layer `to`. */
  const crashCopy = async (from: string, to: string): Promise<void> => {
    await copyFile(paths(from).dataPath, paths(to).dataPath);
    await copyFile(paths(from).journalPath, paths(to).journalPath);
  };
  const readBlock = async (layer: Layer, block: number): Promise<Buffer> => {
    const buffer = Buffer.alloc(blockSize);
    await layer.readSlots(slotOf(layer.map.entry(block)), 1, buffer, 0);
    return buffer;
  };

  beforeEach(async () => {
    dir = await tempDir('layer');
    await createLayerFiles(paths('live'), { blockSizeBytes: blockSize, generation: 0 });
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('replays flushed batches and drops what was never flushed', async () => {
    const { layer } = await openLayer('live', paths('live'), options);
    await layer.stageWrite(0, pattern(1, 2 * blockSize));
    await layer.flush();
    await layer.stageWrite(1, pattern(2, blockSize));
    await layer.stageWrite(5, pattern(3, blockSize));
    await crashCopy('live', 'crashed');
    await layer.close();

    const { layer: reopened, recovery } = await openLayer('crashed', paths('crashed'), options);
    assert.equal(recovery.unclean, true);
    assert.deepEqual(recovery.rolledBackBlocks, []);
    assert.equal(reopened.generation, 1);
    assert.ok((await readBlock(reopened, 1)).equals(pattern(1, 2 * blockSize).subarray(blockSize)));
    assert.equal(reopened.map.entry(5), 0, 'unflushed block is absent');
    await reopened.close();
  });

  it('fails every flush after a data write failed, also once the write has settled', async () => {
    const { layer } = await openLayer('live', paths('live'), options);
    await layer.stageWrite(0, pattern(1, blockSize));
    await layer.flush();
    // The data file's descriptor becomes a read-only one (open takes the lowest free number).
    const fd = (layer as unknown as { dataFd: number }).dataFd;
    closeSync(fd);
    assert.equal(openSync(paths('live').dataPath, 'r'), fd);
    await assert.rejects(layer.stageWrite(1, pattern(2, blockSize)), { kind: 'io' });
    await assert.rejects(layer.flush(), { kind: 'io' });
    await assert.rejects(layer.flush(), { kind: 'io' });
    await layer.close();
  });

  it('cuts off a torn last record', async () => {
    const { layer } = await openLayer('live', paths('live'), options);
    await layer.stageWrite(3, pattern(4, blockSize));
    await layer.flush();
    await crashCopy('live', 'torn');
    await layer.close();
    const size = (await stat(paths('torn').journalPath)).size;
    const handle = await open(paths('torn').journalPath, 'r+');
    await handle.write(Buffer.from('CJRN half a record'), 0, 18, size);
    await handle.close();
    const { layer: reopened } = await openLayer('torn', paths('torn'), options);
    assert.ok((await readBlock(reopened, 3)).equals(pattern(4, blockSize)));
    await reopened.stageWrite(4, pattern(5, blockSize));
    await reopened.close();
    const again = await openLayer('torn', paths('torn'), options);
    assert.ok(isDataEntry(again.layer.map.entry(4)), 'a record appended after the cut replays');
    await again.layer.close();
  });

  it('redoes a small flush from the copy of its data in the journal', async () => {
    const { layer } = await openLayer('live', paths('live'), options);
    await layer.stageWrite(7, pattern(6, blockSize));
    await layer.flush();
    await layer.stageWrite(7, pattern(7, blockSize));
    await layer.flush();
    const slot = slotOf(layer.map.entry(7));
    await crashCopy('live', 'power-cut');
    await layer.close();
    // The power cut kept the journal (the only file a small flush syncs) but not the data page.
    const handle = await open(paths('power-cut').dataPath, 'r+');
    await handle.write(Buffer.alloc(blockSize), 0, blockSize, slot * blockSize);
    await handle.close();
    const { layer: reopened, recovery } = await openLayer('power-cut', paths('power-cut'), options);
    assert.equal(recovery.redoneBlocks, 1);
    assert.ok((await readBlock(reopened, 7)).equals(pattern(7, blockSize)));
    await reopened.close();
  });

  it('rolls back a large last batch whose data did not reach the disk, and remembers it', async () => {
    const { layer } = await openLayer('live', paths('live'), options);
    const blocks = 20; // more than a flush carries in its record: a plain batch
    await layer.stageWrite(0, pattern(6, blocks * blockSize));
    await layer.flush();
    await layer.stageWrite(0, pattern(7, blocks * blockSize));
    await layer.flush();
    const lostSlot = slotOf(layer.map.entry(7));
    await crashCopy('live', 'power-cut');
    await layer.close();
    // The power cut kept the record of the second batch but not the new data of block 7.
    const handle = await open(paths('power-cut').dataPath, 'r+');
    await handle.write(Buffer.alloc(blockSize), 0, blockSize, lostSlot * blockSize);
    await handle.close();

    const first = await openLayer('power-cut', paths('power-cut'), options);
    assert.deepEqual(first.recovery.rolledBackBlocks, [7]);
    const old = pattern(6, blocks * blockSize);
    assert.ok((await readBlock(first.layer, 7)).equals(old.subarray(7 * blockSize, 8 * blockSize)));
    const fresh = pattern(7, blocks * blockSize);
    assert.ok(
      (await readBlock(first.layer, 8)).equals(fresh.subarray(8 * blockSize, 9 * blockSize)),
    );
    await first.layer.stageWrite(30, pattern(9, blockSize)); // may reuse the slot freed by the rollback
    await first.layer.close();
    const second = await openLayer('power-cut', paths('power-cut'), options);
    assert.equal(second.recovery.unclean, false);
    assert.ok(
      (await readBlock(second.layer, 7)).equals(old.subarray(7 * blockSize, 8 * blockSize)),
    );
    await second.layer.close();
  });

  it('rewrites a long journal as a checkpoint that replays to the same map', async () => {
    const small = { ...options, journalBytesMax: 4096 };
    const { layer } = await openLayer('live', paths('live'), small);
    for (let round = 0; round < 40; round++) {
      await layer.stageWrite(round % 13, pattern(100 + round, blockSize));
      if (round % 5 === 0)
        layer.stageUnmap(
          20 + round,
          1,
          () => 1,
          () => false,
        );
      await layer.flush();
    }
    assert.ok(layer.journalBytes < 4096 + 1024, `journal is ${layer.journalBytes} bytes`);
    const entries: number[][] = [];
    layer.map.forEachEntry((block, entry, checksum) => entries.push([block, entry, checksum]));
    await crashCopy('live', 'checkpointed');
    await layer.close();
    const { layer: reopened } = await openLayer('checkpointed', paths('checkpointed'), small);
    const replayed: number[][] = [];
    reopened.map.forEachEntry((block, entry, checksum) => replayed.push([block, entry, checksum]));
    assert.deepEqual(replayed, entries);
    assert.equal(reopened.generation, 40);
    for (let block = 0; block < 13; block++) {
      assert.ok(isDataEntry(reopened.map.entry(block)));
      const round = 39 - ((39 - block) % 13);
      assert.ok((await readBlock(reopened, block)).equals(pattern(100 + round, blockSize)));
    }
    await reopened.close();
  });
});
