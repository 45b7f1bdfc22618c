// The dirty bitmap: against a plain Set of regions over seeded random operations, on the edges
// that matter to a resync (unaligned ranges, the short last region, runs across word boundaries,
// growth), and through its file, where every torn or damaged byte must be caught on load.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ContinuumError } from '../../core/errors.js';
import { mulberry32 } from '../../sim/rng.js';
import { DirtyBitmap, dirtyBitmapRegionCountMax, type DirtyRun } from './dirty-bitmap.js';

const startGeneration = '0123456789abcdef';
const kib = 1024;

function bitmapOf(volumeSizeBytes: number, regionSizeBytes = 64 * kib): DirtyBitmap {
  return DirtyBitmap.create({ regionSizeBytes, volumeSizeBytes, startGeneration });
}

/** Runs as [start, count] pairs, the shape that reads best in an assertion. */
function runsOf(bitmap: DirtyBitmap, startRegion?: number): [number, number][] {
  return [...bitmap.dirtyRuns(startRegion)].map((run) => [run.startRegion, run.regionCount]);
}

/** The same runs from a set of regions, computed the slow and obvious way. */
function modelRuns(dirty: ReadonlySet<number>, regionCount: number): [number, number][] {
  const runs: [number, number][] = [];
  for (let region = 0; region < regionCount; region++) {
    if (!dirty.has(region)) continue;
    const last = runs.at(-1);
    if (last !== undefined && last[0] + last[1] === region) last[1] += 1;
    else runs.push([region, 1]);
  }
  return runs;
}

function isCorrupt(detail: RegExp) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof ContinuumError, String(error));
    assert.equal(error.code, 'CONTINUUM_ERR_VOLUME_CORRUPT');
    assert.match(error.message, detail);
    return true;
  };
}

describe('DirtyBitmap in memory', () => {
  it('matches a Set of regions over 500 seeded random operations', () => {
    const random = mulberry32(20_251_201);
    const between = (min: number, max: number): number =>
      min + Math.floor(random() * (max - min + 1));
    const regionSizeBytes = 4 * kib;
    // Not a whole number of regions, so the short last region is exercised throughout.
    let sizeBytes = 700 * regionSizeBytes + 1234;
    const bitmap = bitmapOf(sizeBytes, regionSizeBytes);
    const model = new Set<number>();
    const regionCount = (): number => Math.ceil(sizeBytes / regionSizeBytes);
    const counts = { mark: 0, clear: 0, grow: 0 };
    for (let step = 0; step < 500; step++) {
      const choice = random();
      // Ranges of three shapes: short unaligned ones (what writes look like), whole regions (what
      // a resync clears), and ones that run to the end of the volume (the short last region).
      const shape = random();
      let offset = between(0, sizeBytes - 1);
      let length = between(0, Math.min(sizeBytes - offset, 5 * regionSizeBytes));
      if (shape < 0.3) {
        offset = between(0, regionCount() - 1) * regionSizeBytes;
        length = Math.min(between(0, 5) * regionSizeBytes, sizeBytes - offset);
      } else if (shape < 0.45) {
        length = sizeBytes - offset;
      }
      if (choice < 0.55) {
        counts.mark += 1;
        bitmap.markRange(offset, length);
        for (let region = 0; region < regionCount(); region++) {
          const start = region * regionSizeBytes;
          if (length > 0 && start < offset + length && start + regionSizeBytes > offset) {
            model.add(region);
          }
        }
      } else if (choice < 0.95) {
        counts.clear += 1;
        bitmap.clearRange(offset, length);
        for (let region = 0; region < regionCount(); region++) {
          const start = region * regionSizeBytes;
          const end = Math.min(start + regionSizeBytes, sizeBytes);
          if (start >= offset && end <= offset + length) model.delete(region);
        }
      } else {
        counts.grow += 1;
        sizeBytes += between(1, 40 * regionSizeBytes);
        bitmap.grow(sizeBytes);
      }
      const at = `step ${step}`;
      assert.equal(bitmap.regionCount, regionCount(), at);
      assert.equal(bitmap.countDirty(), model.size, at);
      assert.deepEqual(runsOf(bitmap), modelRuns(model, regionCount()), at);
      const probe = between(0, regionCount() - 1);
      assert.deepEqual(runsOf(bitmap, probe), clip(modelRuns(model, regionCount()), probe), at);
      for (let region = 0; region < regionCount(); region++) {
        if (bitmap.isDirty(region) !== model.has(region)) assert.fail(`${at}: region ${region}`);
      }
    }
    assert.ok(counts.mark > 200 && counts.clear > 150 && counts.grow > 10, JSON.stringify(counts));
    assert.ok(model.size > 0, 'the run ends with something dirty');
  });

  it('marks every region an unaligned range touches, and clears only whole ones', () => {
    const region = 64 * kib;
    const bitmap = bitmapOf(10 * region);
    bitmap.markRange(region - 1, 2); // the last byte of region 0 and the first of region 1
    assert.deepEqual(runsOf(bitmap), [[0, 2]]);
    bitmap.markRange(3 * region + 10, 1); // one byte inside region 3
    bitmap.markRange(5 * region + 1, 2 * region); // regions 5, 6 and one byte of 7
    assert.deepEqual(runsOf(bitmap), [
      [0, 2],
      [3, 1],
      [5, 3],
    ]);
    bitmap.markRange(9 * region, 0); // nothing
    assert.equal(bitmap.countDirty(), 6);

    bitmap.clearRange(1, 2 * region); // covers region 1 wholly, region 0 and 2 in part
    assert.deepEqual(runsOf(bitmap), [
      [0, 1],
      [3, 1],
      [5, 3],
    ]);
    bitmap.clearRange(5 * region, 2 * region + region / 2); // 5 and 6, half of 7
    assert.deepEqual(runsOf(bitmap), [
      [0, 1],
      [3, 1],
      [7, 1],
    ]);
    assert.equal(bitmap.countDirty(), 3);
  });

  it('treats the short last region as whole when a range reaches the end', () => {
    const region = 64 * kib;
    const size = 3 * region + 100;
    const bitmap = bitmapOf(size);
    assert.equal(bitmap.regionCount, 4);
    bitmap.markRange(size - 1, 1);
    const [run] = [...bitmap.dirtyRuns()];
    assert.deepEqual(run, {
      startRegion: 3,
      regionCount: 1,
      offsetBytes: 3 * region,
      lengthBytes: 100,
    });
    bitmap.clearRange(run.offsetBytes, run.lengthBytes);
    assert.equal(bitmap.countDirty(), 0);
  });

  it('iterates maximal runs across word boundaries, from any start', () => {
    const region = 4 * kib;
    const bitmap = bitmapOf(200 * region, region);
    const marked: [number, number][] = [
      [0, 3],
      [7, 1],
      [30, 40], // crosses the words at 32 and 64
      [96, 32], // exactly one word
      [199, 1], // the last region
    ];
    for (const [start, count] of marked) bitmap.markRange(start * region, count * region);
    assert.deepEqual(runsOf(bitmap), marked);
    assert.deepEqual(runsOf(bitmap, 1), [[1, 2], ...marked.slice(1)]);
    assert.deepEqual(runsOf(bitmap, 50), [
      [50, 20],
      [96, 32],
      [199, 1],
    ]);
    assert.deepEqual(runsOf(bitmap, 128), [[199, 1]]);
    assert.deepEqual(runsOf(bitmap, 200), []);
    const byteRuns: DirtyRun[] = [...bitmap.dirtyRuns(96)];
    assert.deepEqual(byteRuns[0], {
      startRegion: 96,
      regionCount: 32,
      offsetBytes: 96 * region,
      lengthBytes: 32 * region,
    });
    assert.throws(() => [...bitmap.dirtyRuns(201)], RangeError);
  });

  it('lets a resync clear runs as it goes without visiting them twice', () => {
    const region = 4 * kib;
    const bitmap = bitmapOf(100 * region, region);
    bitmap.markRange(0, 10 * region);
    bitmap.markRange(50 * region, 10 * region);
    const visited: number[] = [];
    for (const run of bitmap.dirtyRuns()) {
      visited.push(run.startRegion);
      bitmap.clearRange(run.offsetBytes, run.lengthBytes);
      // A write lands behind the cursor while copying: it waits for the next pass.
      if (run.startRegion === 50) bitmap.markRange(5 * region, 1);
    }
    assert.deepEqual(visited, [0, 50]);
    assert.deepEqual(runsOf(bitmap), [[5, 1]]);
  });

  it('grows with its bits kept and the new regions clean, and never shrinks', () => {
    const region = 64 * kib;
    const bitmap = bitmapOf(10 * region + 7);
    bitmap.markRange(10 * region, 7); // the short last region
    bitmap.markRange(0, 1);
    bitmap.grow(1000 * region);
    assert.equal(bitmap.regionCount, 1000);
    assert.equal(bitmap.volumeSizeBytes, 1000 * region);
    assert.deepEqual(runsOf(bitmap), [
      [0, 1],
      [10, 1],
    ]);
    bitmap.markRange(999 * region, region);
    assert.deepEqual(runsOf(bitmap, 11), [[999, 1]]);
    assert.throws(() => bitmap.grow(999 * region), /never shrinks/);
    assert.throws(() => bitmap.markRange(999 * region, region + 1), RangeError);
  });

  it('refuses bad options and ranges outside the volume', () => {
    const create = (
      regionSizeBytes: number,
      volumeSizeBytes: number,
      generation = startGeneration,
    ) => DirtyBitmap.create({ regionSizeBytes, volumeSizeBytes, startGeneration: generation });
    assert.throws(() => create(3000, kib), /power of two/);
    assert.throws(() => create(256, kib), /from 512/);
    assert.throws(() => create(4096, 0), /volumeSizeBytes/);
    assert.throws(() => create(4096, 4096, 'g7'), /startGeneration/);
    assert.throws(
      () => create(512, 512 * (dirtyBitmapRegionCountMax + 1)),
      (error: unknown) =>
        error instanceof ContinuumError && error.code === 'CONTINUUM_ERR_VOLUME_LIMIT',
    );
    const bitmap = bitmapOf(4 * 64 * kib);
    assert.throws(() => bitmap.markRange(-1, 2), RangeError);
    assert.throws(() => bitmap.clearRange(0, 4 * 64 * kib + 1), RangeError);
    assert.throws(() => bitmap.isDirty(4), RangeError);
  });
});

describe('DirtyBitmap on disk', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'continuum-dirty-bitmap-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** A saved bitmap with a mix of runs over a short last region. */
  async function saved(name: string): Promise<{ file: string; bitmap: DirtyBitmap }> {
    const region = 4 * kib;
    const bitmap = bitmapOf(77 * region + 512, region);
    bitmap.markRange(0, 3 * region);
    bitmap.markRange(40 * region + 1, region);
    bitmap.markRange(77 * region, 512);
    const file = path.join(dir, name);
    await bitmap.save(file);
    return { file, bitmap };
  }

  it('round-trips every field and bit, and leaves no temporary behind', async () => {
    const { file, bitmap } = await saved('round-trip.bitmap');
    const loaded = await DirtyBitmap.load(file);
    assert.ok(loaded !== null);
    assert.equal(loaded.regionSizeBytes, bitmap.regionSizeBytes);
    assert.equal(loaded.volumeSizeBytes, bitmap.volumeSizeBytes);
    assert.equal(loaded.startGeneration, startGeneration);
    assert.equal(loaded.countDirty(), 6);
    assert.deepEqual([...loaded.dirtyRuns()], [...bitmap.dirtyRuns()]);
    assert.equal(loaded.hasUnsavedChanges, false);
    loaded.markRange(0, 1); // already dirty: nothing to save
    assert.equal(loaded.hasUnsavedChanges, false);
    loaded.grow(loaded.volumeSizeBytes + 4 * kib);
    loaded.markRange(loaded.volumeSizeBytes - 1, 1);
    await loaded.save(file);
    const grown = await DirtyBitmap.load(file);
    assert.deepEqual([...grown!.dirtyRuns()], [...loaded.dirtyRuns()]);
    assert.equal(grown!.regionCount, 79);
    assert.ok(!(await readdir(dir)).some((entry) => entry.endsWith('.tmp')));
  });

  it('is null when there is no file', async () => {
    assert.equal(await DirtyBitmap.load(path.join(dir, 'absent.bitmap')), null);
  });

  it('detects a flipped byte anywhere in the file', async () => {
    const { file } = await saved('flipped.bitmap');
    const good = await readFile(file);
    for (let at = 0; at < good.length; at++) {
      const bad = Buffer.from(good);
      bad[at]! ^= 0x10;
      await writeFile(file, bad);
      await assert.rejects(
        DirtyBitmap.load(file),
        isCorrupt(/dirty bitmap .*flipped\.bitmap/),
        `byte ${at}`,
      );
    }
    await writeFile(file, good);
    assert.equal((await DirtyBitmap.load(file))!.countDirty(), 6);
  });

  it('detects a truncated file, an empty one and trailing bytes', async () => {
    const { file } = await saved('torn.bitmap');
    const good = await readFile(file);
    await truncate(file, good.length - 1);
    await assert.rejects(
      DirtyBitmap.load(file),
      isCorrupt(/is \d+ bytes, but its 78 regions need/),
    );
    await truncate(file, 12);
    await assert.rejects(DirtyBitmap.load(file), isCorrupt(/is truncated: 12 bytes/));
    await truncate(file, 0);
    await assert.rejects(DirtyBitmap.load(file), isCorrupt(/is truncated: 0 bytes/));
    await writeFile(file, Buffer.concat([good, Buffer.alloc(1)]));
    await assert.rejects(DirtyBitmap.load(file), isCorrupt(/need/));
  });

  it('writes overlapping saves in call order, the last one winning', async () => {
    const file = path.join(dir, 'ordered.bitmap');
    const bitmap = bitmapOf(64 * 64 * kib);
    const saves: Promise<void>[] = [];
    for (let region = 0; region < 8; region++) {
      bitmap.markRange(region * 64 * kib, 1);
      saves.push(bitmap.save(file));
    }
    await Promise.all(saves);
    assert.deepEqual(runsOf((await DirtyBitmap.load(file))!), [[0, 8]]);
  });

  it('saveIfChanged writes only changes, and waits for a save in flight that holds them', async () => {
    const file = path.join(dir, 'if-changed.bitmap');
    const bitmap = bitmapOf(64 * 64 * kib);
    bitmap.markRange(0, 1);
    assert.equal(bitmap.hasUnsavedChanges, true);
    const first = bitmap.save(file);
    assert.equal(bitmap.hasUnsavedChanges, false);
    // A second flush arriving now must not answer before the first save is durable.
    let settled = false;
    const second = bitmap.saveIfChanged(file).then(() => {
      settled = true;
    });
    await first;
    await second;
    assert.equal(settled, true);
    assert.equal((await DirtyBitmap.load(file))!.countDirty(), 1);
    // Nothing changed since: no write at all (a file removed behind its back stays removed).
    await rm(file);
    await bitmap.saveIfChanged(file);
    assert.equal(await DirtyBitmap.load(file), null);
  });

  it('keeps its changes unsaved when a save fails', async () => {
    const bitmap = bitmapOf(64 * 64 * kib);
    bitmap.markRange(0, 1);
    await assert.rejects(bitmap.save(path.join(dir, 'missing-dir', 'x.bitmap')));
    assert.equal(bitmap.hasUnsavedChanges, true);
    const file = path.join(dir, 'after-failure.bitmap');
    await bitmap.saveIfChanged(file);
    assert.equal((await DirtyBitmap.load(file))!.countDirty(), 1);
    // Also a failed save of nothing new: the next saveIfChanged writes rather than fail again.
    await assert.rejects(bitmap.save(path.join(dir, 'missing-dir', 'x.bitmap')));
    await bitmap.saveIfChanged(file);
    assert.equal(bitmap.hasUnsavedChanges, false);
  });
});

/** Runs from `start` on, with a run that covers `start` cut to begin there. */
function clip(runs: [number, number][], start: number): [number, number][] {
  return runs
    .filter(([first, count]) => first + count > start)
    .map(([first, count]): [number, number] =>
      first >= start ? [first, count] : [start, count - (start - first)],
    );
}
