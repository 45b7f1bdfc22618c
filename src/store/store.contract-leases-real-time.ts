// The StateStore contract's lease rules for a backend whose leases run on its own real time
// (etcd ignores the FakeClock). The same rules as the FakeClock tests, asserted with real waits
// kept as short as the backend allows: a lease expires no sooner than its TTL and then deletes its
// keys in one committed txn; keepAlive keeps it past its TTL; an expired lease is gone for
// keepAlive and for new puts. Every wait polls a condition with a deadline; the only timed pauses
// are the keepAlive rounds themselves, because passing time is what keepAlive is about.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import {
  rejectsWithCode,
  revisionsFrom,
  waitUntil,
  watchAll,
  type ContractContext,
  type StoreContractTraits,
} from './store.contract-helpers.js';

export function runRealTimeLeaseContract(
  { fresh }: ContractContext,
  realTime: NonNullable<StoreContractTraits['realTimeLeases']>,
): void {
  const { ttlMsMin, expiryGraceMs } = realTime;
  const expiryTimeoutMs = ttlMsMin + expiryGraceMs;

  it('a lease that expires deletes its keys in a committed txn seen by watchers (real time)', async () => {
    const store = await fresh();
    const at = await revisionsFrom(store);
    const grantedBeforeMs = performance.now();
    const lease = await store.grantLease(ttlMsMin);
    assert.equal(lease.ttlMs, ttlMsMin);
    await store.txn({
      puts: [
        { key: 'locks/a', value: 1, lease: lease.id },
        { key: 'locks/b', value: 2 },
      ],
    });
    assert.equal((await store.get('locks/a'))!.lease, lease.id);
    const { batches } = watchAll(store, 'locks/');
    await waitUntil('the leased key to expire', expiryTimeoutMs, async () => {
      return (await store.get('locks/a')) === undefined;
    });
    const expiredAfterMs = performance.now() - grantedBeforeMs;
    assert.ok(expiredAfterMs >= ttlMsMin, `expired after ${expiredAfterMs} ms, before its TTL`);
    assert.notEqual(await store.get('locks/b'), undefined);
    await waitUntil('the expiry to reach the watcher', expiryGraceMs, () => batches.length > 0);
    assert.deepEqual(batches, [
      {
        revision: at(2),
        changes: [{ type: 'delete', key: 'locks/a', revision: at(2) }],
        events: [],
      },
    ]);
    assert.equal((await store.range('')).revision, at(2), 'the expiry is one committed txn');
  });

  it('keepAlive extends a lease past its TTL; a key put again without the lease survives (real time)', async () => {
    const store = await fresh();
    const grantedBeforeMs = performance.now();
    const lease = await store.grantLease(ttlMsMin);
    await store.txn({
      puts: [
        { key: 'a', value: 1, lease: lease.id },
        { key: 'b', value: 1, lease: lease.id },
      ],
    });
    await store.txn({ puts: [{ key: 'b', value: 2 }] });
    // Renew four times per TTL until one and a half TTLs have passed since the grant.
    while (performance.now() - grantedBeforeMs < ttlMsMin * 1.5) {
      await delay(ttlMsMin / 4);
      await store.keepAliveLease(lease.id);
    }
    assert.notEqual(await store.get('a'), undefined, 'kept alive past its TTL');
    await waitUntil('the lease to expire once no longer kept alive', expiryTimeoutMs, async () => {
      return (await store.get('a')) === undefined;
    });
    assert.equal((await store.get('b'))!.value, 2);
  });

  it('keepAlive of an expired or unknown lease rejects with CONTINUUM_ERR_NOT_FOUND (real time)', async () => {
    const store = await fresh();
    const lease = await store.grantLease(ttlMsMin);
    await store.txn({ puts: [{ key: 'k', value: 1, lease: lease.id }] });
    await waitUntil('the lease to expire', expiryTimeoutMs, async () => {
      return (await store.get('k')) === undefined;
    });
    await rejectsWithCode(store.keepAliveLease(lease.id), 'CONTINUUM_ERR_NOT_FOUND');
    await rejectsWithCode(store.keepAliveLease('lease-unknown'), 'CONTINUUM_ERR_NOT_FOUND');
    await rejectsWithCode(
      store.txn({ puts: [{ key: 'k', value: 1, lease: lease.id }] }),
      'CONTINUUM_ERR_NOT_FOUND',
    );
  });
}
