// Shared pieces of the StateStore contract suite: how a backend is opened, sample events, and
// waiting for change-feed deliveries without sleeping.
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

export function event(kind: string, name: string, at = 0): NewEvent {
  return { at, kind, subject: { kind: 'node', name }, message: `${kind} ${name}` };
}

/** Lets queued microtasks (change-feed deliveries) run; not a sleep, nothing waits on time. */
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
