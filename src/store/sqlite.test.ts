// Runs the StateStore contract against the SQLite backend (in memory), then checks what only a
// file-backed store promises: data, revision, journal and leases survive a close and reopen.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FakeClock } from '../sim/fake-clock.js';
import { SqliteStore } from './sqlite.js';
import { event, runStoreContract, settle } from './store.contract.js';

runStoreContract(
  'sqlite',
  (clock, options) => new SqliteStore({ path: ':memory:', clock, ...options }),
);

describe('SqliteStore persistence', () => {
  let directory = '';
  before(async () => {
    directory = await mkdtemp(join(tmpdir(), 'continuum-store-'));
  });
  after(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  it('reopening the file keeps data, revision, journal seq and watch history', async () => {
    const path = join(directory, 'reopen.db');
    const clock = new FakeClock();
    const first = new SqliteStore({ path, clock });
    await first.txn({ puts: [{ key: 'nodes/a', value: { cpu: 4 } }], events: [event('up', 'a')] });
    await first.txn({ puts: [{ key: 'nodes/b', value: { cpu: 2 } }], events: [event('up', 'b')] });
    await first.close();

    const second = new SqliteStore({ path, clock });
    try {
      const { entries, revision } = await second.range('nodes/');
      assert.equal(revision, 2);
      assert.deepEqual(
        entries.map((entry) => [entry.key, entry.value, entry.modRevision]),
        [
          ['nodes/a', { cpu: 4 }, 1],
          ['nodes/b', { cpu: 2 }, 2],
        ],
      );
      assert.deepEqual(
        (await second.readEvents({})).map((journalEvent) => journalEvent.seq),
        [1, 2],
      );
      const appended = await second.appendEvents([event('down', 'a')]);
      assert.equal(appended[0]!.seq, 3);
      assert.equal((await second.txn({ puts: [{ key: 'x', value: 1 }] })).revision, 4);
      const replayed: number[] = [];
      second.watch('', { fromRevision: 0 }, (batch) => replayed.push(batch.revision));
      await settle();
      assert.deepEqual(replayed, [1, 2, 3, 4]);
    } finally {
      await second.close();
    }
  });

  it('a lease that expired while the store was closed is gone after reopen', async () => {
    const path = join(directory, 'lease.db');
    const clock = new FakeClock({ startMs: 1_000_000 });
    const first = new SqliteStore({ path, clock });
    const expiring = await first.grantLease(1000);
    const lasting = await first.grantLease(60_000);
    await first.txn({
      puts: [
        { key: 'locks/short', value: 1, lease: expiring.id },
        { key: 'locks/long', value: 2, lease: lasting.id },
      ],
    });
    await first.close();

    clock.advance(5000);
    const second = new SqliteStore({ path, clock });
    try {
      assert.equal(await second.get('locks/short'), undefined);
      assert.equal((await second.get('locks/long'))!.lease, lasting.id);
      assert.equal((await second.range('')).revision, 2, 'the expiry is a committed txn');
      clock.advance(55_000);
      assert.equal(await second.get('locks/long'), undefined, 'the surviving lease was re-armed');
      const next = await second.grantLease(1000);
      assert.notEqual(next.id, expiring.id, 'lease ids are not reused across a reopen');
      assert.notEqual(next.id, lasting.id);
    } finally {
      await second.close();
    }
  });
});
