// The one contract every StateStore backend passes (CONVENTIONS.md item 7): memory, sqlite and
// etcd each call runStoreContract with a function that opens a fresh, empty store, and the traits
// that tell the suite how the backend keeps time and revisions. This file holds the key-value and
// transaction rules and runs the other parts. Revisions are asserted relative to the revision a
// test starts at (revisionsFrom), which is 0 for the local backends.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { FakeClock } from '../sim/fake-clock.js';
import type { StateStore } from './port.js';
import { runFeedContract } from './store.contract-feed.js';
import {
  event,
  hasCode,
  rejectsWithCode,
  revisionsFrom,
  settle,
  watchAll,
  type ContractContext,
  type FreshStore,
  type OpenStore,
  type StoreContractOptions,
  type StoreContractTraits,
} from './store.contract-helpers.js';
import { runLeaseContract } from './store.contract-leases.js';
import { runStoreModelProperty } from './store.contract-model.js';

export type { OpenStore, StoreContractOptions, StoreContractTraits };
export { event, settle };

export function runStoreContract(
  name: string,
  open: OpenStore,
  traits: StoreContractTraits = {},
): void {
  const skip = traits.skip ?? false;
  describe(`StateStore contract: ${name}`, { skip }, () => {
    const opened: StateStore[] = [];
    const fresh: FreshStore = async (clock = new FakeClock(), options?: StoreContractOptions) => {
      const store = await open(clock, options);
      opened.push(store);
      return store;
    };
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((store) => store.close()));
    });
    const context: ContractContext = { fresh, settle: traits.settle ?? settle, traits };
    runKeyValueContract(context);
    runTxnContract(context);
    runFeedContract(context);
    runLeaseContract(context);
    runCloseContract(context);
    runStoreModelProperty(fresh);
  });
}

function runKeyValueContract({ fresh, traits }: ContractContext): void {
  it('an empty store has no keys, revision 0 (or its shared counter) and no events', async () => {
    const store = await fresh();
    assert.equal(await store.get('nodes/a'), undefined);
    const { entries, revision } = await store.range('');
    assert.deepEqual(entries, []);
    if (traits.revisionStartsAtZero === false) {
      assert.ok(Number.isSafeInteger(revision) && revision >= 0, `revision ${revision}`);
    } else {
      assert.equal(revision, 0);
    }
    assert.deepEqual(await store.readEvents({}), []);
  });

  it('put then get returns the value with modRevision, createRevision and version', async () => {
    const store = await fresh();
    const at = await revisionsFrom(store);
    const first = await store.txn({ puts: [{ key: 'nodes/a', value: { cpu: 4 } }] });
    assert.deepEqual(first, { ok: true, revision: at(1), events: [] });
    await store.txn({ puts: [{ key: 'nodes/b', value: 'other' }] });
    await store.txn({ puts: [{ key: 'nodes/a', value: { cpu: 8 } }] });
    assert.deepEqual(await store.get('nodes/a'), {
      key: 'nodes/a',
      value: { cpu: 8 },
      modRevision: at(3),
      createRevision: at(1),
      version: 2,
    });
  });

  it('copies values in, and what it hands out cannot change what is stored', async () => {
    const store = await fresh();
    const value = { labels: { zone: 'a' } };
    await store.txn({ puts: [{ key: 'k', value }] });
    value.labels.zone = 'changed';
    const read = await store.get<typeof value>('k');
    // A backend either copies on read (sqlite) or hands out deeply frozen values (memory).
    try {
      read!.value.labels.zone = 'changed too';
    } catch (error) {
      assert.ok(error instanceof TypeError, 'only a frozen value may refuse the change');
    }
    assert.deepEqual((await store.get('k'))!.value, { labels: { zone: 'a' } });
  });

  it('range returns every key under the prefix in key order, with the revision', async () => {
    const store = await fresh();
    const at = await revisionsFrom(store);
    for (const key of ['nodes/b', 'nodesx', 'nodes/a/x', 'workloads/a', 'nodes/a']) {
      await store.txn({ puts: [{ key, value: key }] });
    }
    const { entries, revision } = await store.range('nodes/');
    assert.deepEqual(
      entries.map((entry) => entry.key),
      ['nodes/a', 'nodes/a/x', 'nodes/b'],
    );
    assert.equal(revision, at(5));
    assert.equal((await store.range('')).entries.length, 5);
  });
}

function runTxnContract({ fresh, settle: settleFeed }: ContractContext): void {
  it('conditional writes hold on modRevision; 0 means the key must not exist', async () => {
    const store = await fresh();
    const at = await revisionsFrom(store);
    const create = { compares: [{ key: 'k', modRevision: 0 }], puts: [{ key: 'k', value: 1 }] };
    assert.equal((await store.txn(create)).ok, true);
    assert.deepEqual(await store.txn(create), { ok: false, revision: at(1), events: [] });
    const stale = await store.txn({
      compares: [{ key: 'k', modRevision: at(7) }],
      puts: [{ key: 'k', value: 2 }],
    });
    assert.equal(stale.ok, false);
    const fresh1 = await store.txn({
      compares: [{ key: 'k', modRevision: at(1) }],
      puts: [{ key: 'k', value: 3 }],
    });
    assert.deepEqual(fresh1, { ok: true, revision: at(2), events: [] });
    assert.equal((await store.get('k'))!.value, 3);
  });

  it('a failed txn changes nothing and appends no events', async () => {
    const store = await fresh();
    const at = await revisionsFrom(store);
    await store.txn({ puts: [{ key: 'a', value: 1 }], events: [event('created', 'a')] });
    const before = { kv: await store.range(''), journal: await store.readEvents({}) };
    const result = await store.txn({
      compares: [
        { key: 'a', modRevision: at(1) },
        { key: 'b', modRevision: at(1) },
      ],
      puts: [{ key: 'c', value: 3 }],
      deletes: ['a'],
      events: [event('never', 'c')],
    });
    assert.deepEqual(result, { ok: false, revision: at(1), events: [] });
    assert.deepEqual({ kv: await store.range(''), journal: await store.readEvents({}) }, before);
  });

  it('commits puts, deletes and events of one txn atomically at one revision', async () => {
    const store = await fresh();
    const at = await revisionsFrom(store);
    await store.txn({ puts: [{ key: 'old', value: 0 }] });
    const { batches } = watchAll(store, '');
    const result = await store.txn({
      puts: [
        { key: 'x', value: 1 },
        { key: 'y', value: 2 },
      ],
      deletes: ['old'],
      events: [event('moved', 'x', 5), event('moved', 'y', 6)],
    });
    assert.equal(result.revision, at(2));
    assert.deepEqual(
      result.events.map((journalEvent) => journalEvent.seq),
      [1, 2],
    );
    assert.deepEqual(
      (await store.range('')).entries.map((entry) => [entry.key, entry.modRevision]),
      [
        ['x', at(2)],
        ['y', at(2)],
      ],
    );
    await settleFeed(store);
    assert.equal(batches.length, 1);
    assert.deepEqual(batches[0]!.changes.map((change) => change.type).sort(), [
      'delete',
      'put',
      'put',
    ]);
    assert.deepEqual(batches[0]!.events, result.events);
  });

  it('revisions strictly increase, and a txn that changes nothing keeps the revision', async () => {
    const store = await fresh();
    const at = await revisionsFrom(store);
    const revisions: number[] = [];
    for (let index = 0; index < 5; index += 1) {
      revisions.push(
        (await store.txn({ puts: [{ key: `k${index % 2}`, value: index }] })).revision,
      );
    }
    await store.appendEvents([event('e', 'n')]);
    revisions.push((await store.range('')).revision);
    assert.deepEqual(revisions, [1, 2, 3, 4, 5, 6].map(at));
    assert.equal((await store.range('')).revision, at(6));
    assert.deepEqual(await store.txn({ deletes: ['absent'] }), {
      ok: true,
      revision: at(6),
      events: [],
    });
    assert.equal((await store.txn({})).revision, at(6));
  });

  it('rejects bad input and changes nothing', async () => {
    const store = await fresh();
    const at = await revisionsFrom(store);
    await rejectsWithCode(
      store.txn({ puts: [{ key: 'k', value: undefined }] }),
      'CONTINUUM_ERR_BAD_REQUEST',
    );
    await rejectsWithCode(
      store.txn({ puts: [{ key: 'k', value: 1 }], deletes: ['k'] }),
      'CONTINUUM_ERR_BAD_REQUEST',
    );
    await rejectsWithCode(
      store.txn({ puts: [{ key: 'k', value: 1, lease: 'no-such-lease' }] }),
      'CONTINUUM_ERR_NOT_FOUND',
    );
    assert.deepEqual(await store.range(''), { entries: [], revision: at(0) });
  });
}

function runCloseContract({ fresh, settle: settleFeed }: ContractContext): void {
  it('after close every call rejects with CONTINUUM_ERR_STORE_CLOSED and watches stop', async () => {
    const clock = new FakeClock();
    const store = await fresh(clock);
    const lease = await store.grantLease(1000);
    await store.txn({ puts: [{ key: 'k', value: 1, lease: lease.id }] });
    const { batches } = watchAll(store, '');
    const committed = store.txn({ puts: [{ key: 'j', value: 1 }] });
    const closed = store.close();
    await committed;
    await closed;
    await settleFeed(store);
    assert.deepEqual(batches, [], 'a batch queued before close is not delivered');
    const code = 'CONTINUUM_ERR_STORE_CLOSED';
    await rejectsWithCode(store.get('k'), code);
    await rejectsWithCode(store.range(''), code);
    await rejectsWithCode(store.txn({ puts: [{ key: 'k', value: 2 }] }), code);
    await rejectsWithCode(store.appendEvents([event('e', 'n')]), code);
    await rejectsWithCode(store.readEvents({}), code);
    await rejectsWithCode(store.grantLease(1000), code);
    await rejectsWithCode(store.keepAliveLease(lease.id), code);
    await rejectsWithCode(store.revokeLease(lease.id), code);
    assert.throws(() => store.watch('', {}, () => {}), hasCode(code));
    clock.advance(5000); // lease timers were cancelled: nothing fires against a closed store
    await store.close(); // closing twice is harmless
  });
}
