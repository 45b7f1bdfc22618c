// Replication limits: defaults, overrides, and a RangeError naming any value out of bounds.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { replicationLimits, replicationLimitsDefault } from './limits.js';

describe('replication limits', () => {
  it('fills in the defaults and keeps what is given', () => {
    assert.deepEqual(replicationLimits(), replicationLimitsDefault);
    assert.equal(replicationLimitsDefault.inFlightMax, 256);
    assert.equal(replicationLimits({ inFlightMax: 8 }).inFlightMax, 8);
    assert.equal(replicationLimits({ inFlightMax: 8 }).resyncChunkBytes, 2 ** 20);
    assert.equal(replicationLimitsDefault.readLeaseMs, 1000);
  });

  it('refuses a value out of bounds, naming it', () => {
    const refusals: [Record<string, unknown>, RegExp][] = [
      [{ inFlightMax: 0 }, /inFlightMax must be a whole number from 1 to 65536, got 0/],
      [{ replicaAckTimeoutMs: 1.5 }, /replicaAckTimeoutMs .* got 1.5/],
      [{ resyncChunkBytes: 2 ** 30 }, /resyncChunkBytes must be .* to 33554432/],
      [{ bitmapRegionBytes: 3000 }, /bitmapRegionBytes must be a power of two, got 3000/],
      [{ acceptEpochTimeoutMs: Number.NaN }, /acceptEpochTimeoutMs .* got NaN/],
      [{ resyncBytesPerSecondMax: '1' }, /resyncBytesPerSecondMax .* got 1/],
      [{ readLeaseMs: 5 }, /readLeaseMs must be a whole number from 10 to 60000, got 5/],
      [{ inflightMax: 3 }, /replication limit inflightMax is unknown/],
    ];
    for (const [partial, pattern] of refusals) {
      assert.throws(
        () => replicationLimits(partial),
        (error) => error instanceof RangeError && pattern.test(error.message),
      );
    }
  });
});
