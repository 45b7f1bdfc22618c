// Small rules every local backend (memory, sqlite) applies the same way: limits and their
// validation, key order, journal query matching, and the errors of a closed or compacted store.
import { ContinuumError } from '../core/errors.js';
import type { JournalEvent } from '../core/model.js';
import { eventsPageMax, type EventQuery } from './port.js';

export const journalEventsMaxDefault = 100_000;
/** How many past revisions are kept for watch({ fromRevision }). */
export const historyRevisionsMaxDefault = 10_000;
export const eventsPageDefault = 1000;
/** Longest lease TTL: longer leases would outlive any failure they are meant to detect. */
export const leaseTtlMsMax = 3_600_000;

/** Validates a count limit as it enters (CONVENTIONS.md item 9). */
export function positiveIntegerOption(name: string, value: number | undefined, fallback: number) {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`${name} must be a positive integer, got ${value}`);
  }
  return value;
}

export function validateLeaseTtl(ttlMs: number): void {
  if (!Number.isInteger(ttlMs) || ttlMs <= 0 || ttlMs > leaseTtlMsMax) {
    throw new RangeError(`lease ttlMs must be an integer in (0, ${leaseTtlMsMax}], got ${ttlMs}`);
  }
}

export function validateFromRevision(fromRevision: number | undefined): void {
  if (fromRevision === undefined) return;
  if (!Number.isInteger(fromRevision) || fromRevision < 0) {
    throw new RangeError(`fromRevision must be a non-negative integer, got ${fromRevision}`);
  }
}

/** The page size of a readEvents call: the default, capped at eventsPageMax. */
export function eventsPageLimit(limit: number | undefined): number {
  if (limit === undefined) return eventsPageDefault;
  if (!Number.isInteger(limit) || limit < 1) {
    throw new RangeError(`readEvents limit must be a positive integer, got ${limit}`);
  }
  return Math.min(limit, eventsPageMax);
}

/** Whether an event passes the filters of a query (afterSeq and limit are paging, not filters). */
export function eventMatches(event: JournalEvent, query: EventQuery): boolean {
  if (query.kinds !== undefined && !query.kinds.includes(event.kind)) return false;
  if (query.subject?.kind !== undefined && event.subject.kind !== query.subject.kind) return false;
  if (query.subject?.name !== undefined && event.subject.name !== query.subject.name) return false;
  if (query.sinceAt !== undefined && event.at < query.sinceAt) return false;
  return true;
}

/**
 * Orders keys by Unicode code point, which is the byte order of their UTF-8 form: the order of
 * SQLite's BINARY collation and of etcd, so every backend ranges keys alike. Plain `<` on JS
 * strings compares UTF-16 units and would put astral characters before U+E000..U+FFFF.
 */
export function compareKeys(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let index = 0; index < length; index += 1) {
    const unitA = a.charCodeAt(index);
    const unitB = b.charCodeAt(index);
    if (unitA !== unitB) return codePointRank(unitA) - codePointRank(unitB);
  }
  return a.length - b.length;
}

function codePointRank(unit: number): number {
  if (unit >= 0xd800 && unit <= 0xdfff) return unit + 0x2000; // surrogates rank above the BMP
  if (unit >= 0xe000) return unit - 0x800;
  return unit;
}

export function storeClosedError(backend: string): ContinuumError {
  return new ContinuumError('CONTINUUM_ERR_STORE_CLOSED', `the ${backend} store is closed`);
}

export function compactedError(fromRevision: number, compactedRevision: number): ContinuumError {
  return new ContinuumError(
    'CONTINUUM_ERR_CONFLICT',
    `watch fromRevision ${fromRevision}: compacted (history starts after revision ${compactedRevision})`,
    { details: { fromRevision, compactedRevision } },
  );
}

export function leaseNotFoundError(id: string): ContinuumError {
  return new ContinuumError(
    'CONTINUUM_ERR_NOT_FOUND',
    `lease ${JSON.stringify(id)} does not exist or has expired`,
  );
}
