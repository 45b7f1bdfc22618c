// Runs the StateStore contract against a real etcd started for this file (each store under a
// fresh prefix), then checks what only the etcd backend promises: TTL rounding, prefixes that
// keep stores apart, compaction reported through onError, clear errors while etcd is down, and a
// store and its open watch that carry on after etcd restarts. Skips, saying why, without etcd.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import { isContinuumError, type ContinuumError } from '../core/errors.js';
import { EtcdProcess, etcdMissingReason } from './etcd-process.js';
import { EtcdStore, type EtcdStoreOptions } from './etcd.js';
import { LoopbackProxy } from './loopback-proxy.js';
import type { StateStore, WatchBatch } from './port.js';
import { event, runStoreContract } from './store.contract.js';
import { revisionsFrom, revisionsOf, waitUntil } from './store.contract-helpers.js';

const skip = etcdMissingReason();
/** etcd raises shorter lease TTLs to this (its default election timeout of 1 s, times 1.5, in s). */
const etcdLeaseTtlMsMin = 2000;
/** etcd checks for expired leases every 500 ms and revokes them through raft. */
const leaseExpiryGraceMs = 3000;

let etcd: EtcdProcess | undefined;
let storesOpened = 0;

function endpoint(): string {
  assert.ok(etcd, 'etcd is started before the tests');
  return etcd.endpoint;
}

/** Each store gets its own prefix, so stores of earlier tests never show up in later ones. */
function openStore(options: Partial<EtcdStoreOptions> = {}): Promise<EtcdStore> {
  storesOpened += 1;
  return EtcdStore.open({
    endpoints: [endpoint()],
    prefix: `test-${process.pid}-${storesOpened}/`,
    // A lease left behind by one test would expire during a later one and move the revision
    // that test counts from; a store that revokes its leases when closed leaves none.
    revokeLeasesOnClose: true,
    ...options,
  });
}

before(async () => {
  if (skip === undefined) etcd = await EtcdProcess.start();
});

after(async () => {
  await etcd?.stop();
});

runStoreContract('etcd', (_clock, options) => openStore(options), {
  skip,
  revisionStartsAtZero: false,
  realTimeLeases: { ttlMsMin: etcdLeaseTtlMsMin, expiryGraceMs: leaseExpiryGraceMs },
  settle: (store) => (store as EtcdStore).watchesCaughtUp({ timeoutMs: 5000 }),
});

describe('EtcdStore against a real etcd', { skip }, () => {
  const opened: StateStore[] = [];
  const fresh = async (options: Partial<EtcdStoreOptions> = {}) => {
    const store = await openStore(options);
    opened.push(store);
    return store;
  };
  after(async () => {
    await Promise.all(opened.map((store) => store.close()));
  });

  it('rejects options it cannot use, naming the value', async () => {
    const cases: [Partial<EtcdStoreOptions>, RegExp][] = [
      [{ endpoints: [] }, /endpoints must be a non-empty list/],
      [{ endpoints: ['127.0.0.1:2379'] }, /endpoints\[0\] must be http:\/\/host:port, got "127/],
      [{ endpoints: ['https://127.0.0.1:2379'] }, /endpoints\[0\] must be http/],
      [
        { prefix: 'no-slash' },
        /prefix must be a non-empty string ending with '\/', got "no-slash"/,
      ],
      [{ etcdCallTimeoutMs: 0 }, /etcdCallTimeoutMs must be a positive integer, got 0/],
    ];
    for (const [options, message] of cases) {
      await assert.rejects(fresh(options), (error) => {
        return error instanceof RangeError && message.test(error.message);
      });
    }
  });

  it('grants lease TTLs in whole seconds, at least the 2 s etcd allows, and says so', async () => {
    const store = await fresh();
    assert.equal((await store.grantLease(1)).ttlMs, etcdLeaseTtlMsMin);
    assert.equal((await store.grantLease(2500)).ttlMs, 3000);
  });

  it('stores with different prefixes on one etcd see neither keys nor events of the other', async () => {
    const [first, second] = [await fresh(), await fresh()];
    const seen: WatchBatch[][] = [[], []];
    first.watch('', {}, (batch) => seen[0]!.push(batch));
    second.watch('', {}, (batch) => seen[1]!.push(batch));
    const committed = await first.txn({
      puts: [{ key: 'nodes/a', value: 'first' }],
      events: [event('up', 'a')],
    });
    await second.txn({
      puts: [
        { key: 'nodes/a', value: 'second' },
        { key: 'nodes/b', value: 2 },
      ],
    });
    assert.equal((await second.appendEvents([event('down', 'b')]))[0]!.seq, 1);
    assert.equal((await first.get('nodes/a'))!.value, 'first');
    assert.deepEqual(
      (await first.range('')).entries.map((entry) => entry.key),
      ['nodes/a'],
    );
    assert.deepEqual(
      (await second.readEvents({})).map((journalEvent) => journalEvent.kind),
      ['down'],
    );
    await first.watchesCaughtUp();
    await second.watchesCaughtUp();
    assert.deepEqual(revisionsOf(seen[0]!), [committed.revision]);
    assert.equal(seen[1]!.length, 2);
    assert.ok(seen[1]!.every((batch) => batch.revision > committed.revision));
    assert.deepEqual(
      seen[1]!.flatMap((batch) => batch.events.map((journalEvent) => journalEvent.kind)),
      ['down'],
    );
  });

  it('two stores appending to one journal at once get consecutive seqs, none twice', async () => {
    const prefix = `shared-journal-${process.pid}/`;
    const writers = [await fresh({ prefix }), await fresh({ prefix })];
    const appended = await Promise.all(
      Array.from({ length: 10 }, (_, index) =>
        writers[index % 2]!.txn({
          puts: [{ key: `k${index}`, value: index }],
          events: [event('e', `${index}a`), event('e', `${index}b`)],
        }),
      ),
    );
    const seqs = appended.flatMap((result) =>
      result.events.map((journalEvent) => journalEvent.seq),
    );
    assert.deepEqual(
      seqs.sort((a, b) => a - b),
      Array.from({ length: 20 }, (_, index) => index + 1),
    );
    const journal = await writers[0]!.readEvents({});
    assert.deepEqual(
      journal.map((journalEvent) => journalEvent.seq),
      Array.from({ length: 20 }, (_, index) => index + 1),
    );
    // Each txn's two events are adjacent: a txn's events commit together.
    for (const result of appended) {
      assert.equal(result.events[1]!.seq, result.events[0]!.seq + 1);
      assert.deepEqual(journal[result.events[0]!.seq - 1], result.events[0]);
    }
  });

  it('a watch whose history etcd compacted ends with CONFLICT through onError', async () => {
    const store = await fresh();
    const at = await revisionsFrom(store);
    for (const value of [1, 2, 3]) await store.txn({ puts: [{ key: 'k', value }] });
    const admin = new Etcd3({ hosts: [endpoint()] });
    try {
      await admin.kv.compact({ revision: at(3) });
    } finally {
      admin.close();
    }
    const errors: ContinuumError[] = [];
    const batches: WatchBatch[] = [];
    store.watch('', { fromRevision: at(1), onError: (error) => errors.push(error) }, (batch) => {
      batches.push(batch);
    });
    await waitUntil('the watch to report compaction', 5000, () => errors.length > 0);
    assert.equal(errors[0]!.code, 'CONTINUUM_ERR_CONFLICT');
    assert.match(errors[0]!.message, /compacted/);
    assert.deepEqual(batches, []);
    // From the compaction revision on, history is still there.
    const resumed: WatchBatch[] = [];
    store.watch('', { fromRevision: at(2) }, (batch) => resumed.push(batch));
    await store.watchesCaughtUp();
    assert.deepEqual(revisionsOf(resumed), [at(3)]);
  });

  it('a watch cut off from etcd replays what others committed meanwhile, each batch once', async () => {
    const proxy = await LoopbackProxy.start(Number(new URL(endpoint()).port));
    try {
      const prefix = `cut-${process.pid}/`;
      const settings = { prefix, etcdCallTimeoutMs: 1000, watchRetryBackoffMsMax: 200 };
      const cutOff = await fresh({ ...settings, endpoints: [proxy.url] });
      const other = await fresh({ ...settings, endpoints: [endpoint()] });
      const batches: WatchBatch[] = [];
      cutOff.watch('', {}, (batch) => batches.push(batch));
      const committed = [await cutOff.txn({ puts: [{ key: 'k', value: 1 }] })];
      await cutOff.watchesCaughtUp();

      proxy.cut();
      committed.push(
        await other.txn({ puts: [{ key: 'k', value: 2 }], events: [event('e', 'k')] }),
      );
      committed.push(await other.txn({ deletes: ['k'] }));
      await assert.rejects(cutOff.get('k'), (error) => {
        return isContinuumError(error) && error.code === 'CONTINUUM_ERR_UNAVAILABLE';
      });
      assert.equal(batches.length, 1, 'nothing reaches the watch while it is cut off');

      proxy.heal();
      committed.push(await cutOff.txn({ puts: [{ key: 'k', value: 4 }] }));
      await cutOff.watchesCaughtUp();
      assert.deepEqual(
        revisionsOf(batches),
        committed.map((result) => result.revision),
      );
      assert.deepEqual(batches[1]!.events, committed[1]!.events);
      assert.deepEqual(batches[2]!.changes, [
        { type: 'delete', key: 'k', revision: committed[2]!.revision },
      ]);
    } finally {
      await proxy.close();
    }
  });

  it('while etcd is down calls reject UNAVAILABLE in time; after a restart the store and its watch carry on', async () => {
    const own = await EtcdProcess.start();
    try {
      await outageAndRestart(own);
    } finally {
      await own.stop();
    }
  });
});

/** The outage test, on an etcd of its own so that the others never see it go down. */
async function outageAndRestart(own: EtcdProcess): Promise<void> {
  const etcdCallTimeoutMs = 1500;
  const store = await EtcdStore.open({
    endpoints: [own.endpoint],
    prefix: 'outage/',
    etcdCallTimeoutMs,
    watchRetryBackoffMsMax: 500,
  });
  try {
    const batches: WatchBatch[] = [];
    store.watch('nodes/', {}, (batch) => batches.push(batch));
    const before = await store.txn({ puts: [{ key: 'nodes/a', value: 1 }] });
    await store.watchesCaughtUp();
    assert.deepEqual(revisionsOf(batches), [before.revision]);

    await own.kill('SIGKILL');
    for (const call of [
      () => store.get('nodes/a'),
      () => store.txn({ puts: [{ key: 'x', value: 1 }] }),
    ]) {
      const startedMs = performance.now();
      await assert.rejects(call(), (error) => {
        return (
          isContinuumError(error) &&
          error.code === 'CONTINUUM_ERR_UNAVAILABLE' &&
          error.message.includes(own.endpoint)
        );
      });
      const elapsedMs = performance.now() - startedMs;
      // The deadline covers the retries; the margin is for the last try's own gRPC deadline.
      assert.ok(elapsedMs < etcdCallTimeoutMs + 500, `rejected after ${elapsedMs} ms`);
    }

    await own.restart();
    // The same store object works again as soon as etcd answers.
    await waitUntil('the store to reach etcd again', 10_000, async () => {
      return (await store.get('nodes/a').catch(() => undefined)) !== undefined;
    });
    const afterRestart = [
      await store.txn({ puts: [{ key: 'nodes/b', value: 2 }] }),
      await store.txn({ deletes: ['nodes/a'], events: [event('gone', 'a')] }),
    ];
    await store.watchesCaughtUp({ timeoutMs: 10_000 });
    // Nothing lost, nothing repeated: the watch resumed after the last revision it delivered.
    assert.deepEqual(
      revisionsOf(batches),
      [before, ...afterRestart].map((result) => result.revision),
    );
    assert.deepEqual(batches[2]!.changes, [
      { type: 'delete', key: 'nodes/a', revision: afterRestart[1]!.revision },
    ]);
    assert.equal((await store.readEvents({}))[0]!.seq, 1);
  } finally {
    await store.close();
  }
}
