// RangeLock: overlapping requests run one after another in call order, disjoint ones at once.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RangeLock } from './range-lock.js';

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('RangeLock', () => {
  it('lets disjoint ranges hold at once', async () => {
    const lock = new RangeLock();
    const a = await lock.acquire(0, 4096);
    const b = await lock.acquire(4096, 4096);
    assert.equal(lock.size, 2);
    a();
    b();
    assert.equal(lock.size, 0);
  });

  it('makes an overlapping request wait for the holder, and grants in call order', async () => {
    const lock = new RangeLock();
    const order: string[] = [];
    const first = await lock.acquire(0, 8192);
    const second = lock.acquire(4096, 8192).then((release) => {
      order.push('second');
      return release;
    });
    // Overlaps only the second, which came first: it must wait for it, not overtake it.
    const third = lock.acquire(10_000, 100).then((release) => {
      order.push('third');
      return release;
    });
    const disjoint = lock.acquire(1 << 20, 1).then((release) => {
      order.push('disjoint');
      return release;
    });
    await settle();
    assert.deepEqual(order, ['disjoint']);
    first();
    (await second)();
    (await third)();
    (await disjoint)();
    assert.deepEqual(order, ['disjoint', 'second', 'third']);
    assert.equal(lock.size, 0);
  });

  it('orders an empty range against a request covering its offset, and release is idempotent', async () => {
    const lock = new RangeLock();
    const held = await lock.acquire(100, 10);
    let granted = false;
    const empty = lock.acquire(105, 0).then((release) => {
      granted = true;
      return release;
    });
    await settle();
    assert.equal(granted, false);
    held();
    held();
    (await empty)();
    assert.equal(granted, true);
  });

  it('refuses a negative or fractional range', () => {
    const lock = new RangeLock();
    assert.throws(() => lock.acquire(-1, 1), /offset must be a whole number/);
    assert.throws(() => lock.acquire(0, 1.5), /length must be a whole number/);
  });
});
