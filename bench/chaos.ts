// The long seeded chaos run (five minutes by default) of `npm run bench`: the same schedule as the
// short form in test/chaos.test.ts, long enough for rare interleavings (a controller crash during
// a failover, a node hang across an agent restart) to turn up. Each action goes to stderr as it
// happens; the report (share of successful requests, every failover with its time to restore,
// double-active moments) is returned for bench/results/.
import { runChaos, type ChaosReport } from '../test/harness/chaos.js';

export interface ChaosBenchOptions {
  seed: number;
  /** How long the schedule runs; the cluster then settles and the report is taken. */
  durationMs?: number;
}

export const chaosDurationMsDefault = 300_000;

export function benchChaos(options: ChaosBenchOptions): Promise<ChaosReport> {
  return runChaos({
    seed: options.seed,
    durationMs: options.durationMs ?? chaosDurationMsDefault,
    log: (line) => process.stderr.write(`chaos ${line}\n`),
  });
}
