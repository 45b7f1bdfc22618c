import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BlockSet } from './block-set.js';

describe('BlockSet', () => {
  it('holds each block once, in the order first added', () => {
    const set = new BlockSet();
    for (const block of [7, 3, 7, 0, 8, 3]) set.add(block);
    assert.equal(set.size, 4);
    assert.deepEqual([...set], [7, 3, 0, 8]);
    assert.equal(set.has(7), true);
    assert.equal(set.has(6), false, 'a neighbour in the same byte');
    assert.equal(set.has(9), false);
  });

  it('takes blocks far past its first bitmap, up to the last 32-bit block', () => {
    const set = new BlockSet();
    const high = [2 ** 32 - 1, 2 ** 20 + 5, 32_768, 32_767];
    for (const block of high) set.add(block);
    assert.deepEqual([...set], high);
    for (const block of high) assert.equal(set.has(block), true, `block ${block}`);
    assert.equal(set.has(2 ** 32 - 2), false);
    assert.equal(set.has(2 ** 20 + 4), false);
  });

  it('is empty after clear, both when few and when most blocks were members', () => {
    for (const count of [3, 40_000]) {
      const set = new BlockSet();
      for (let block = 0; block < count; block++) set.add(block * 2);
      set.clear();
      assert.equal(set.size, 0, `${count} members`);
      assert.deepEqual([...set], []);
      for (let block = 0; block < count * 2; block++) {
        if (set.has(block)) assert.fail(`block ${block} still a member after clear (${count})`);
      }
      set.add(4);
      assert.deepEqual([...set], [4], 'usable again after clear');
    }
  });

  it('answers as a Set of numbers does, over random adds and clears', () => {
    let seed = 12_345;
    const random = (below: number) => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed % below;
    };
    const set = new BlockSet();
    const model = new Set<number>();
    for (let step = 0; step < 20_000; step++) {
      const roll = random(1000);
      if (roll === 0) {
        set.clear();
        model.clear();
        continue;
      }
      const block = roll < 900 ? random(5000) : random(2 ** 31);
      assert.equal(set.has(block), model.has(block), `has(${block}) at step ${step}`);
      set.add(block);
      model.add(block);
      assert.equal(set.size, model.size, `size at step ${step}`);
    }
    assert.deepEqual([...set], [...model], 'same members in the same order');
  });
});
