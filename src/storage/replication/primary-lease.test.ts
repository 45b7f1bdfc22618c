// The read lease (docs/replication.md, "Reads and the lease"): a primary answers a read only while
// every other in-sync member acknowledged something it sent less than readLeaseMs ago; a read that
// finds the lease run out waits for a renewal (or fails once the primary is fenced), and a primary
// that opens at an epoch above the one its copy had serves nothing for readLeaseMs, so a deposed
// primary cut off from everyone cannot answer reads from its old copy after a newer one
// acknowledged writes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cluster, isIo, pattern, ready, settled, volume, type Cluster } from './cluster-harness.js';

/** Moves the fake clock by `ms` in steps, letting messages flow between them. */
async function advance(c: Cluster, ms: number, stepMs = 25): Promise<void> {
  for (let moved = 0; moved < ms; moved += stepMs) {
    await settled(Promise.resolve());
    c.clock.advance(stepMs);
  }
  await settled(Promise.resolve());
}

/** The local copy accepted epoch 1 (clean, one generation) before the primary opens. */
const acceptedEpoch1 = (cl: Cluster): void => {
  cl.state.meta = {
    volume,
    highestEpoch: 1,
    generations: ['00000000000000aa'],
    dataGeneration: 0,
    unclean: false,
  };
};

// Long ack timeouts: the watchdog must not restart the held links during these tests.
const limits = { readLeaseMs: 300, replicaAckTimeoutMs: 60_000, acceptEpochTimeoutMs: 60_000 };

describe('primary: the read lease', () => {
  it('a read whose lease ran out (a replica stopped answering) waits, and is answered after a renewal', async () => {
    const c = await cluster({ limits });
    await ready(c);
    await c.primary.write(0, pattern(4));
    // Renewed in the background while every member answers: reads are answered at once.
    await advance(c, 1000);
    assert.deepEqual(await c.primary.read(0, 4), Buffer.alloc(4, 4));
    const [, toC] = c.link('c');
    toC.hold();
    await advance(c, 400);
    const read = c.primary.read(0, 4);
    assert.equal(await settled(read), false, 'waits for the lease');
    await advance(c, 2000);
    assert.equal(await settled(read), false, 'still waits while c does not answer');
    const flushesToC = () => c.link('c')[0].sent.filter((m) => m.type === 'REPL_FLUSH').length;
    const before = flushesToC();
    // No clock movement from here: c answers the held question, too old to renew the lease, so
    // the read asks again at once, and c's answer to that renews it.
    toC.release();
    assert.deepEqual(await read, Buffer.alloc(4, 4), 'answered once c acknowledged again');
    assert.ok(flushesToC() > before, 'a renewal was asked for');
  });

  it('a read on a primary whose replica took a newer epoch fails (fenced) instead of answering', async () => {
    const c = await cluster({ limits });
    await ready(c);
    await c.primary.write(0, pattern(6));
    const [, toC] = c.link('c');
    toC.hold();
    await advance(c, 400);
    const read = c.primary.read(0, 4);
    assert.equal(await settled(read), false, 'waits for the lease');
    // A newer primary was promoted meanwhile: c accepted its epoch, and refuses ours.
    await c.replica('c').handle.acceptEpoch(2);
    toC.release();
    await assert.rejects(read, isIo);
    assert.equal(c.primary.fenced, true);
    await assert.rejects(c.primary.read(0, 4), isIo);
  });

  it('a primary promoted above the epoch its copy had holds reads and writes for readLeaseMs', async () => {
    const c = await cluster({
      epoch: 2,
      limits,
      // This node was a replica of the primary of epoch 1.
      prepare: acceptedEpoch1,
    });
    const write = c.primary.write(0, pattern(8));
    const read = c.primary.read(4096, 4);
    const flush = c.primary.flush();
    await advance(c, 250);
    for (const held of [write, read, flush]) assert.equal(await settled(held), false, 'held');
    await advance(c, 100);
    assert.deepEqual(await read, Buffer.alloc(4));
    await write;
    await flush;
    assert.deepEqual(await c.replica('b').device.read(0, 4), Buffer.alloc(4, 8));
  });

  it('a restart at the epoch the copy already had does not wait', async () => {
    const c = await cluster({
      limits,
      prepare: acceptedEpoch1,
    });
    // No clock movement: the handshake's answers give the lease.
    await c.primary.write(0, pattern(2));
    assert.deepEqual(await c.primary.read(0, 4), Buffer.alloc(4, 2));
  });

  it('alone in the ISR, reads are answered at once (even with every replica unreachable)', async () => {
    const c = await cluster({
      limits,
      isr: [],
      prepare: (cl) => {
        cl.replica('b').reachable = false;
        cl.replica('c').reachable = false;
      },
    });
    await c.primary.write(0, pattern(3));
    assert.deepEqual(await c.primary.read(0, 4), Buffer.alloc(4, 3));
    await advance(c, 5000, 100);
    assert.deepEqual(await c.primary.read(0, 4), Buffer.alloc(4, 3));
  });
});
