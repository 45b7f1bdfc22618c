// A primary's reports as the controller journals them. A resync that stops moving is journaled once
// as stalled, whether its primary keeps reporting the same figures or stops reporting, and as
// resumed when the figures move again. A 'fenced' report is journaled once: an agent that could not
// tell whether its session delivered the report sends it again until the controller confirms it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PrimaryReportMessage } from '../../core/protocol.js';
import { FakeClock } from '../../sim/fake-clock.js';
import { MemoryStore } from '../../store/memory.js';
import { journalStalledResyncs, volumeReport, type ResyncView } from './reports.js';

function setup() {
  const clock = new FakeClock();
  const store = new MemoryStore({ clock });
  const controller = {
    store,
    config: { writeAttemptsMax: 3 },
    resyncs: new Map<string, ResyncView>(),
    poke: () => undefined,
  };
  const report = (bytesCopied: number, blocksCompared = 0) =>
    volumeReport(
      controller,
      'node-1',
      {
        kind: 'resync',
        volume: 'kv-data',
        epoch: 2,
        node: 'node-2',
        mode: 'full',
        bytesCopied,
        bytesToCopy: 1000,
        blocksCompared,
        done: false,
      },
      clock.now(),
    );
  const kinds = async () =>
    (await store.readEvents({ limit: 100 })).map((e) => e.kind).filter((k) => k.includes('resync'));
  return { clock, store, controller, report, kinds };
}

describe('resync stall', () => {
  it('journals a resync whose figures stop moving, once, and its resumption', async () => {
    const t = setup();
    await t.report(100);
    t.clock.advance(30_000);
    await t.report(100);
    await journalStalledResyncs(t.controller, t.clock.now(), 60_000);
    assert.deepEqual(await t.kinds(), [], 'not yet stalled at 30 s');
    t.clock.advance(30_000);
    await t.report(100);
    await journalStalledResyncs(t.controller, t.clock.now(), 60_000);
    await journalStalledResyncs(t.controller, t.clock.now() + 1000, 60_000);
    assert.deepEqual(await t.kinds(), ['volume.resync-stalled']);
    const [stalled] = await t.store.readEvents({ kinds: ['volume.resync-stalled'], limit: 1 });
    assert.match(
      stalled?.message ?? '',
      /full resync of node-2 from node-1 made no progress for 60 s \(100 of 1000 bytes\)/,
    );
    t.clock.advance(1000);
    await t.report(100, 5); // Comparing blocks is progress too (a verify pass copies nothing).
    assert.deepEqual(await t.kinds(), ['volume.resync-stalled', 'volume.resync-resumed']);
    assert.equal(t.controller.resyncs.get('kv-data/node-2')?.stalledSince, undefined);
  });

  it('journals a resync whose primary stopped reporting', async () => {
    const t = setup();
    await t.report(100);
    t.clock.advance(90_000);
    await journalStalledResyncs(t.controller, t.clock.now(), 60_000);
    const [stalled] = await t.store.readEvents({ kinds: ['volume.resync-stalled'], limit: 1 });
    assert.match(stalled?.message ?? '', /no report for 90 s/);
  });
});

describe('fenced reports', () => {
  it('journals each fence once, however often it is reported', async () => {
    const { clock, store, controller } = setup();
    const fenced = (epoch: number): PrimaryReportMessage => ({
      kind: 'fenced',
      volume: 'kv-data',
      epoch,
      reason: `self-fenced at epoch ${epoch}`,
    });
    await volumeReport(controller, 'node-1', fenced(2), clock.now());
    await volumeReport(controller, 'node-1', fenced(2), clock.now());
    await volumeReport(controller, 'node-2', fenced(2), clock.now());
    await volumeReport(controller, 'node-1', fenced(3), clock.now());
    await volumeReport(controller, 'node-1', fenced(3), clock.now());
    const journaled = await store.readEvents({ kinds: ['volume.fenced'] });
    assert.deepEqual(
      journaled.map((e) => e.message),
      [
        'the primary on node-1 at epoch 2 is fenced: self-fenced at epoch 2',
        'the primary on node-2 at epoch 2 is fenced: self-fenced at epoch 2',
        'the primary on node-1 at epoch 3 is fenced: self-fenced at epoch 3',
      ],
    );
  });
});
