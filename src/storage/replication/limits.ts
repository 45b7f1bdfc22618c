// The named limits of synchronous replication (CONVENTIONS.md item 9): their defaults, and the
// check every set of limits passes when it enters a primary or a replica, so a bad value fails at
// once with a RangeError that names it instead of misbehaving under load.
import { requestBytesMax } from '../engine/limits.js';
import { regionSizeBytesMax, regionSizeBytesMin } from './dirty-bitmap.js';
import type { ReplicationLimits } from './types.js';

const mib = 2 ** 20;

export const replicationLimitsDefault: ReplicationLimits = Object.freeze({
  inFlightMax: 256,
  replicaAckTimeoutMs: 2000,
  resyncBytesPerSecondMax: 64 * mib,
  resyncChunkBytes: mib,
  bitmapRegionBytes: 64 * 1024,
  acceptEpochTimeoutMs: 2000,
  readLeaseMs: 1000,
});

/** Bounds of each limit, inclusive: beyond them a value is a mistake, not a tuning. */
const bounds: Record<keyof ReplicationLimits, readonly [number, number]> = {
  inFlightMax: [1, 65_536],
  replicaAckTimeoutMs: [1, 3_600_000],
  resyncBytesPerSecondMax: [4096, 2 ** 40],
  // A resync step is one REPL_WRITE at most, so it must fit the NBD request limit.
  resyncChunkBytes: [512, requestBytesMax],
  bitmapRegionBytes: [regionSizeBytesMin, regionSizeBytesMax],
  acceptEpochTimeoutMs: [1, 3_600_000],
  readLeaseMs: [10, 60_000],
};

/** The defaults with `partial` applied, each value checked; throws RangeError naming the value. */
export function replicationLimits(partial: Partial<ReplicationLimits> = {}): ReplicationLimits {
  const limits: Record<string, number> = { ...replicationLimitsDefault };
  for (const [name, value] of Object.entries(partial)) {
    if (!(name in bounds)) throw new RangeError(`replication limit ${name} is unknown`);
    if (value === undefined) continue;
    limits[name] = value;
  }
  for (const name of Object.keys(bounds) as (keyof ReplicationLimits)[]) {
    const value = limits[name];
    const [low, high] = bounds[name];
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < low || value > high) {
      throw new RangeError(
        `replication limit ${name} must be a whole number from ${low} to ${high}, got ${String(value)}`,
      );
    }
  }
  const region = limits.bitmapRegionBytes!;
  if ((region & (region - 1)) !== 0) {
    throw new RangeError(
      `replication limit bitmapRegionBytes must be a power of two, got ${region}`,
    );
  }
  return Object.freeze(limits as unknown as ReplicationLimits);
}
