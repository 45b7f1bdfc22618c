import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StopLatch } from './stop-latch.js';

describe('StopLatch', () => {
  it('passes on what the guarded promise settles with, and keeps nothing after', async () => {
    const latch = new StopLatch();
    assert.equal(await latch.guard(Promise.resolve(7)), 7);
    await assert.rejects(latch.guard(Promise.reject(new Error('disk'))), /disk/);
    const many = Array.from({ length: 10_000 }, (_, index) => latch.guard(Promise.resolve(index)));
    assert.equal(latch.pendingCount, 10_000);
    assert.equal((await Promise.all(many)).length, 10_000);
    // What Promise.race against one long-lived promise would have kept: a reaction per call.
    assert.equal(latch.pendingCount, 0);
  });

  it('rejects waits still pending with the stop error, once', async () => {
    const latch = new StopLatch();
    const never = new Promise<void>(() => undefined);
    const first = latch.guard(never);
    const second = latch.guard(never);
    const stop = new Error('fenced at epoch 3');
    latch.stop(stop);
    latch.stop(new Error('closed'));
    assert.equal(latch.error, stop);
    await assert.rejects(first, (error) => error === stop);
    await assert.rejects(second, (error) => error === stop);
    assert.equal(latch.pendingCount, 0);
  });

  it('after a stop, rejects a wait that is pending and lets a settled one win, as a race would', async () => {
    const latch = new StopLatch();
    const stop = new Error('closed');
    latch.stop(stop);
    await assert.rejects(
      latch.guard(new Promise<void>(() => undefined)),
      (error) => error === stop,
    );
    assert.equal(await latch.guard(Promise.resolve('kept')), 'kept');
    assert.equal(latch.pendingCount, 0);
  });

  it('lets a wait that settles after the stop change nothing', async () => {
    const latch = new StopLatch();
    let resolve!: (value: number) => void;
    const guarded = latch.guard(new Promise<number>((done) => (resolve = done)));
    const stop = new Error('fenced');
    latch.stop(stop);
    resolve(1);
    await assert.rejects(guarded, (error) => error === stop);
  });
});
