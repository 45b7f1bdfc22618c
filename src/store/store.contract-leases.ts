// The StateStore contract, part three: leases (expiry on the Clock, keepAlive, revoke, limits).
// A backend whose leases run on its own real time (etcd) gets the real-time variants of the
// expiry and keepAlive tests instead (store.contract-leases-real-time.ts).
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { FakeClock } from '../sim/fake-clock.js';
import { runRealTimeLeaseContract } from './store.contract-leases-real-time.js';
import {
  rejectsWithCode,
  revisionsFrom,
  watchAll,
  type ContractContext,
} from './store.contract-helpers.js';

export function runLeaseContract(context: ContractContext): void {
  const realTime = context.traits.realTimeLeases;
  if (realTime === undefined) runFakeClockLeaseContract(context);
  else runRealTimeLeaseContract(context, realTime);
  runLeaseRevokeAndLimits(context);
}

function runFakeClockLeaseContract({ fresh, settle }: ContractContext): void {
  it('a lease that expires deletes its keys in a committed txn seen by watchers', async () => {
    const clock = new FakeClock();
    const store = await fresh(clock);
    const at = await revisionsFrom(store);
    const lease = await store.grantLease(1000);
    assert.equal(lease.ttlMs, 1000);
    await store.txn({
      puts: [
        { key: 'locks/a', value: 1, lease: lease.id },
        { key: 'locks/b', value: 2 },
      ],
    });
    assert.equal((await store.get('locks/a'))!.lease, lease.id);
    const { batches } = watchAll(store, 'locks/');
    clock.advance(999);
    assert.notEqual(await store.get('locks/a'), undefined);
    clock.advance(1);
    assert.equal(await store.get('locks/a'), undefined);
    assert.notEqual(await store.get('locks/b'), undefined);
    await settle(store);
    assert.deepEqual(batches, [
      {
        revision: at(2),
        changes: [{ type: 'delete', key: 'locks/a', revision: at(2) }],
        events: [],
      },
    ]);
  });

  it('keepAlive extends a lease by its TTL; a key put again without the lease survives', async () => {
    const clock = new FakeClock();
    const store = await fresh(clock);
    const lease = await store.grantLease(1000);
    await store.txn({
      puts: [
        { key: 'a', value: 1, lease: lease.id },
        { key: 'b', value: 1, lease: lease.id },
      ],
    });
    await store.txn({ puts: [{ key: 'b', value: 2 }] });
    clock.advance(600);
    await store.keepAliveLease(lease.id);
    clock.advance(600);
    assert.notEqual(await store.get('a'), undefined);
    clock.advance(400);
    assert.equal(await store.get('a'), undefined);
    assert.equal((await store.get('b'))!.value, 2);
  });

  it('keepAlive of an expired or unknown lease rejects with CONTINUUM_ERR_NOT_FOUND', async () => {
    const clock = new FakeClock();
    const store = await fresh(clock);
    const lease = await store.grantLease(100);
    clock.advance(100);
    await rejectsWithCode(store.keepAliveLease(lease.id), 'CONTINUUM_ERR_NOT_FOUND');
    await rejectsWithCode(store.keepAliveLease('lease-unknown'), 'CONTINUUM_ERR_NOT_FOUND');
    await rejectsWithCode(
      store.txn({ puts: [{ key: 'k', value: 1, lease: lease.id }] }),
      'CONTINUUM_ERR_NOT_FOUND',
    );
  });
}

/** Revoke and the TTL limits need no clock: every backend runs them as they are. */
function runLeaseRevokeAndLimits({ fresh }: ContractContext): void {
  it('revoke deletes the lease and its keys at once', async () => {
    const store = await fresh();
    const at = await revisionsFrom(store);
    const lease = await store.grantLease(60_000);
    await store.txn({ puts: [{ key: 'k', value: 1, lease: lease.id }] });
    await store.revokeLease(lease.id);
    assert.deepEqual(await store.range(''), { entries: [], revision: at(2) });
    await rejectsWithCode(store.keepAliveLease(lease.id), 'CONTINUUM_ERR_NOT_FOUND');
    await rejectsWithCode(store.revokeLease(lease.id), 'CONTINUUM_ERR_NOT_FOUND');
  });

  it('grantLease rejects a TTL that is not positive or longer than an hour', async () => {
    const store = await fresh();
    for (const ttlMs of [0, -5, 3_600_001, Number.NaN]) {
      await assert.rejects(store.grantLease(ttlMs), (error) => {
        return error instanceof RangeError && error.message.includes(String(ttlMs));
      });
    }
    assert.equal((await store.grantLease(3_600_000)).ttlMs, 3_600_000);
  });
}
