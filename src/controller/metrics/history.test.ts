// The metrics history's bounds: a series keeps at most historyMs of samples, at most seriesMax
// series are held (further samples are dropped and counted), and queries filter by labels and time.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MetricsHistory } from './history.js';

describe('metrics history', () => {
  const limits = { sampleIntervalMs: 1000, historyMs: 10_000, seriesMax: 3 };

  it('keeps a bounded window of samples per series, oldest first', () => {
    const history = new MetricsHistory(limits);
    for (let t = 0; t <= 100_000; t += 1000) {
      history.record('instances', { state: 'healthy' }, t, t / 1000);
      history.prune(t);
    }
    const [series] = history.query('instances', {});
    assert.deepEqual(series!.labels, { state: 'healthy' });
    assert.equal(series!.samples.length, 11, 'ten seconds at one a second, both ends included');
    assert.deepEqual(series!.samples[0], [90_000, 90]);
    assert.deepEqual(series!.samples.at(-1), [100_000, 100]);
  });

  it('holds at most seriesMax series and counts the samples it drops', () => {
    const history = new MetricsHistory(limits);
    for (const node of ['a', 'b', 'c', 'd', 'e'])
      history.record('node_cpu_usage_ratio', { node }, 1, 0.5);
    assert.equal(history.seriesCount, 3);
    assert.equal(history.droppedSamplesTotal, 2);
  });

  it('filters by labels and time, and drops series that go quiet', () => {
    const history = new MetricsHistory(limits);
    history.record('node_cpu_usage_ratio', { node: 'a' }, 1000, 0.1);
    history.record('node_cpu_usage_ratio', { node: 'a' }, 2000, 0.2);
    history.record('node_cpu_usage_ratio', { node: 'b' }, 2000, 0.3);
    history.record('failovers_total', {}, 2000, Number.NaN);
    assert.deepEqual(history.query('node_cpu_usage_ratio', { node: 'a' }, 1500), [
      { labels: { node: 'a' }, samples: [[2000, 0.2]] },
    ]);
    assert.deepEqual(
      history.query('failovers_total', {}),
      [],
      'a value a chart cannot draw is skipped',
    );
    history.prune(13_000);
    assert.equal(history.seriesCount, 0);
  });

  it('refuses limits that are not positive whole numbers', () => {
    assert.throws(() => new MetricsHistory({ ...limits, seriesMax: 0 }), /seriesMax/);
  });
});
