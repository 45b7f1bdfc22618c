// The short seeded chaos run (about a minute): nodes, agents, the workload and the controller are
// killed, stopped and resumed on a seeded schedule while a client sends requests through the
// endpoint. Service must come back, and no two instances may ever run at one epoch. The long form
// is `npm run bench` (bench/chaos.ts). Replay a run with CHAOS_SEED=<seed>; CHAOS_KEEP_LOGS=<dir>
// keeps the cluster's logs and journal.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { runChaos } from './harness/chaos.js';

const seed = Number(process.env.CHAOS_SEED ?? '1');
const replay = `replay: CHAOS_SEED=${seed} node --import tsx --test test/chaos.test.ts`;
/** Under this much chaos some requests fail; the point is that service keeps coming back. */
const successShareMin = 0.5;

it(
  `chaos (seed ${seed}): service comes back and no epoch ever runs twice`,
  { timeout: 240_000 },
  async (t) => {
    const lines: string[] = [];
    const report = await runChaos({
      seed,
      durationMs: 45_000,
      log: (line) => lines.push(line),
      ...(process.env.CHAOS_KEEP_LOGS ? { keepLogsTo: process.env.CHAOS_KEEP_LOGS } : {}),
    }).catch((err: unknown) => {
      for (const line of [...lines, replay]) t.diagnostic(line);
      throw err;
    });
    const { actions, failovers, doubleActive, ...summary } = report;
    t.diagnostic(
      JSON.stringify({ ...summary, actions: actions.length, failovers: failovers.length }),
    );
    for (const line of lines) t.diagnostic(line);
    t.diagnostic(`failovers: ${JSON.stringify(failovers)}`);
    t.diagnostic(replay);

    assert.notEqual(report.settleMs, null, 'kv is active and the endpoint serves after the chaos');
    assert.deepEqual(doubleActive, [], 'two instances at one epoch');
    assert.ok(report.samples > 1000, `the sampler ran (${report.samples} samples)`);
    assert.ok(report.epochsSeen.length >= 2, `several epochs ran: ${report.epochsSeen.join(', ')}`);
    assert.ok(
      failovers.some((f) => f.kind === 'failover' && typeof f.restoreMs === 'number'),
      'at least one failover with its time to restore',
    );
    assert.ok(
      report.successShare > successShareMin,
      `share of successful requests ${report.successShare.toFixed(3)} > ${successShareMin}`,
    );
    assert.ok(report.requests > 100, `the client ran (${report.requests} requests)`);
  },
);
