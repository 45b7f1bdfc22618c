// Shared pieces of the StateStore contract suite: how a backend is opened and what the suite
// knows of it, sample events, revisions relative to a test's start, and waiting for change-feed
// deliveries without sleeping.
import assert from 'node:assert/strict';
import { isContinuumError, type ErrorCode } from '../core/errors.js';
import type { NewEvent } from '../core/model.js';
import type { FakeClock } from '../sim/fake-clock.js';
import type { StateStore, WatchBatch } from './port.js';

/** Limits a test may lower to reach them quickly; a backend passes them to its constructor. */
export interface StoreContractOptions {
  journalEventsMax?: number;
  historyRevisionsMax?: number;
}

export type OpenStore = (
  clock: FakeClock,
  options?: StoreContractOptions,
) => Promise<StateStore> | StateStore;

/** Opens a store the suite closes after the test; the clock defaults to a fresh FakeClock. */
export type FreshStore = (clock?: FakeClock, options?: StoreContractOptions) => Promise<StateStore>;

/** What the suite must know about a backend to hold it to the same rules. */
export interface StoreContractTraits {
  /** Skip the whole suite, with this reason (a backend whose server is not installed). */
  skip?: string;
  /**
   * false when the store's revisions continue a counter it shares (etcd's cluster revision): a
   * fresh store then need not be at revision 0. Every rule is asserted relative to the revision
   * the test started at either way, so for a backend starting at 0 nothing is weaker.
   */
  revisionStartsAtZero?: boolean;
  /**
   * Set when leases run on the backend's own real time (etcd) instead of the FakeClock: the
   * lease tests then run real-time variants that still assert expiry, keepAlive and revoke.
   */
  realTimeLeases?: {
    /** The shortest TTL the backend grants (etcd: 2000); tests use it to stay short. */
    ttlMsMin: number;
    /** How long after its TTL an expired lease may take to disappear. */
    expiryGraceMs: number;
  };
  /**
   * Resolves once the change feed has delivered everything committed so far. The default, one
   * turn of the event loop, suits the in-process feeds; a remote feed needs its own.
   */
  settle?: (store: StateStore) => Promise<void>;
}

/** What each part of the suite is given. */
export interface ContractContext {
  fresh: FreshStore;
  settle: (store: StateStore) => Promise<void>;
  traits: StoreContractTraits;
}

/**
 * Revision numbers relative to the store's revision when a test begins: at(1) is the revision of
 * the first txn the test commits, at(0) the starting one (0 for the local backends).
 */
export async function revisionsFrom(store: StateStore): Promise<(offset: number) => number> {
  const { revision } = await store.range('');
  return (offset) => revision + offset;
}

/** Polls check until it holds or timeoutMs passes; for changes that come on real time. */
export async function waitUntil(
  what: string,
  timeoutMs: number,
  check: () => Promise<boolean> | boolean,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

export function event(kind: string, name: string, at = 0): NewEvent {
  return { at, kind, subject: { kind: 'node', name }, message: `${kind} ${name}` };
}

/**
 * Lets queued microtasks (the in-process change feed's deliveries) run; not a sleep, nothing
 * waits on time. The default settle of the suite.
 */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export async function rejectsWithCode(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(promise, (error) => isContinuumError(error) && error.code === code);
}

export function hasCode(code: ErrorCode): (error: unknown) => boolean {
  return (error) => isContinuumError(error) && error.code === code;
}

/** Watches prefix and collects every delivered batch. */
export function watchAll(store: StateStore, prefix: string, fromRevision?: number) {
  const batches: WatchBatch[] = [];
  const options = fromRevision === undefined ? {} : { fromRevision };
  const handle = store.watch(prefix, options, (batch) => batches.push(batch));
  return { batches, handle };
}

export function revisionsOf(batches: WatchBatch[]): number[] {
  return batches.map((batch) => batch.revision);
}
