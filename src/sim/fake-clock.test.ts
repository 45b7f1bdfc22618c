// FakeClock: timers fire in time order (ties in scheduling order), only when time is advanced,
// including timers that callbacks schedule within the advance.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeClock } from './fake-clock.js';

describe('FakeClock', () => {
  it('starts where told and moves only when advanced', () => {
    const clock = new FakeClock({ startMs: 1000 });
    assert.equal(clock.now(), 1000);
    clock.advance(250);
    assert.equal(clock.now(), 1250);
    clock.advanceTo(2000);
    assert.equal(clock.now(), 2000);
  });

  it('fires due timers in time order, ties in scheduling order, with now() at each due time', () => {
    const clock = new FakeClock();
    const fired: string[] = [];
    clock.setTimeout(() => fired.push(`c@${clock.now()}`), 30);
    clock.setTimeout(() => fired.push(`a@${clock.now()}`), 10);
    clock.setTimeout(() => fired.push(`b1@${clock.now()}`), 20);
    clock.setTimeout(() => fired.push(`b2@${clock.now()}`), 20);
    clock.advance(25);
    assert.deepEqual(fired, ['a@10', 'b1@20', 'b2@20']);
    assert.equal(clock.now(), 25);
    assert.equal(clock.pendingTimers(), 1);
    assert.equal(clock.nextDueAtMs(), 30);
    clock.advance(5);
    assert.deepEqual(fired, ['a@10', 'b1@20', 'b2@20', 'c@30']);
  });

  it('fires timers scheduled by callbacks when they fall due within the same advance', () => {
    const clock = new FakeClock();
    const fired: number[] = [];
    const tick = () => {
      fired.push(clock.now());
      clock.setTimeout(tick, 10);
    };
    clock.setTimeout(tick, 10);
    clock.advance(35);
    assert.deepEqual(fired, [10, 20, 30]);
    assert.equal(clock.nextDueAtMs(), 40);
  });

  it('does not fire cleared timers', () => {
    const clock = new FakeClock();
    let fired = false;
    const handle = clock.setTimeout(() => (fired = true), 5);
    clock.clearTimeout(handle);
    clock.advance(10);
    assert.equal(fired, false);
    assert.equal(clock.pendingTimers(), 0);
  });

  it('rejects moving backwards and advancing from inside a callback', () => {
    const clock = new FakeClock({ startMs: 100 });
    assert.throws(() => clock.advanceTo(50), RangeError);
    assert.throws(() => clock.advance(-1), RangeError);
    clock.setTimeout(() => clock.advance(1), 1);
    assert.throws(() => clock.advance(1), /inside a timer callback/);
  });
});
