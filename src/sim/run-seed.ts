// One simulation run as a pure function of its seed and the code: a cluster and workloads drawn
// from the seed, a schedule of faults, then a quiet period in which liveness and stability are
// checked. Safety is checked after every step. A failure carries the command that replays it.
import {
  checkConverged,
  checkFencesJournaled,
  checkSafety,
  leadership,
  movesSince,
  selfFences,
} from './checkers.js';
import { drawMix, faultKindsFor, inject, type FaultKind } from './faults.js';
import { SeededRng, traceHash } from './rng.js';
import { ReplicatedWorkloads } from './replicated-workloads.js';
import { World, type BrokenRule } from './world.js';

export interface RunOptions {
  seed: number;
  /** Simulated time during which faults are injected. */
  faultWindowMs?: number;
  /** Bound within which, once faults stop, every workload must be active again. */
  settleMs?: number;
  /** Fault kinds to draw from; the swarm draws a mix per seed when this is 'swarm'. */
  mix?: readonly FaultKind[] | 'swarm';
  checkEpochs?: boolean;
  /** A hostile network for the whole fault window: long delays, many duplicates, some loss. */
  hostileNetwork?: boolean;
  /** A deliberately broken rule of replication (the checkers must catch it). */
  brokenRule?: BrokenRule;
  /** Share of workloads that get a replicated volume (default 0.5). */
  replicatedShare?: number;
  /** Controllers electing a leader over the store (default 1: the only controller leads). */
  controllers?: number;
}

export interface RunResult {
  seed: number;
  ok: boolean;
  failures: string[];
  faults: number;
  failovers: number;
  /** Primaries their agents fenced, cut off from the controller while writes waited. */
  selfFences: number;
  /** With several controllers: elections, and writes refused to a controller that no longer led. */
  elections: number;
  refusedWrites: number;
  traceHash: string;
  trace: string[];
  simulatedMs: number;
}

/** The command that replays a run exactly, with the options it ran with. */
export function replayCommand(options: RunOptions): string {
  const flags: string[] = [];
  if (options.mix !== 'swarm')
    flags.push(`--mix ${options.mix === undefined ? 'all' : options.mix.join(',')}`);
  if (options.hostileNetwork) flags.push('--hostile-network');
  if (options.checkEpochs === false) flags.push('--broken-epoch-checks');
  if (options.brokenRule !== undefined) flags.push(`--broken ${options.brokenRule}`);
  if (options.replicatedShare !== undefined) flags.push(`--replicated ${options.replicatedShare}`);
  if (options.controllers !== undefined) flags.push(`--controllers ${options.controllers}`);
  return `SEED=${options.seed} npm run sim${flags.length > 0 ? ` -- ${flags.join(' ')}` : ''}`;
}

export async function runSeed(options: RunOptions): Promise<RunResult> {
  const rng = new SeededRng(options.seed);
  const shape = rng.fork('shape');
  const nodeCount = shape.between(3, 6);
  const spares = shape.between(1, 2);
  const nodes = Array.from({ length: nodeCount }, (_, i) => ({
    name: i < nodeCount - spares ? `node-${i + 1}` : `spare-${i - (nodeCount - spares) + 1}`,
    site: 'a',
    role: i < nodeCount - spares ? ('production' as const) : ('spare' as const),
    cpu: 4,
    memoryMiB: 4096,
  }));
  const workloadCount = shape.between(1, Math.min(8, (nodeCount - 1) * 2));
  // Drawn from a stream of their own, so that adding volumes left every other draw of a seed as it was.
  const volumeDraws = rng.fork('volume-shape');
  const workloads = Array.from({ length: workloadCount }, (_, i) => ({
    name: `w${i + 1}`,
    driver: 'process' as const,
    process: { command: ['sim-service'] },
    resources: { cpu: 1, memoryMiB: 512 },
    endpoints: [{ name: 'http', port: 9000 + i }],
    probes: [{ type: 'http' as const, endpoint: 'http', intervalMs: 500, failureThreshold: 2 }],
    availability: { priority: shape.between(0, 4) * 100 },
    volumes: volumeDraws.chance(options.replicatedShare ?? 0.5)
      ? [
          {
            name: `v${i + 1}`,
            sizeMiB: 1,
            replicas: Math.min(nodeCount, volumeDraws.between(2, 3)),
            mountPath: '/data',
          },
        ]
      : [],
  }));
  const world = new World({
    seed: options.seed,
    nodes,
    spec: { sites: [{ name: 'a' }], workloads },
    driftPpmMax: 200,
    ...(options.checkEpochs === undefined ? {} : { checkEpochs: options.checkEpochs }),
    ...(options.brokenRule === undefined ? {} : { brokenRule: options.brokenRule }),
    ...(options.controllers === undefined ? {} : { controllers: options.controllers }),
  });
  const replicated = new ReplicatedWorkloads(world, rng.fork('writers'));
  const faultsRng = rng.fork('faults');
  const kinds = faultKindsFor(options.controllers ?? 1);
  const mix = options.mix === 'swarm' ? drawMix(faultsRng, kinds) : (options.mix ?? kinds);
  const faultWindowMs = options.faultWindowMs ?? 15_000;
  const settleMs = options.settleMs ?? 14_000;
  const failures: string[] = [];
  let faults = 0;
  try {
    await world.start();
    replicated.start();
    const check = () => checkSafety(world);
    await world.run(2_000, check);
    if (options.hostileNetwork)
      world.network.faults = {
        delayMsMin: 1,
        delayMsMax: 3000,
        lossProbability: 0.01,
        duplicateProbability: 0.3,
      };
    const end = world.clock.now() + faultWindowMs;
    while (world.clock.now() < end) {
      await world.run(faultsRng.between(200, 2_500), check);
      if (world.clock.now() >= end) break;
      await inject(world, faultsRng.pick(mix), faultsRng);
      faults++;
    }
    await heal(world);
    await world.run(settleMs / 2, check);
    const quietSeq = world.events.at(-1)?.seq ?? 0;
    await world.run(settleMs / 2, check);
    replicated.stop();
    const converged = checkConverged(world);
    const waiting = replicated.waitingForRoom();
    for (const name of waiting) world.note(`${name} waits for room on a node with an in-sync copy`);
    const problems = converged.problems.filter(
      (p) => ![...waiting].some((name) => p.startsWith(`${name} is not placed`)),
    );
    if (problems.length > 0)
      failures.push(
        ...problems.map((p) => `liveness: ${p} (${settleMs} ms after the faults stopped)`),
      );
    failures.push(...(await replicated.finalChecks(waiting)));
    failures.push(...checkFencesJournaled(world).map((p) => `liveness: ${p}`));
    const lateMoves = movesSince(world, quietSeq);
    if (lateMoves > 0) failures.push(`stability: ${lateMoves} moves decided while nothing failed`);
    const failovers = movesSince(world, 0);
    if (failovers > (faults + 1) * workloadCount)
      failures.push(
        `stability: ${failovers} moves for ${faults} faults and ${workloadCount} workloads`,
      );
    failures.unshift(...world.violations.map((v) => `safety: ${v}`));
    return {
      seed: options.seed,
      ok: failures.length === 0,
      failures,
      faults,
      failovers,
      selfFences: selfFences(world),
      ...leadership(world),
      traceHash: traceHash(world.trace),
      trace: world.trace,
      simulatedMs: world.now(),
    };
  } finally {
    await world.close();
  }
}

/** Faults stop: partitions heal, hung nodes resume, crashed nodes and the controller come back. */
async function heal(world: World): Promise<void> {
  world.note('faults stop: heal everything');
  world.network.healAll();
  world.network.faults = {
    delayMsMin: 1,
    delayMsMax: 3,
    lossProbability: 0,
    duplicateProbability: 0,
  };
  // Let pending restarts (scheduled boots) happen first, then boot what is still down.
  await world.run(4_000);
  await world.startControllers();
  for (const node of world.nodes.values()) if (!node.alive) await node.boot();
  for (const process of world.table.live()) process.healthy = true;
}
