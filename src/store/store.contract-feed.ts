// The StateStore contract, part two: the change feed (watch, replay, cancel) and the journal
// (filters, paging, trimming).
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { FakeClock } from '../sim/fake-clock.js';
import type { StateStore } from './port.js';
import {
  event,
  hasCode,
  revisionsFrom,
  revisionsOf,
  watchAll,
  type ContractContext,
} from './store.contract-helpers.js';

export function runFeedContract({ fresh, settle }: ContractContext): void {
  it('watch delivers batches asynchronously, in order, filtered to the prefix, with events', async () => {
    const store = await fresh();
    const at = await revisionsFrom(store);
    const { batches } = watchAll(store, 'nodes/');
    const first = store.txn({
      puts: [
        { key: 'nodes/a', value: 1 },
        { key: 'workloads/w', value: 1 },
      ],
    });
    assert.equal(batches.length, 0, 'delivery is asynchronous');
    await first;
    await store.txn({ puts: [{ key: 'workloads/v', value: 2 }] });
    await store.appendEvents([event('joined', 'a')]);
    await store.txn({ deletes: ['nodes/a'] });
    await settle(store);
    assert.deepEqual(revisionsOf(batches), [1, 3, 4].map(at));
    assert.deepEqual(batches[0]!.changes, [
      {
        type: 'put',
        entry: { key: 'nodes/a', value: 1, modRevision: at(1), createRevision: at(1), version: 1 },
      },
    ]);
    assert.deepEqual(batches[1]!.changes, []);
    assert.deepEqual(
      batches[1]!.events.map((journalEvent) => journalEvent.kind),
      ['joined'],
    );
    assert.deepEqual(batches[2]!.changes, [{ type: 'delete', key: 'nodes/a', revision: at(4) }]);
  });

  it('watch fromRevision replays later revisions first, then continues live', async () => {
    const store = await fresh();
    const at = await revisionsFrom(store);
    for (const value of [1, 2, 3]) await store.txn({ puts: [{ key: 'k', value }] });
    const { batches } = watchAll(store, '', at(1));
    await store.txn({ puts: [{ key: 'k', value: 4 }] });
    await settle(store);
    assert.deepEqual(revisionsOf(batches), [2, 3, 4].map(at));
    const current = watchAll(store, '', at(4));
    await settle(store);
    assert.equal(current.batches.length, 0);
  });

  it('watch fromRevision older than the kept history fails as compacted', async () => {
    const store = await fresh(new FakeClock(), { historyRevisionsMax: 2 });
    const at = await revisionsFrom(store);
    for (const value of [1, 2, 3, 4]) await store.txn({ puts: [{ key: 'k', value }] });
    assert.throws(
      () => store.watch('', { fromRevision: at(1) }, () => {}),
      hasCode('CONTINUUM_ERR_CONFLICT'),
    );
    const { batches } = watchAll(store, '', at(2));
    await settle(store);
    assert.deepEqual(revisionsOf(batches), [3, 4].map(at));
  });

  it('cancel stops delivery, including batches already queued', async () => {
    const store = await fresh();
    const { batches, handle } = watchAll(store, '');
    // The batch is queued for delivery when txn() commits, and cancel comes before it runs.
    const committed = store.txn({ puts: [{ key: 'k', value: 1 }] });
    handle.cancel();
    await committed;
    await store.txn({ puts: [{ key: 'k', value: 2 }] });
    await settle(store);
    assert.deepEqual(batches, []);
  });

  it('readEvents filters by kind, subject and time, and pages by afterSeq and limit', async () => {
    const store = await fresh();
    await store.appendEvents([event('up', 'a', 10), event('down', 'b', 20)]);
    await store.appendEvents([
      { ...event('up', 'w', 30), subject: { kind: 'workload', name: 'w' } },
      event('down', 'a', 40),
      event('up', 'a', 50),
    ]);
    const seqs = async (query: Parameters<StateStore['readEvents']>[0]) =>
      (await store.readEvents(query)).map((journalEvent) => journalEvent.seq);
    assert.deepEqual(await seqs({}), [1, 2, 3, 4, 5]);
    assert.deepEqual(await seqs({ kinds: ['down'] }), [2, 4]);
    assert.deepEqual(await seqs({ subject: { kind: 'node', name: 'a' } }), [1, 4, 5]);
    assert.deepEqual(await seqs({ subject: { kind: 'workload' } }), [3]);
    assert.deepEqual(await seqs({ sinceAt: 30 }), [3, 4, 5]);
    assert.deepEqual(await seqs({ limit: 2 }), [1, 2]);
    assert.deepEqual(await seqs({ afterSeq: 2, limit: 2 }), [3, 4]);
    assert.deepEqual(await seqs({ afterSeq: 4, kinds: ['up'] }), [5]);
    assert.deepEqual((await store.readEvents({ afterSeq: 4 }))[0], {
      ...event('up', 'a', 50),
      seq: 5,
    });
    await assert.rejects(store.readEvents({ limit: 0 }), RangeError);
  });

  it('keeps only the newest journalEventsMax events, and seq keeps counting', async () => {
    const store = await fresh(new FakeClock(), { journalEventsMax: 5 });
    await store.appendEvents([event('e', '1'), event('e', '2'), event('e', '3')]);
    await store.appendEvents([event('e', '4'), event('e', '5'), event('e', '6')]);
    await store.txn({ events: [event('e', '7'), event('e', '8')] });
    const seqs = (await store.readEvents({})).map((journalEvent) => journalEvent.seq);
    assert.deepEqual(seqs, [4, 5, 6, 7, 8]);
    assert.equal((await store.appendEvents([event('e', '9')]))[0]!.seq, 9);
    assert.equal((await store.readEvents({})).length, 5);
  });
}
