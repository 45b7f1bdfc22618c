// Half 2 of the seed sweep (seed-sweep.ts): every seed of it passes every checker, and faults
// were injected (at least three per seed on average).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sweepHalf, sweepSeeds } from './seed-sweep.js';

const range = sweepHalf(2);

describe('simulation seed sweep, half 2', () => {
  it(`seeds ${range.first} to ${range.last} across the fault mix pass every checker`, async () => {
    const { failed, faults } = await sweepSeeds(range);
    assert.deepEqual(failed, []);
    const seeds = range.last - range.first + 1;
    assert.ok(faults > seeds * 3, `faults were injected (${faults})`);
  });
});
