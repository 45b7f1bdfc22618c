// The primary's promises to its clients, against real replica cores over in-memory links: a write
// is answered only once every ISR member has it, a flush only once every ISR member made it
// durable, a dropped replica releases the waiting replies with its bitmap holding exactly what it
// missed, an unresponsive ISR member is reported, and the broken build answers early (so the
// first test can fail).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  blockBytes,
  cluster,
  eventually,
  isIo,
  pattern,
  ready,
  settled,
} from './cluster-harness.js';

describe('primary: the write path', () => {
  it('answers a write only after every ISR replica acked it', async () => {
    const c = await cluster();
    await ready(c);
    const [, toC] = c.link('c');
    toC.hold(); // c receives nothing until released
    const write = c.primary.write(8192, pattern(0xab));
    assert.equal(await settled(write), false, 'answered before c had the write');
    assert.deepEqual(await c.device.read(8192, 4), Buffer.alloc(4, 0xab), 'local write done');
    assert.deepEqual(await c.replica('b').device.read(8192, 4), Buffer.alloc(4, 0xab));
    toC.release();
    await write;
    assert.deepEqual(await c.replica('c').device.read(8192, blockBytes), pattern(0xab));
  });

  it('lets the frames of a write leave before it writes its own copy', async (t) => {
    // A SocketLink sends what it was given in a microtask queued by the first frame (sendBatch
    // 'microtask'); these links record when such a microtask would have run.
    const c = await cluster();
    await ready(c);
    const left: string[] = [];
    for (const node of ['b', 'c']) {
      const [end] = c.link(node);
      const send = end.send.bind(end);
      t.mock.method(end, 'send', (message: Parameters<typeof send>[0]) => {
        if (message.type === 'REPL_WRITE') queueMicrotask(() => left.push(node));
        send(message);
      });
    }
    const leftAtLocalWrite: string[][] = [];
    const write = c.device.write.bind(c.device);
    t.mock.method(c.device, 'write', (...args: Parameters<typeof write>) => {
      leftAtLocalWrite.push([...left]);
      return write(...args);
    });
    await c.primary.write(4 * blockBytes, pattern(0x5a));
    assert.deepEqual(leftAtLocalWrite, [['b', 'c']], 'both frames had left');
  });

  it('the broken build (unsafeAckBeforeIsr) answers before the ISR has the write', async () => {
    const c = await cluster({ unsafeAckBeforeIsr: true });
    await ready(c);
    const [, toC] = c.link('c');
    toC.hold();
    const write = c.primary.write(0, pattern(1));
    assert.equal(await settled(write), true, 'the broken build must answer at once');
    assert.deepEqual(await c.replica('c').device.read(0, 4), Buffer.alloc(4), 'c has nothing yet');
    toC.release();
  });

  it('answers a flush only after every ISR replica acked it durable', async () => {
    const c = await cluster();
    await ready(c);
    await c.primary.write(0, pattern(2));
    const flushesBefore = c.replica('b').device.calls.flush;
    const [fromB] = c.link('b');
    fromB.hold(); // b's acks wait
    const flush = c.primary.flush();
    assert.equal(await settled(flush), false);
    await eventually(() => c.replica('b').device.calls.flush > flushesBefore, {
      what: 'b flushed',
    });
    assert.equal(await settled(flush), false, 'answered before b acked durable');
    fromB.release();
    await flush;
    assert.ok(c.device.calls.flush >= 1, 'local flush');
  });

  it('a FUA write is answered after the flush path', async () => {
    const c = await cluster();
    await ready(c);
    const before = c.replica('c').device.calls.flush;
    await c.primary.write(0, pattern(3), { fua: true });
    assert.ok(c.replica('c').device.calls.flush > before, 'c flushed before the FUA reply');
  });

  it('waits for the ISR to accept the epoch before taking writes', async () => {
    const c = await cluster({
      prepare: (cl) => {
        cl.replica('c').reachable = false;
      },
    });
    const write = c.primary.write(0, pattern(4));
    assert.equal(await settled(write), false, 'c never accepted the epoch');
    assert.deepEqual(await c.device.read(0, 4), Buffer.alloc(4), 'not even written locally yet');
    c.replica('c').reachable = true;
    await eventually(() => c.replica('c').links.length > 0, {
      clock: c.clock,
      advanceMs: 50,
      what: 'retry',
    });
    await write;
  });

  it('limits mutations in flight per replica (waits, does not buffer)', async () => {
    const c = await cluster({ limits: { inFlightMax: 2 } });
    await ready(c);
    const [, toB] = c.link('b');
    toB.hold();
    const writes = [0, 1, 2, 3].map((index) => c.primary.write(index * blockBytes, pattern(index)));
    await settled(writes[0]!);
    assert.equal(c.primary.status().replicas.find((r) => r.node === 'b')!.unacked, 2);
    assert.equal(c.link('b')[0].sent.filter((m) => m.type === 'REPL_WRITE').length, 2);
    toB.release();
    await Promise.all(writes);
  });
});

describe('primary: a replica that stops answering', () => {
  it('reports an ISR member unresponsive after replicaAckTimeoutMs (again while it stays late) and keeps waiting', async () => {
    const c = await cluster({ limits: { replicaAckTimeoutMs: 1000 } });
    await ready(c);
    const [, toC] = c.link('c');
    toC.hold();
    // The watchdog restarts the silent link: c stays unreachable, so the write keeps waiting.
    c.replica('c').reachable = false;
    const write = c.primary.write(0, pattern(5));
    await settled(write);
    c.clock.advance(900);
    assert.equal(c.reportsOf('unresponsive').length, 0, 'not before the timeout');
    c.clock.advance(400);
    assert.deepEqual(
      c.reportsOf('unresponsive').map((r) => [r.node, r.isrVersion]),
      [['c', 1]],
    );
    // In steps that let b answer: the read lease has b flush every third of readLeaseMs, and a
    // leap of the clock that leaves it no turn to answer would make it late too.
    for (let moved = 0; moved < 5000; moved += 100) {
      await settled(Promise.resolve());
      c.clock.advance(100);
    }
    // Reports can be lost on the way to the controller: it goes again (primary-reports.test.ts).
    assert.ok(c.reportsOf('unresponsive').length > 1, 'again while it stays late');
    assert.ok(c.reportsOf('unresponsive').every((r) => r.node === 'c' && r.isrVersion === 1));
    assert.equal(await settled(write), false, 'the primary never drops it by itself');
    c.replica('c').reachable = true;
    toC.release();
    let done = false;
    void write.then(() => (done = true));
    await eventually(() => done, {
      clock: c.clock,
      advanceMs: 50,
      what: 'the write once c answers',
    });
  });

  it('after setMembership drops it, releases the waiting writes once its bitmap holds their ranges', async () => {
    const c = await cluster({ limits: { bitmapRegionBytes: 64 * 1024 } });
    await ready(c);
    const [, toC] = c.link('c');
    toC.hold();
    const writes = [
      c.primary.write(0, pattern(6)),
      c.primary.write(200 * 1024, pattern(7, 8192)),
      c.primary.writeZeroes(1024 * 1024, 64 * 1024),
    ];
    assert.equal(await settled(Promise.race(writes)), false);
    c.state.holdSaves();
    c.setMembership(['a', 'b']);
    assert.equal(await settled(Promise.all(writes)), false, 'released before the bitmap was saved');
    c.state.releaseSaves();
    await Promise.all(writes);
    const saved = c.state.bitmaps.get('c');
    assert.ok(saved !== undefined, 'bitmap persisted');
    assert.deepEqual(saved.dirty, [
      [0, 64 * 1024],
      [192 * 1024, 64 * 1024],
      [1024 * 1024, 64 * 1024],
    ]);
    assert.equal(
      saved.startGeneration,
      c.state.meta!.generations[1],
      'starts at the generation c shares',
    );
    // Later writes mark it too and no longer wait for c.
    await c.primary.write(3 * 1024 * 1024, pattern(8));
    await c.primary.flush();
    assert.deepEqual(c.state.bitmaps.get('c')!.dirty.at(-1), [3 * 1024 * 1024, 64 * 1024]);
  });
});

describe('primary: a replica that moves', () => {
  it('dropped while away, it returns on another address at the same isrVersion: the primary dials the new one and resyncs it', async () => {
    const c = await cluster({ limits: { bitmapRegionBytes: 64 * 1024 } });
    await ready(c);
    // c's volume server dies: its links close, and it comes back listening elsewhere.
    const replica = c.replica('c');
    replica.reachable = false;
    for (const [primaryEnd] of replica.links) primaryEnd.close('c died');
    const write = c.primary.write(0, pattern(3));
    await eventually(() => c.reportsOf('unresponsive').length > 0, {
      clock: c.clock,
      advanceMs: 50,
      what: 'c reported unresponsive',
    });
    c.setMembership(['a', 'b']);
    await write;
    await c.primary.write(512 * 1024, pattern(4));
    const linksBefore = replica.links.length;
    replica.address = 'c:7001';
    replica.reachable = true;
    c.clock.advance(5000);
    await settled(Promise.resolve());
    assert.equal(replica.links.length, linksBefore, 'nothing listens on the old address');
    // The controller sends the record it has (same isrVersion) with c's new address.
    c.setMembership(['a', 'b'], undefined, 0);
    const deltaDone = () =>
      c.reportsOf('resync').find((r) => r.node === 'c' && r.done && r.mode !== 'verify');
    await eventually(() => deltaDone() !== undefined, {
      clock: c.clock,
      advanceMs: 20,
      what: 'a resync of c on its new address',
    });
    const resync = deltaDone()!;
    assert.equal(resync.bytesCopied, 2 * 4096, 'only the two blocks written while it was away');
    assert.deepEqual(await replica.device.allChecksums(), await c.device.allChecksums());
  });
});

describe('primary: fencing', () => {
  it('a replica that accepted a newer epoch fences the primary: pending and later ops fail with io', async () => {
    const c = await cluster();
    await ready(c);
    const [, toB] = c.link('b');
    toB.hold();
    const pending = c.primary.write(0, pattern(9));
    await settled(pending);
    await c.replica('b').handle.acceptEpoch(2);
    toB.release();
    await assert.rejects(pending, isIo);
    assert.equal(c.primary.fenced, true);
    await assert.rejects(c.primary.write(0, pattern(1)), isIo);
    await assert.rejects(c.primary.read(0, 1), /fenced/);
    assert.equal(c.reportsOf('fenced').length, 1);
  });

  it('a primary opened below an epoch its replicas accepted is fenced at the handshake', async () => {
    const c = await cluster({
      prepare: async (cl) => {
        await cl.replica('c').handle.acceptEpoch(5);
      },
    });
    const write = c.primary.write(0, pattern(1));
    await assert.rejects(write, isIo);
    assert.match(c.reportsOf('fenced')[0]!.reason, /epoch 5/);
    assert.deepEqual(await c.replica('b').device.read(0, 4), Buffer.alloc(4), 'nothing written');
  });
});
