import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BlockDeviceError } from '../storage/block-device.js';
import { crc32 } from './crc32.js';
import { FakeClock } from './fake-clock.js';
import { SeededRng } from './rng.js';
import { SimDisk, type SimDiskOptions } from './sim-disk.js';

const blockSize = 512;

function newDisk(seed: number, options: Partial<SimDiskOptions> = {}) {
  const clock = new FakeClock();
  const disk = new SimDisk({
    sizeBytes: 64 * blockSize,
    blockSizeBytes: blockSize,
    clock,
    rng: new SeededRng(seed).fork('disk'),
    ...options,
  });
  return { clock, disk };
}

/** A block whose every 4 bytes say which write and which block it came from. */
function tagged(tag: number, blocks: number): Buffer {
  const data = Buffer.alloc(blocks * blockSize);
  for (let block = 0; block < blocks; block++) {
    for (let at = 0; at < blockSize; at += 4)
      data.writeUInt32BE(tag * 1000 + block, block * blockSize + at);
  }
  return data;
}

/** Which write a block holds (0: zeroes), checking the block is not torn inside. */
function tagOf(block: Buffer): number {
  const value = block.readUInt32BE(0);
  for (let at = 0; at < block.length; at += 4)
    assert.equal(block.readUInt32BE(at), value, 'a torn block');
  return value;
}

async function rejectsWith(promise: Promise<unknown>, kind: string): Promise<void> {
  await assert.rejects(
    promise,
    (error: unknown) => error instanceof BlockDeviceError && error.kind === kind,
  );
}

describe('SimDisk', () => {
  it('reads back writes, partial ones included, and reports holes', async () => {
    const { disk } = newDisk(1, { delayMsMax: 0 });
    await disk.write(blockSize + 100, Buffer.alloc(blockSize, 7));
    const read = await disk.read(blockSize, 3 * blockSize);
    assert.equal(
      read.subarray(0, 100).every((b) => b === 0),
      true,
    );
    assert.equal(
      read.subarray(100, 100 + blockSize).every((b) => b === 7),
      true,
    );
    assert.equal(
      read.subarray(100 + blockSize).every((b) => b === 0),
      true,
    );
    assert.deepEqual(await disk.blockStatus(0, 4 * blockSize), [
      { lengthBytes: blockSize, hole: true, zero: true },
      { lengthBytes: 2 * blockSize, hole: false, zero: false },
      { lengthBytes: blockSize, hole: true, zero: true },
    ]);
    await disk.trim(blockSize, blockSize);
    await disk.writeZeroes(2 * blockSize, blockSize, { mayTrim: false });
    assert.deepEqual(await disk.blockStatus(0, 4 * blockSize), [
      { lengthBytes: 2 * blockSize, hole: true, zero: true },
      { lengthBytes: blockSize, hole: false, zero: false },
      { lengthBytes: blockSize, hole: true, zero: true },
    ]);
    assert.equal(
      (await disk.read(0, 4 * blockSize)).every((b) => b === 0),
      true,
    );
    await rejectsWith(disk.read(63 * blockSize, blockSize + 1), 'range');
  });

  it('reports the CRC-32 of each block, zeroes for holes, and which blocks hold data', async () => {
    const { disk } = newDisk(1, { delayMsMax: 0 });
    const data = tagged(5, 1);
    await disk.write(3 * blockSize, data);
    const { checksums, allocated } = await disk.readChecksums(2, 3);
    const zero = crc32(Buffer.alloc(blockSize));
    assert.deepEqual([...checksums], [zero, crc32(data), zero]);
    assert.deepEqual([...allocated], [0, 1, 0]);
    await rejectsWith(disk.readChecksums(60, 5), 'range');
  });

  it('a crash keeps every flushed write and loses only unflushed ones (300 seeds)', async () => {
    let lost = 0;
    for (let seed = 1; seed <= 300; seed++) lost += await crashRun(seed);
    assert.ok(lost > 0, 'no seed lost an unflushed write: the check proves nothing');
  });

  it('tears an unflushed multi-block write for some seed, never a flushed one', async () => {
    const outcomes = new Set<string>();
    for (let seed = 1; seed <= 40; seed++) {
      const { clock, disk } = newDisk(seed);
      const first = disk.write(0, tagged(1, 4));
      clock.advance(5);
      await first;
      await flushNow(clock, disk);
      const second = disk.write(0, tagged(2, 4));
      clock.advance(5);
      await second;
      disk.crash(new SeededRng(seed).fork('crash'));
      disk.open();
      const read = disk.read(0, 4 * blockSize);
      clock.advance(5);
      const blocks = await read;
      const tags = [0, 1, 2, 3].map((b) =>
        Math.floor(tagOf(blocks.subarray(b * blockSize, (b + 1) * blockSize)) / 1000),
      );
      assert.ok(
        tags.every((tag) => tag === 1 || tag === 2),
        `seed ${seed}: ${tags.join(',')}`,
      );
      outcomes.add(
        tags.every((t) => t === 2) ? 'kept' : tags.every((t) => t === 1) ? 'lost' : 'torn',
      );
    }
    assert.deepEqual([...outcomes].sort(), ['kept', 'lost', 'torn']);
  });

  it('a flush makes durable only what completed before it was issued', async () => {
    const { clock, disk } = newDisk(3, {
      delayMsMin: 1,
      delayMsMax: 1,
      crashSurvivalProbability: 0,
    });
    const first = disk.write(0, tagged(1, 1));
    clock.advance(1);
    await first;
    const both = Promise.all([disk.flush(), disk.write(blockSize, tagged(2, 1))]);
    clock.advance(1);
    await both;
    const fua = disk.write(2 * blockSize, tagged(3, 1), { fua: true });
    clock.advance(1);
    await fua;
    disk.crash();
    disk.open();
    const read = disk.read(0, 3 * blockSize);
    clock.advance(1);
    const blocks = await read;
    assert.equal(tagOf(blocks.subarray(0, blockSize)), 1000);
    assert.equal(
      tagOf(blocks.subarray(blockSize, 2 * blockSize)),
      0,
      'written after the flush was issued',
    );
    assert.equal(tagOf(blocks.subarray(2 * blockSize)), 3000, 'FUA');
  });

  it('fails operations in flight on a crash, and everything while off or closed', async () => {
    const { clock, disk } = newDisk(4, { delayMsMin: 1, delayMsMax: 2 });
    const inFlight = [disk.write(0, tagged(1, 1)), disk.read(0, 10), disk.flush()];
    assert.equal(disk.inFlight, 3);
    disk.crash();
    for (const operation of inFlight) await rejectsWith(operation, 'io');
    assert.equal(disk.inFlight, 0);
    await rejectsWith(disk.read(0, 10), 'closed');
    clock.advance(10);
    disk.open();
    const write = disk.write(0, tagged(2, 1));
    const closing = disk.close();
    await rejectsWith(disk.read(0, 10), 'closed');
    clock.advance(2);
    await write;
    await closing;
    await rejectsWith(disk.write(0, tagged(3, 1)), 'closed');
    disk.crash();
    disk.open();
    const read = disk.read(0, blockSize);
    clock.advance(2);
    assert.equal(tagOf(await read), 2000, 'close() made the write durable');
  });

  it('corrupt(): reads of the block fail, its checksum differs, a whole rewrite heals it', async () => {
    const { disk } = newDisk(5, { delayMsMax: 0 });
    const data = tagged(1, 2);
    await disk.write(0, data, { fua: true });
    disk.corrupt(1);
    await rejectsWith(disk.read(blockSize - 1, 2), 'corrupt');
    assert.equal(tagOf(await disk.read(0, blockSize)), 1000);
    const { checksums, allocated } = await disk.readChecksums(0, 2);
    assert.equal(checksums[0], crc32(data.subarray(0, blockSize)));
    assert.notEqual(checksums[1], crc32(data.subarray(blockSize)));
    assert.deepEqual([...allocated], [1, 1]);
    disk.crash();
    disk.open();
    await rejectsWith(disk.read(blockSize, 1), 'corrupt'); // On the medium: a crash keeps it.
    await disk.write(blockSize + 4, Buffer.alloc(4));
    await rejectsWith(disk.read(blockSize, 1), 'corrupt'); // A partial write does not heal it.
    await disk.write(blockSize, tagged(2, 1));
    assert.equal(tagOf(await disk.read(blockSize, blockSize)), 2000);
    assert.equal((await disk.readChecksums(1, 1)).checksums[0], crc32(tagged(2, 1)));
  });

  it('interleaves concurrent operations by the seed, the same way every run', async () => {
    const order = async (seed: number): Promise<string> => {
      const { clock, disk } = newDisk(seed, { delayMsMin: 0, delayMsMax: 5 });
      const done: number[] = [];
      const all = Array.from({ length: 8 }, (_, i) =>
        disk.write(i * blockSize, tagged(i, 1)).then(() => done.push(i)),
      );
      clock.advance(10);
      await Promise.all(all);
      return done.join(',');
    };
    assert.equal(await order(11), await order(11));
    const orders = new Set<string>();
    for (let seed = 1; seed <= 10; seed++) orders.add(await order(seed));
    assert.ok(orders.size > 1, 'every seed completed in the same order');
  });
});

async function flushNow(clock: FakeClock, disk: SimDisk): Promise<void> {
  const flush = disk.flush();
  clock.advance(5);
  await flush;
}

/**
 * Random concurrent writes (whole blocks, tagged), flushes and FUA writes, then a crash with some
 * still in flight; every block must read as its newest durable write or something newer. Returns
 * how many blocks lost an unflushed write.
 */
async function crashRun(seed: number): Promise<number> {
  const rng = new SeededRng(seed).fork('workload');
  const { clock, disk } = newDisk(seed, { sizeBytes: 16 * blockSize });
  /** Per block: tags of completed writes in completion order, and the newest known durable. */
  const history = Array.from({ length: 16 }, () => ({ tags: [0], durable: 0 }));
  const inFlightTags = Array.from({ length: 16 }, () => new Set<number>());
  let tag = 0;
  const issue = (): void => {
    if (rng.chance(0.2)) {
      const covered = history.map((h) => h.tags.length - 1);
      void disk.flush().then(
        () => {
          covered.forEach(
            (index, block) => (history[block]!.durable = Math.max(history[block]!.durable, index)),
          );
        },
        () => undefined,
      );
      return;
    }
    const start = rng.int(14);
    const count = rng.between(1, 3);
    const fua = rng.chance(0.1);
    const myTag = ++tag;
    for (let b = start; b < start + count; b++) inFlightTags[b]!.add(myTag * 1000 + b - start);
    void disk.write(start * blockSize, tagged(myTag, count), { fua }).then(
      () => {
        for (let b = start; b < start + count; b++) {
          inFlightTags[b]!.delete(myTag * 1000 + b - start);
          const h = history[b]!;
          h.tags.push(myTag * 1000 + b - start);
          if (fua) h.durable = h.tags.length - 1;
        }
      },
      () => undefined,
    );
  };
  for (let round = 0; round < 6; round++) {
    for (let i = rng.between(1, 4); i > 0; i--) issue();
    clock.advance(rng.int(4));
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  disk.crash(new SeededRng(seed).fork('crash'));
  await new Promise<void>((resolve) => setImmediate(resolve));
  disk.open();
  const read = disk.read(0, 16 * blockSize);
  clock.advance(5);
  const blocks = await read;
  let lost = 0;
  for (let block = 0; block < 16; block++) {
    const found = tagOf(blocks.subarray(block * blockSize, (block + 1) * blockSize));
    const h = history[block]!;
    const allowed = [...h.tags.slice(h.durable), ...inFlightTags[block]!];
    assert.ok(
      allowed.includes(found),
      `seed ${seed} block ${block}: ${found} not in ${allowed.join(',')}`,
    );
    if (h.tags.slice(0, -1).includes(found)) lost++;
  }
  return lost;
}
