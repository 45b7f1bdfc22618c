// Reports a primary sends again, and flushes that must reach every in-sync replica: reports travel
// agent -> controller over a session that can break, so 'caught-up' and 'unresponsive' go again
// every replicaAckTimeoutMs while nothing newer than them arrived (and at once when the controller
// sends the membership we have again); a caught-up report the controller ignored (a newer
// membership leaves the node out) makes the primary drop it, resync it and report it at the new
// isrVersion; and a flush with nothing new to make durable still asks every in-sync replica, so a
// primary that a newer one replaced answers none.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  cluster,
  eventually,
  isIo,
  pattern,
  ready,
  settled,
  type Cluster,
} from './cluster-harness.js';

const stateOf = (c: Cluster, node: string) =>
  c.primary.status().replicas.find((replica) => replica.node === node)!.state;

/** Moves the clock in watchdog-sized steps, noting when the count of `kind` reports grows. */
async function advance(
  c: Cluster,
  ms: number,
  kind: 'caught-up' | 'unresponsive',
): Promise<number[]> {
  const grewAt: number[] = [];
  for (let moved = 0; moved < ms; moved += 50) {
    const before = c.reportsOf(kind).length;
    c.clock.advance(50);
    await settled(Promise.resolve());
    if (c.reportsOf(kind).length > before) grewAt.push(c.clock.now());
  }
  return grewAt;
}

/** Three verified copies, then c's link goes silent and c unreachable once the watchdog restarts it. */
async function withSilentC(): Promise<Cluster> {
  const c = await cluster({ limits: { replicaAckTimeoutMs: 1000 } });
  await ready(c);
  const [, toC] = c.link('c');
  toC.hold();
  c.replica('c').reachable = false;
  return c;
}

describe('primary: reports that may be lost', () => {
  it('reports caught-up again every replicaAckTimeoutMs, and at once when the same membership comes again, until admitted', async () => {
    const c = await cluster({ isr: ['b'], limits: { replicaAckTimeoutMs: 1000 } });
    await eventually(() => c.reportsOf('caught-up').length === 1, { what: 'c caught up' });
    assert.equal(stateOf(c, 'c'), 'caught-up');
    const again = await advance(c, 3500, 'caught-up');
    assert.ok(again.length >= 2, `reported again (${again.length})`);
    for (let i = 1; i < again.length; i++) assert.ok(again[i]! - again[i - 1]! >= 1000);
    assert.ok(c.reportsOf('caught-up').every((r) => r.node === 'c' && r.isrVersion === 1));
    // The controller sends the record we have again (it restarted): the report goes at once.
    const before = c.reportsOf('caught-up').length;
    c.primary.setMembership(c.membership);
    assert.equal(c.reportsOf('caught-up').length, before + 1);
    // Admitted: nothing more.
    c.setMembership(['a', 'b', 'c']);
    assert.equal(stateOf(c, 'c'), 'in-sync');
    assert.deepEqual(await advance(c, 3000, 'caught-up'), []);
  });

  it('a caught-up report the controller ignored: a newer membership without it drops it, resyncs it and reports it at the new isrVersion', async () => {
    const c = await cluster({ isr: ['b'], limits: { replicaAckTimeoutMs: 1000 } });
    await eventually(() => c.reportsOf('caught-up').length === 1, { what: 'c caught up' });
    assert.equal(c.reportsOf('caught-up')[0]!.isrVersion, 1);
    // The controller moved on without taking the report (say c was reported unresponsive first).
    const linksBefore = c.replica('c').links.length;
    c.setMembership(['a', 'b']);
    assert.notEqual(stateOf(c, 'c'), 'caught-up', 'no longer required');
    await c.primary.write(0, pattern(4)); // does not wait for c
    await eventually(() => c.reportsOf('caught-up').some((r) => r.isrVersion === 2), {
      clock: c.clock,
      advanceMs: 20,
      what: 'c caught up again at isrVersion 2',
    });
    assert.ok(c.replica('c').links.length > linksBefore, 'on a fresh link');
    assert.deepEqual(await c.replica('c').device.allChecksums(), await c.device.allChecksums());
    assert.equal(stateOf(c, 'c'), 'caught-up');
    c.setMembership(['a', 'b', 'c']);
    assert.equal(stateOf(c, 'c'), 'in-sync');
  });

  it('reports an unresponsive in-sync replica again every replicaAckTimeoutMs while it stays late, and at once on the same membership', async () => {
    const c = await withSilentC();
    const write = c.primary.write(0, pattern(5));
    const times = await advance(c, 4000, 'unresponsive');
    assert.ok(times.length >= 3, `reported ${times.length} times`);
    for (let i = 1; i < times.length; i++) assert.ok(times[i]! - times[i - 1]! >= 1000);
    assert.ok(c.reportsOf('unresponsive').every((r) => r.node === 'c' && r.isrVersion === 1));
    // Each report says how long the write has waited: the agent's self-fence clock.
    const waited = c
      .reportsOf('unresponsive')
      .map((r) => (r.kind === 'unresponsive' ? r.waitingMs : -1));
    assert.ok(waited[0]! >= 1000, `first report after the timeout (${waited[0]} ms)`);
    for (let i = 1; i < waited.length; i++) assert.ok(waited[i]! >= waited[i - 1]! + 1000);
    const before = c.reportsOf('unresponsive').length;
    c.primary.setMembership(c.membership);
    assert.equal(c.reportsOf('unresponsive').length, before + 1);
    assert.equal(await settled(write), false, 'the primary never drops it by itself');
    c.setMembership(['a', 'b']);
    await write;
    assert.deepEqual(await advance(c, 3000, 'unresponsive'), [], 'nothing once it left the ISR');
  });
});

describe('primary: self-fenced by its agent', () => {
  it('fails the operations it holds with EIO, reports fenced, and acknowledges nothing more', async () => {
    const c = await withSilentC();
    const write = c.primary.write(0, pattern(6));
    await advance(c, 1500, 'unresponsive');
    assert.equal(await settled(write), false, 'held');
    c.primary.fence('self-fenced: test');
    await assert.rejects(write, isIo);
    await assert.rejects(c.primary.write(4096, pattern(7)), isIo);
    await assert.rejects(c.primary.flush(), isIo);
    assert.equal(c.primary.fenced, true);
    const fenced = c.reportsOf('fenced');
    assert.equal(fenced.length, 1);
    assert.ok(fenced[0]?.kind === 'fenced' && fenced[0].reason === 'self-fenced: test');
    const reports = c.reportsOf('unresponsive').length;
    assert.deepEqual(await advance(c, 3000, 'unresponsive'), [], 'no more reports');
    assert.equal(c.reportsOf('unresponsive').length, reports);
  });
});

describe('primary: a flush asks every in-sync replica', () => {
  it('even with nothing new to make durable; a replaced primary answers no flush', async () => {
    const c = await cluster();
    await ready(c);
    await c.primary.write(0, pattern(1));
    await c.primary.flush();
    const [, toB] = c.link('b');
    toB.hold();
    const idle = c.primary.flush();
    assert.equal(await settled(idle), false, 'waits for b although b acked it all durable');
    toB.release();
    await idle;
    // b now serves a newer epoch: the old primary must not answer even an idle flush.
    toB.hold();
    const stale = c.primary.flush();
    await c.replica('b').handle.acceptEpoch(2);
    toB.release();
    await assert.rejects(stale, isIo);
    assert.equal(c.primary.fenced, true);
  });
});
