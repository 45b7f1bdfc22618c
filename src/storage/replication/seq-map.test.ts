import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mulberry32 } from '../../sim/rng.js';
import { SeqMap, seqMapCapacityMin } from './seq-map.js';

describe('SeqMap', () => {
  it('gets, replaces and deletes by sequence number', () => {
    const map = new SeqMap<string>();
    map.set(5n, 'five');
    map.set(6n, 'six');
    map.set(5n, 'FIVE');
    assert.equal(map.size, 2);
    assert.equal(map.get(5n), 'FIVE');
    assert.equal(map.has(7n), false);
    assert.equal(map.delete(5n), true);
    assert.equal(map.delete(5n), false);
    assert.equal(map.get(5n), undefined);
    assert.equal(map.size, 1);
  });

  it('keeps two numbers a capacity apart by growing, and lists in sequence order', () => {
    const map = new SeqMap<number>();
    const apart = BigInt(seqMapCapacityMin);
    map.set(3n + apart, 2);
    map.set(3n, 1);
    assert.equal(map.capacity, seqMapCapacityMin * 2);
    assert.equal(map.get(3n), 1);
    assert.equal(map.get(3n + apart), 2);
    map.set(3n + 4n * apart, 3);
    assert.ok(map.capacity > 4 * seqMapCapacityMin);
    assert.deepEqual(map.values(), [1, 2, 3]);
    assert.equal(map.first(), 1);
    map.clear();
    assert.equal(map.size, 0);
    assert.equal(map.capacity, seqMapCapacityMin);
    assert.equal(map.first(), undefined);
    assert.deepEqual(map.values(), []);
  });

  it('does not grow while what it holds at once spans less than its room', () => {
    const map = new SeqMap<bigint>();
    for (let seq = 1n; seq <= 100_000n; seq++) {
      map.set(seq, seq);
      if (seq > 32n) assert.equal(map.delete(seq - 32n), true);
    }
    assert.equal(map.capacity, seqMapCapacityMin);
    assert.equal(map.size, 32);
    assert.equal(map.first(), 100_000n - 31n);
  });

  it('answers as a Map does under random sets and deletes, acked out of order', () => {
    const random = mulberry32(7);
    const map = new SeqMap<number>();
    const model = new Map<bigint, number>();
    let next = 1n;
    for (let step = 0; step < 20_000; step++) {
      if (random() < 0.55 || model.size === 0) {
        map.set(next, step);
        model.set(next, step);
        next++;
      } else {
        // Mostly recent ones, sometimes one left behind long ago.
        const keys = [...model.keys()];
        const seq = keys[Math.floor(random() * keys.length)]!;
        assert.equal(map.delete(seq), model.delete(seq));
      }
      assert.equal(map.size, model.size);
    }
    const sorted = [...model.entries()].sort(([a], [b]) => (a < b ? -1 : 1));
    assert.deepEqual(
      map.values(),
      sorted.map(([, value]) => value),
    );
    for (const [seq, value] of sorted) assert.equal(map.get(seq), value);
    assert.equal(map.first(), sorted[0]?.[1]);
  });

  it('refuses what it cannot hold, saying what', () => {
    const map = new SeqMap<number>();
    assert.throws(() => map.set(-1n, 1), /sequence number out of range: -1/);
    assert.throws(() => map.set(2n ** 53n, 1), /out of range/);
    assert.throws(() => new SeqMap<undefined>().set(1n, undefined), /undefined cannot be a value/);
  });
});
