// `npm run sim`: the simulator from the command line. A swarm runs in child processes (one per
// core): the TypeScript loader does not reach worker threads on Node 20.
//   SEED=42 npm run sim [-- --trace]       replays one seed and prints its trace on failure (or with --trace)
//   npm run sim -- --seeds 100000          a swarm: seeds spread over worker threads (both cores)
// Options: --from S (first seed, default 1), --workers W (default: all cores), --mix swarm|all|k1,k2,
// --hostile-network, --broken-epoch-checks (the deliberately broken build), --broken ack-before-isr|
// promote-outdated (a deliberately broken rule of replication), --replicated F (share of workloads
// with a replicated volume, 0 to 1, default 0.5), --controllers N (controllers electing a leader,
// 1 to 5, default 1; with several, the mix also draws controller-hang).
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { faultKindsFor, type FaultKind } from '../src/sim/faults.js';
import { replayCommand, runSeed, type RunOptions } from '../src/sim/run-seed.js';
import type { BrokenRule } from '../src/sim/world.js';

interface Summary {
  seeds: number;
  faults: number;
  failovers: number;
  selfFences: number;
  elections: number;
  refusedWrites: number;
  failures: { seed: number; replay: string; failures: string[] }[];
}

function parseMix(value: string, controllers: number): RunOptions['mix'] {
  if (value === 'swarm') return 'swarm';
  if (value === 'all') return undefined;
  const kinds = value.split(',');
  const known = faultKindsFor(controllers);
  for (const kind of kinds) {
    if (!(known as readonly string[]).includes(kind))
      throw new RangeError(
        `--mix: unknown fault "${kind}" with ${controllers} controller(s); expected swarm, all, or some of ${known.join(', ')}`,
      );
  }
  return kinds as FaultKind[];
}

function parseControllers(value: string): number {
  const count = Number(value);
  if (!Number.isInteger(count) || count < 1 || count > 5)
    throw new RangeError(`--controllers: expected a whole number from 1 to 5, got "${value}"`);
  return count;
}

function parseBroken(value: string): BrokenRule {
  if (value === 'ack-before-isr' || value === 'promote-outdated') return value;
  throw new RangeError(`--broken: expected ack-before-isr or promote-outdated, got "${value}"`);
}

function parseShare(value: string): number {
  const share = Number(value);
  if (value.trim() === '' || !(share >= 0 && share <= 1))
    throw new RangeError(`--replicated: expected a share from 0 to 1, got "${value}"`);
  return share;
}

async function runRange(
  from: number,
  count: number,
  base: Omit<RunOptions, 'seed'>,
  progress?: (done: number) => void,
): Promise<Summary> {
  const summary: Summary = {
    seeds: 0,
    faults: 0,
    failovers: 0,
    selfFences: 0,
    elections: 0,
    refusedWrites: 0,
    failures: [],
  };
  for (let seed = from; seed < from + count; seed++) {
    const options = { ...base, seed };
    const result = await runSeed(options);
    summary.seeds++;
    summary.faults += result.faults;
    summary.failovers += result.failovers;
    summary.selfFences += result.selfFences;
    summary.elections += result.elections;
    summary.refusedWrites += result.refusedWrites;
    if (!result.ok)
      summary.failures.push({
        seed,
        replay: replayCommand(options),
        failures: result.failures.slice(0, 5),
      });
    progress?.(summary.seeds);
  }
  return summary;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seeds: { type: 'string' },
      from: { type: 'string', default: '1' },
      workers: { type: 'string', default: String(availableParallelism()) },
      mix: { type: 'string', default: 'swarm' },
      'hostile-network': { type: 'boolean', default: false },
      'broken-epoch-checks': { type: 'boolean', default: false },
      broken: { type: 'string' },
      replicated: { type: 'string' },
      controllers: { type: 'string' },
      trace: { type: 'boolean', default: false },
    },
  });
  const controllers = values.controllers === undefined ? 1 : parseControllers(values.controllers);
  const base: Omit<RunOptions, 'seed'> = {
    mix: parseMix(values.mix, controllers),
    ...(values.controllers === undefined ? {} : { controllers }),
    ...(values['hostile-network'] ? { hostileNetwork: true } : {}),
    ...(values['broken-epoch-checks'] ? { checkEpochs: false } : {}),
    ...(values.broken === undefined ? {} : { brokenRule: parseBroken(values.broken) }),
    ...(values.replicated === undefined ? {} : { replicatedShare: parseShare(values.replicated) }),
  };
  if (process.env.SEED !== undefined && process.env.SEED !== '') {
    const seed = Number(process.env.SEED);
    if (!Number.isInteger(seed) || seed < 0)
      throw new RangeError(`SEED: expected a whole number, got "${process.env.SEED}"`);
    const result = await runSeed({ ...base, seed });
    if (values.trace || !result.ok)
      for (const line of result.trace) process.stdout.write(`${line}\n`);
    process.stdout.write(
      `seed ${seed}: ${result.ok ? 'ok' : 'FAILED'}; ${result.faults} faults, ${result.failovers} moves, ${result.selfFences} self-fences, ${result.elections} elections, ${result.refusedWrites} writes refused to a deposed leader, trace ${result.traceHash}\n`,
    );
    for (const failure of result.failures) process.stdout.write(`  ${failure}\n`);
    process.exitCode = result.ok ? 0 : 1;
    return;
  }
  const total = Number(values.seeds ?? 1000);
  const from = Number(values.from);
  const workers = Math.max(1, Math.min(Number(values.workers), total));
  if (!Number.isInteger(total) || total < 1)
    throw new RangeError(`--seeds: expected a positive whole number, got "${values.seeds}"`);
  const started = performance.now();
  const share = Math.ceil(total / workers);
  const done = new Array<number>(workers).fill(0);
  const report = setInterval(() => {
    const sum = done.reduce((a, b) => a + b, 0);
    process.stderr.write(
      `\r${sum}/${total} seeds, ${(sum / ((performance.now() - started) / 1000)).toFixed(0)} seeds/s   `,
    );
  }, 1000);
  const parts = await Promise.all(
    Array.from({ length: workers }, (_, i) => {
      const count = Math.max(0, Math.min(share, total - i * share));
      return new Promise<Summary>((resolve, reject) => {
        const worker = fork(fileURLToPath(import.meta.url), [], {
          execArgv: ['--import', 'tsx'],
          env: {
            ...process.env,
            SIM_WORKER: JSON.stringify({ from: from + i * share, count, base }),
          },
        });
        worker.on('message', (message: { done?: number; summary?: Summary }) => {
          if (message.done !== undefined) done[i] = message.done;
          if (message.summary !== undefined) resolve(message.summary);
        });
        worker.on('error', reject);
        // A worker that dies without its summary (an exception, a signal) fails the whole run.
        worker.on('exit', (code, signal) =>
          reject(
            new Error(`sim worker ${i} ended (code ${code}, signal ${signal}) before its summary`),
          ),
        );
      });
    }),
  );
  clearInterval(report);
  const seconds = (performance.now() - started) / 1000;
  const summary = parts.reduce((a, b) => ({
    seeds: a.seeds + b.seeds,
    faults: a.faults + b.faults,
    failovers: a.failovers + b.failovers,
    selfFences: a.selfFences + b.selfFences,
    elections: a.elections + b.elections,
    refusedWrites: a.refusedWrites + b.refusedWrites,
    failures: [...a.failures, ...b.failures],
  }));
  process.stderr.write('\n');
  process.stdout.write(
    `${summary.seeds} seeds in ${seconds.toFixed(1)} s (${(summary.seeds / seconds).toFixed(1)} seeds/s on ${workers} workers): ${summary.faults} faults injected, ${summary.failovers} moves, ${summary.selfFences} self-fences, ${summary.elections} elections, ${summary.refusedWrites} writes refused to a deposed leader, ${summary.failures.length} failing\n`,
  );
  for (const f of summary.failures)
    process.stdout.write(`  ${f.replay}\n    ${f.failures.join('\n    ')}\n`);
  process.exitCode = summary.failures.length === 0 ? 0 : 1;
}

if (process.env.SIM_WORKER === undefined) {
  await main();
} else {
  const { from, count, base } = JSON.parse(process.env.SIM_WORKER) as {
    from: number;
    count: number;
    base: Omit<RunOptions, 'seed'>;
  };
  const summary = await runRange(from, count, base, (done) => {
    if (done % 10 === 0) process.send?.({ done });
  });
  process.send?.({ done: summary.seeds, summary }, () => process.disconnect());
}
