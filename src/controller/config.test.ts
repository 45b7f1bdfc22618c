// Controller config validation of the metrics history limits: each named in the error it raises.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { controllerConfig, defaultControllerConfig, metricsSamplesPerSeriesMax } from './config.js';

describe('controller config: metrics history', () => {
  it('defaults to a 15 s sample for 6 h, within the samples a series may hold', () => {
    const config = controllerConfig();
    assert.equal(config.metricsSampleIntervalMs, 15_000);
    assert.equal(config.metricsHistoryMs, 21_600_000);
    assert.ok(
      config.metricsHistoryMs / config.metricsSampleIntervalMs <= metricsSamplesPerSeriesMax,
    );
  });

  it('refuses a history shorter than one sample or longer than the samples a series may hold', () => {
    assert.throws(
      () => controllerConfig({ metricsSampleIntervalMs: 60_000, metricsHistoryMs: 1000 }),
      /metricsHistoryMs/,
    );
    assert.throws(
      () => controllerConfig({ metricsSampleIntervalMs: 1, metricsHistoryMs: 3_600_000 }),
      /metricsHistoryMs/,
    );
  });

  it('refuses a series limit that is not a positive whole number', () => {
    for (const metricsSeriesMax of [0, -1, 1.5])
      assert.throws(() => controllerConfig({ metricsSeriesMax }), /metricsSeriesMax/);
    assert.equal(controllerConfig(defaultControllerConfig).metricsSeriesMax, 1000);
  });
});
