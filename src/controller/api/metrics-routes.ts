// The metrics routes: GET /metrics (Prometheus text format, Bearer API token like the rest of the
// API, because scrapers send one and the figures name every node and workload) and
// GET /v1/metrics/history (the in-memory series the console charts; docs/metrics.md).
import type { Hono } from 'hono';
import { ContinuumError } from '../../core/errors.js';
import type { ControllerMetrics } from '../metrics/controller-metrics.js';
import { historySeries } from '../metrics/history-sampler.js';
import { tokenMatches } from './auth.js';

/** Label filters one history query may carry. */
export const historyLabelFiltersMax = 8;
const labelName = /^[a-z][a-z0-9_]{0,63}$/;

export function mountMetricsRoutes(
  app: Hono,
  metrics: ControllerMetrics,
  options: { apiToken: string },
): void {
  app.get('/metrics', async (c) => {
    if (!tokenMatches(c.req.header('authorization'), options.apiToken)) {
      throw new ContinuumError(
        'CONTINUUM_ERR_UNAUTHORIZED',
        'expected header "Authorization: Bearer <api token>"',
      );
    }
    return c.body(await metrics.scrape(), 200, { 'content-type': metrics.contentType });
  });
  app.get('/v1/metrics/history', (c) => {
    const { series, since, ...labels } = c.req.query();
    const history = metrics.sampler.history;
    const limits = {
      sampleIntervalMs: history.limits.sampleIntervalMs,
      historyMs: history.limits.historyMs,
    };
    if (series === undefined) return c.json({ series: historySeries, ...limits });
    if (!(historySeries as readonly string[]).includes(series))
      throw bad(`series: expected one of ${historySeries.join(', ')}, got "${series}"`);
    let sinceMs = 0;
    if (since !== undefined) {
      sinceMs = Number(since);
      if (!/^\d+$/.test(since) || !Number.isSafeInteger(sinceMs))
        throw bad(`since: expected milliseconds since the epoch, got "${since}"`);
    }
    const filters = Object.entries(labels);
    if (filters.length > historyLabelFiltersMax)
      throw bad(`expected at most ${historyLabelFiltersMax} label filters, got ${filters.length}`);
    for (const [name] of filters)
      if (!labelName.test(name)) throw bad(`label filter "${name}": expected a label name`);
    return c.json({ series, ...limits, items: history.query(series, labels, sinceMs) });
  });
}

function bad(message: string): ContinuumError {
  return new ContinuumError('CONTINUUM_ERR_BAD_REQUEST', `invalid query: ${message}`);
}
