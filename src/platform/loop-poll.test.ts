import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  LoopPoll,
  loopPollBatchMessagesMax,
  loopPollHoldUsMax,
  loopPollWindowUsMax,
} from './loop-poll.js';

/** Lets the loop run `count` check phases (each one runs the poll's step once if it is turning). */
async function turns(count: number): Promise<void> {
  for (let i = 0; i < count; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

describe('LoopPoll', () => {
  it('keeps the loop turning until the window after the last kick has passed', async () => {
    let nowMs = 1000;
    const poll = new LoopPoll({ windowUs: 50, nowMs: () => nowMs });
    assert.equal(poll.active, false);
    poll.kick(1);
    assert.equal(poll.active, true);
    await turns(5);
    assert.equal(poll.active, true, 'the window has not passed');
    const turnsInWindow = poll.turns;
    assert.ok(turnsInWindow >= 4, `${turnsInWindow} turns in 5 check phases`);

    nowMs += 0.03;
    poll.kick(1); // a second reply 30 us later: the window now ends at 1000.08 ms
    nowMs += 0.04;
    await turns(3);
    assert.equal(poll.active, true, 'the second kick extended the window');

    nowMs += 0.011;
    await turns(3);
    assert.equal(poll.active, false, 'the window passed: the loop may sleep again');
    const turnsAtEnd = poll.turns;
    await turns(3);
    assert.equal(poll.turns, turnsAtEnd, 'no step runs once the window has passed');
  });

  it('turns the loop on its own clock and stops by itself', async () => {
    const poll = new LoopPoll({ windowUs: 200 });
    const startMs = performance.now();
    poll.kick(1);
    while (poll.active) await turns(1);
    const elapsedMs = performance.now() - startMs;
    assert.ok(elapsedMs >= 0.2, `the poll ended after ${elapsedMs} ms, before its window`);
  });

  it('does not poll after a batch larger than loopPollBatchMessagesMax', async () => {
    let nowMs = 0;
    const poll = new LoopPoll({ windowUs: 50, nowMs: () => nowMs });
    poll.kick(loopPollBatchMessagesMax + 1);
    assert.equal(poll.active, false, 'a busy peer: its next requests are coming anyway');
    poll.kick(loopPollBatchMessagesMax);
    assert.equal(poll.active, true);
    nowMs = 1;
    await turns(2);
    assert.equal(poll.active, false);
  });

  it('keeps turning past the window while a hold lasts, until it is released', async () => {
    let nowMs = 0;
    const poll = new LoopPoll({ windowUs: 50, nowMs: () => nowMs });
    const held = poll.hold(1);
    assert.equal(held, true);
    assert.equal(poll.active, true);
    nowMs += 0.2; // 200 us: past the window, within the hold
    await turns(3);
    assert.equal(poll.active, true, 'the work handed off has not completed');
    poll.release(held);
    assert.equal(poll.holding, 0);
    await turns(3);
    assert.equal(poll.active, false, 'released, and the window passed long ago');
  });

  it('gives a hold up after loopPollHoldUsMax, and does not hold for a busy peer', async () => {
    let nowMs = 0;
    const poll = new LoopPoll({ windowUs: 50, nowMs: () => nowMs });
    assert.equal(poll.hold(loopPollBatchMessagesMax + 1), false, 'its next requests are coming');
    assert.equal(poll.active, false);
    const held = poll.hold(loopPollBatchMessagesMax);
    nowMs += (loopPollHoldUsMax - 1) / 1000;
    await turns(2);
    assert.equal(poll.active, true);
    nowMs += 2 / 1000;
    await turns(2);
    assert.equal(poll.active, false, 'the work takes longer: the loop may sleep until it ends');
    poll.release(held);
    poll.release(false);
    assert.equal(poll.holding, 0, 'a release of a hold that was refused counts nothing');
  });

  it('does nothing with a window of 0', async () => {
    const poll = new LoopPoll({ windowUs: 0 });
    poll.kick(1);
    assert.equal(poll.hold(1), false);
    assert.equal(poll.active, false);
    await turns(2);
    assert.equal(poll.turns, 0);
  });

  it('refuses a window that is not a whole number of microseconds within the limit', () => {
    for (const windowUs of [-1, 1.5, Number.NaN, loopPollWindowUsMax + 1]) {
      assert.throws(
        () => new LoopPoll({ windowUs }),
        (error: Error) =>
          error instanceof RangeError &&
          error.message.startsWith('loopPollWindowUs: expected a whole number of microseconds') &&
          error.message.endsWith(`got ${windowUs}`),
      );
    }
    assert.equal(new LoopPoll({ windowUs: loopPollWindowUsMax }).windowUs, loopPollWindowUsMax);
  });
});
