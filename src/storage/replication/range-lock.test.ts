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

  it('tryAcquire holds a free range at once, and refuses without queueing behind a busy one', async () => {
    const lock = new RangeLock();
    const first = lock.tryAcquire(0, 10);
    assert.ok(first !== undefined);
    assert.equal(lock.tryAcquire(5, 10), undefined);
    assert.equal(lock.size, 1); // The refused request took no place.
    // A request waiting for the holder also makes the range busy for tryAcquire.
    const waiting = lock.acquire(8, 4);
    assert.equal(lock.tryAcquire(11, 1), undefined);
    const disjoint = lock.tryAcquire(20, 5);
    assert.ok(disjoint !== undefined);
    first();
    (await waiting)();
    disjoint();
    assert.equal(lock.size, 0);
    assert.ok(lock.tryAcquire(5, 10) !== undefined);
    assert.throws(() => lock.tryAcquire(-1, 1), /offset must be a whole number/);
  });

  it('refuses a negative or fractional range', () => {
    const lock = new RangeLock();
    assert.throws(() => lock.acquire(-1, 1), /offset must be a whole number/);
    assert.throws(() => lock.acquire(0, 1.5), /length must be a whole number/);
  });
});
