// The verdict's arithmetic: nearest-rank quantiles, the latency and error-rate thresholds over a
// sliding window (with their minimum number of checks), and consecutive failures.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { probeSpecSchema } from '../../core/probe-spec.js';
import { ProbeWindow, probeWindowSamplesMax, quantileOf } from './probe-window.js';

const httpProbe = (extra: Record<string, unknown>) =>
  probeSpecSchema.parse({ type: 'http', endpoint: 'http', failureThreshold: 3, ...extra });

describe('probe window', () => {
  it('takes the nearest-rank quantile, which always is one of the values', () => {
    assert.equal(quantileOf([10, 20, 30, 40], 0.5), 20);
    assert.equal(quantileOf([10, 20, 30, 40], 0.95), 40);
    assert.equal(quantileOf([], 0.95), 0);
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 10_000 }), { minLength: 1 }),
        fc.double({ min: 0.5, max: 1, noNaN: true }),
        (values, q) => {
          const sorted = [...values].sort((a, b) => a - b);
          const value = quantileOf(sorted, q);
          assert.ok(sorted.includes(value));
          // At least a fraction q of the values are at or below it.
          assert.ok(sorted.filter((v) => v <= value).length >= q * sorted.length);
        },
      ),
    );
  });

  it('fails on latency only with enough checks in the window', () => {
    const window = new ProbeWindow(
      httpProbe({ latency: { thresholdMs: 100, windowMs: 10_000, samplesMin: 3 } }),
    );
    window.add({ at: 0, ok: true, durationMs: 500 });
    window.add({ at: 1000, ok: true, durationMs: 500 });
    assert.deepEqual(window.verdict(1000), { failing: false });
    window.add({ at: 2000, ok: true, durationMs: 500 });
    const verdict = window.verdict(2000);
    assert.equal(verdict.failing, true);
    assert.match(
      verdict.failing ? verdict.reason : '',
      /p95 response time 500 ms over the last 3 checks \(10 s\), above 100 ms/,
    );
    // Once those checks are older than the window, they say nothing.
    assert.deepEqual(window.verdict(13_000), { failing: false });
  });

  it('fails on the error rate over the window', () => {
    const window = new ProbeWindow(
      httpProbe({ errorRate: { max: 0.25, windowMs: 10_000, samplesMin: 4 } }),
    );
    const outcomes = [true, false, true, true, false, true];
    outcomes.forEach((ok, i) => window.add({ at: i * 1000, ok, durationMs: 1 }));
    const verdict = window.verdict(5000);
    assert.equal(verdict.failing, true);
    assert.match(verdict.failing ? verdict.reason : '', /2 of the last 6 checks failed/);
    window.clear();
    assert.deepEqual(window.verdict(5000), { failing: false });
  });

  it('fails after failureThreshold checks in a row, and a pass resets the count', () => {
    const window = new ProbeWindow(httpProbe({}));
    window.add({ at: 0, ok: false, durationMs: 1 });
    window.add({ at: 1, ok: false, durationMs: 1 });
    window.add({ at: 2, ok: true, durationMs: 1 });
    window.add({ at: 3, ok: false, durationMs: 1 });
    assert.equal(window.verdict(3).failing, false);
    window.add({ at: 4, ok: false, durationMs: 1 });
    window.add({ at: 5, ok: false, durationMs: 1 });
    assert.equal(window.verdict(5).failing, true);
    assert.equal(window.consecutiveFailures, 3);
  });

  it(`keeps at most ${probeWindowSamplesMax} checks`, () => {
    const window = new ProbeWindow(
      httpProbe({ errorRate: { max: 0.5, windowMs: 3_600_000, samplesMin: 1 } }),
    );
    // The oldest checks (failures) fall out; the newest thousand all passed.
    for (let i = 0; i < 500; i++) window.add({ at: i, ok: false, durationMs: 1 });
    for (let i = 0; i < probeWindowSamplesMax; i++)
      window.add({ at: 500 + i, ok: true, durationMs: 1 });
    assert.deepEqual(window.verdict(2000), { failing: false });
  });
});
