// Tests of the remediation ladder: backoff doubles up to its cap, the window forgets old restarts,
// and the ladder gives up after maxRestarts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { nextStep } from './ladder.js';

const policy = { maxRestarts: 3, windowMs: 60_000, backoffInitialMs: 100, backoffMaxMs: 250 };

describe('remediation ladder', () => {
  it('restarts with doubling backoff capped at backoffMaxMs, then gives up', () => {
    assert.deepEqual(nextStep([], 1000, policy), { action: 'restart', delayMs: 100, attempt: 1 });
    assert.deepEqual(nextStep([900], 1000, policy), {
      action: 'restart',
      delayMs: 200,
      attempt: 2,
    });
    assert.deepEqual(nextStep([800, 900], 1000, policy), {
      action: 'restart',
      delayMs: 250,
      attempt: 3,
    });
    assert.deepEqual(nextStep([700, 800, 900], 1000, policy), { action: 'give-up', restarts: 3 });
  });

  it('forgets restarts older than the window', () => {
    assert.deepEqual(nextStep([0, 1, 2], 60_002, policy), {
      action: 'restart',
      delayMs: 100,
      attempt: 1,
    });
  });

  it('never restarts more than maxRestarts times within one window', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 200_000 }), { maxLength: 20 }),
        fc.integer({ min: 0, max: 10 }),
        (times, max) => {
          const p = { ...policy, maxRestarts: max };
          const now = 200_000;
          const step = nextStep(times, now, p);
          const inWindow = times.filter((t) => now - t < p.windowMs).length;
          assert.equal(step.action === 'restart', inWindow < max);
        },
      ),
    );
  });
});
