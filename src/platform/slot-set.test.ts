import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SlotSet } from './slot-set.js';

describe('SlotSet', () => {
  it('holds what was added and not deleted, and counts it', () => {
    const set = new SlotSet<string>();
    const a = set.add('a');
    const b = set.add('b');
    set.add('c');
    assert.equal(set.size, 3);
    assert.equal(set.delete(b, 'b'), true);
    assert.deepEqual([...set].sort(), ['a', 'c']);
    assert.equal(set.size, 2);
    assert.equal(set.delete(a, 'a'), true);
    assert.deepEqual([...set], ['c']);
    set.clear();
    assert.equal(set.size, 0);
    assert.deepEqual([...set], []);
  });

  it('ignores a second delete, even once the slot holds another item', () => {
    const set = new SlotSet<object>();
    const first = {};
    const slot = set.add(first);
    assert.equal(set.delete(slot, first), true);
    const second = {};
    assert.equal(set.add(second), slot, 'the freed slot is reused');
    assert.equal(set.delete(slot, first), false);
    assert.equal(set.delete(slot + 5, first), false);
    assert.deepEqual([...set], [second]);
    assert.equal(set.size, 1);
  });

  it('keeps each of an item added twice until both are deleted', () => {
    const set = new SlotSet<string>();
    const one = set.add('x');
    const two = set.add('x');
    set.delete(one, 'x');
    assert.deepEqual([...set], ['x']);
    set.delete(two, 'x');
    assert.equal(set.size, 0);
  });

  it('stays as large as the most it held while items come and go', () => {
    const set = new SlotSet<number>();
    const live: [number, number][] = [];
    for (let value = 1; value <= 10_000; value++) {
      live.push([set.add(value), value]);
      if (live.length > 32) {
        const [slot, old] = live.splice(Math.floor((value * 7919) % live.length), 1)[0]!;
        assert.equal(set.delete(slot, old), true);
      }
    }
    assert.equal(set.size, 32);
    assert.deepEqual(
      [...set].sort((x, y) => x - y),
      live.map(([, value]) => value).sort((x, y) => x - y),
    );
    // Every slot handed out is below the peak: freed ones were reused, the array never grew past it.
    assert.ok(Math.max(...live.map(([slot]) => slot)) < 33);
  });

  it('refuses undefined, which marks a free slot', () => {
    assert.throws(() => new SlotSet<undefined>().add(undefined), /undefined cannot be an item/);
  });
});
