// The replica meta: its file survives a round trip and a damaged one is refused by name; the
// epoch, generation and history decisions do what docs/replication.md says a replica does.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ContinuumError } from '../../core/errors.js';
import { mulberry32 } from '../../sim/rng.js';
import {
  acceptEpoch,
  compareHistories,
  emptyReplicaMeta,
  generationHistoryMax,
  isUnclean,
  loadReplicaMeta,
  newGenerationId,
  saveReplicaMeta,
  startGeneration,
  type ReplicaMeta,
} from './replica-meta.js';

/** Distinct ids g(0), g(1), ... that read as what they are in a failure message. */
const g = (n: number): string => n.toString(16).padStart(16, '0');

const sample: ReplicaMeta = Object.freeze({
  volume: 'web-1',
  highestEpoch: 12,
  generations: Object.freeze([g(3), g(2), g(1)]),
  dataGeneration: 41,
});

function isCorrupt(filePath: string, detail: RegExp) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof ContinuumError, String(error));
    assert.equal(error.code, 'CONTINUUM_ERR_VOLUME_CORRUPT');
    assert.ok(error.message.includes(filePath), error.message);
    assert.match(error.message, detail);
    return true;
  };
}

describe('replica meta file', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'continuum-replica-meta-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('round-trips through the file and leaves no temporary behind', async () => {
    const file = path.join(dir, 'round-trip.json');
    await saveReplicaMeta(file, sample);
    assert.deepEqual(await loadReplicaMeta(file), sample);
    assert.deepEqual(await loadReplicaMeta(file, { volume: 'web-1' }), sample);
    const written = JSON.parse(await readFile(file, 'utf8')) as { format: unknown };
    assert.equal(written.format, 1);
    assert.deepEqual((await readdir(dir)).sort(), ['round-trip.json']);
  });

  it('replaces an older meta', async () => {
    const file = path.join(dir, 'replace.json');
    await saveReplicaMeta(file, emptyReplicaMeta('web-1'));
    await saveReplicaMeta(file, sample);
    assert.deepEqual(await loadReplicaMeta(file), sample);
  });

  it('keeps the unclean flag; a format 1 file without it loads as a clean copy', async () => {
    const file = path.join(dir, 'unclean.json');
    for (const unclean of [true, false]) {
      await saveReplicaMeta(file, { ...sample, unclean });
      assert.deepEqual(await loadReplicaMeta(file), { ...sample, unclean });
      assert.equal(isUnclean(await loadReplicaMeta(file)), unclean);
    }
    const older = { format: 1, ...sample, generations: [...sample.generations] };
    await writeFile(file, JSON.stringify(older));
    const loaded = await loadReplicaMeta(file);
    assert.deepEqual(loaded, sample);
    assert.equal(isUnclean(loaded), false);
    assert.equal(isUnclean(null), false);
    await writeFile(file, JSON.stringify({ ...older, unclean: 'yes' }));
    await assert.rejects(loadReplicaMeta(file), isCorrupt(file, /at unclean/));
  });

  it('is null when there is no file', async () => {
    assert.equal(await loadReplicaMeta(path.join(dir, 'absent.json')), null);
  });

  const file = { format: 1, ...sample, generations: [...sample.generations] };
  const damaged: [string, string, RegExp][] = [
    ['not JSON', '{"format": 1, "volume": ', /not JSON/],
    ['torn', JSON.stringify(file).slice(0, 40), /not JSON/],
    ['an array', '[]', /at the top/],
    ['a later format', JSON.stringify({ ...file, format: 2 }), /at format/],
    [
      'a bad id',
      JSON.stringify({ ...file, generations: [g(1), 'XYZ'] }),
      /at generations\.1: .*hex/,
    ],
    [
      'a repeated id',
      JSON.stringify({ ...file, generations: [g(1), g(1)] }),
      /at generations: expected no generation twice/,
    ],
    ['a negative epoch', JSON.stringify({ ...file, highestEpoch: -1 }), /at highestEpoch:/],
    [
      'a fractional counter',
      JSON.stringify({ ...file, dataGeneration: 1.5 }),
      /at dataGeneration:/,
    ],
    ['a missing field', JSON.stringify({ ...file, volume: undefined }), /at volume:/],
    ['an unknown field', JSON.stringify({ ...file, extra: true }), /at the top: .*"extra"/],
    ['a bad volume name', JSON.stringify({ ...file, volume: '../etc' }), /at volume:/],
    [
      'too long a history',
      JSON.stringify({ ...file, generations: Array.from({ length: 65 }, (_, n) => g(n)) }),
      /at generations: .*64/,
    ],
  ];
  for (const [what, text, detail] of damaged) {
    it(`refuses a file with ${what}, naming the path and the fault`, async () => {
      const target = path.join(dir, `damaged-${what.replaceAll(' ', '-')}.json`);
      await writeFile(target, text);
      await assert.rejects(loadReplicaMeta(target), isCorrupt(target, detail));
    });
  }

  it('refuses a file that names another volume', async () => {
    const target = path.join(dir, 'other-volume.json');
    await saveReplicaMeta(target, sample);
    await assert.rejects(loadReplicaMeta(target, { volume: 'db-1' }), isCorrupt(target, /db-1/));
  });

  it('refuses to save what it would refuse to load, and writes nothing', async () => {
    const target = path.join(dir, 'invalid.json');
    const invalid = { ...sample, generations: [g(1), g(1)] };
    await assert.rejects(saveReplicaMeta(target, invalid), RangeError);
    assert.equal(await loadReplicaMeta(target), null);
  });
});

describe('acceptEpoch', () => {
  it('raises the epoch and asks for it to be persisted', () => {
    const decision = acceptEpoch(sample, 13);
    assert.deepEqual(decision, {
      kind: 'accepted',
      meta: { ...sample, highestEpoch: 13 },
      changed: true,
    });
  });

  it('accepts the same epoch without a change to persist', () => {
    assert.deepEqual(acceptEpoch(sample, 12), { kind: 'accepted', meta: sample, changed: false });
  });

  it('refuses an older epoch and says which one it holds', () => {
    assert.deepEqual(acceptEpoch(sample, 11), { kind: 'refused', highestEpoch: 12 });
    assert.deepEqual(acceptEpoch(sample, 0), { kind: 'refused', highestEpoch: 12 });
  });

  it('throws on an epoch that is not a whole number', () => {
    for (const epoch of [-1, 1.5, Number.NaN, 2 ** 53]) {
      assert.throws(() => acceptEpoch(sample, epoch), RangeError);
    }
  });
});

describe('startGeneration', () => {
  it('puts the new generation first and records the data generation', () => {
    const next = startGeneration(sample, g(4), 50);
    assert.deepEqual(next.generations, [g(4), g(3), g(2), g(1)]);
    assert.equal(next.dataGeneration, 50);
    assert.equal(next.highestEpoch, sample.highestEpoch);
    assert.deepEqual(sample.generations, [g(3), g(2), g(1)], 'the input is unchanged');
  });

  it(`keeps the newest ${generationHistoryMax} generations`, () => {
    let meta = emptyReplicaMeta('web-1');
    for (let n = 1; n <= 100; n++) meta = startGeneration(meta, g(n), n);
    assert.equal(meta.generations.length, generationHistoryMax);
    assert.equal(meta.generations[0], g(100));
    assert.equal(meta.generations[generationHistoryMax - 1], g(100 - generationHistoryMax + 1));
    assert.ok(!meta.generations.includes(g(100 - generationHistoryMax)));
  });

  it('refuses a malformed or repeated id and a data generation that went back', () => {
    assert.throws(() => startGeneration(sample, 'ABCDEF0123456789', 50), /16 lowercase hex/);
    assert.throws(() => startGeneration(sample, g(2), 50), /already in the history/);
    assert.throws(() => startGeneration(sample, g(4), 40), /below the recorded 41/);
  });
});

describe('newGenerationId', () => {
  it('gives 16 hex digits, the same sequence for the same seed', () => {
    const first = Array.from({ length: 5 }, () => newGenerationId(mulberry32(7)));
    assert.equal(new Set(first).size, 1, 'one seed, one first id');
    const random = mulberry32(7);
    const ids = Array.from({ length: 1000 }, () => newGenerationId(random));
    assert.equal(ids[0], first[0]);
    for (const id of ids) assert.match(id, /^[0-9a-f]{16}$/);
    assert.equal(new Set(ids).size, ids.length, 'distinct ids');
  });

  it('covers the whole 64-bit range and refuses a source outside [0, 1)', () => {
    assert.equal(
      newGenerationId(() => 0),
      '0000000000000000',
    );
    assert.equal(
      newGenerationId(() => 1 - 2 ** -53),
      'ffffffffffffffff',
    );
    assert.throws(() => newGenerationId(() => 1), RangeError);
    assert.throws(() => newGenerationId(() => Number.NaN), RangeError);
  });
});

describe('compareHistories', () => {
  const primary = [g(9), g(8), g(7), g(3)];

  it('is the same when the newest generations are equal', () => {
    assert.deepEqual(compareHistories([g(9), g(8)], primary), { kind: 'same' });
  });

  it('is a delta from the replica newest generation when the primary went through it', () => {
    assert.deepEqual(compareHistories([g(7), g(3)], primary), { kind: 'delta', since: g(7) });
    assert.deepEqual(compareHistories([g(3), g(2)], primary), { kind: 'delta', since: g(3) });
  });

  it('is a full resync for a generation the primary never had', () => {
    // g(4) diverged from the primary after g(3): the replica's older g(3) must not count.
    assert.deepEqual(compareHistories([g(4), g(3)], primary), {
      kind: 'full',
      reason: 'unknown-history',
    });
  });

  it('is a full resync for a new replica or a primary without history', () => {
    const full = { kind: 'full', reason: 'empty-history' };
    assert.deepEqual(compareHistories([], primary), full);
    assert.deepEqual(compareHistories([g(9)], []), full);
  });

  it('is a full resync once the replica generation dropped off the primary history', () => {
    let meta = startGeneration(emptyReplicaMeta('web-1'), g(1000), 0);
    const replica = meta.generations;
    for (let n = 1; n < generationHistoryMax; n++) meta = startGeneration(meta, g(n), n);
    assert.deepEqual(compareHistories(replica, meta.generations), {
      kind: 'delta',
      since: g(1000),
    });
    meta = startGeneration(meta, g(generationHistoryMax), generationHistoryMax);
    assert.equal(compareHistories(replica, meta.generations).kind, 'full');
  });
});
