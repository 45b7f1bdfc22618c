// A primary's 'fenced' report is journaled once: an agent that could not tell whether its session
// delivered the report sends it again after its next welcome.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PrimaryReportMessage } from '../../core/protocol.js';
import { FakeClock } from '../../sim/fake-clock.js';
import { MemoryStore } from '../../store/memory.js';
import { volumeReport, type ResyncView } from './reports.js';

describe('fenced reports', () => {
  it('journals each fence once, however often it is reported', async () => {
    const clock = new FakeClock();
    const store = new MemoryStore({ clock });
    const controller = {
      store,
      config: { writeAttemptsMax: 3 },
      resyncs: new Map<string, ResyncView>(),
      poke: () => undefined,
    };
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
