// A site loss in the simulator at scale: N nodes in 3 sites with W workloads; every node of one
// site crashes at once. Reports the simulated time until every displaced workload is active
// again, how many failovers that took, and the wall time the run needed.
import { checkConverged } from '../src/sim/checkers.js';
import { World } from '../src/sim/world.js';

export interface SimScaleOptions {
  nodes: number;
  workloads: number;
  sites?: number;
}

export async function benchSimScale(options: SimScaleOptions): Promise<Record<string, unknown>> {
  const sites = options.sites ?? 3;
  const nodes = Array.from({ length: options.nodes }, (_, i) => ({
    name: `n${i}`,
    site: `site-${i % sites}`,
    role: i % 10 === 9 ? ('spare' as const) : ('production' as const),
    cpu: 32,
    memoryMiB: 65536,
  }));
  const workloads = Array.from({ length: options.workloads }, (_, i) => ({
    name: `w${i}`,
    driver: 'process' as const,
    process: { command: ['sim-service'] },
    resources: { cpu: 1, memoryMiB: 1024 },
    endpoints: [{ name: 'http', port: 10_000 + i }],
    probes: [{ type: 'http' as const, endpoint: 'http', intervalMs: 1000, failureThreshold: 3 }],
    availability: { priority: (i % 5) * 100 },
  }));
  const world = new World({
    seed: 1,
    nodes,
    spec: { sites: Array.from({ length: sites }, (_, i) => ({ name: `site-${i}` })), workloads },
  });
  const wallStart = performance.now();
  try {
    await world.start();
    const placedAt = await runUntil(world, 120_000, () => checkConverged(world).ok);
    const lost = nodes.filter((n) => n.site === 'site-0').map((n) => n.name);
    const displaced = [...world.workloads.values()].filter(
      (w) => w.node !== null && lost.includes(w.node),
    ).length;
    const seq = world.events.at(-1)?.seq ?? 0;
    const crashedAt = world.now();
    const cpuBefore = process.cpuUsage();
    for (const name of lost) world.nodes.get(name)!.crash();
    const restoredAt = await runUntil(
      world,
      120_000,
      () =>
        [...world.workloads.values()].every((w) => w.node !== null && !lost.includes(w.node)) &&
        checkConverged(world).ok,
    );
    const cpu = process.cpuUsage(cpuBefore);
    const failovers = world.events.filter(
      (e) => e.seq > seq && e.kind === 'failover.decided',
    ).length;
    return {
      ...options,
      sites,
      lostNodes: lost.length,
      displacedWorkloads: displaced,
      failovers,
      initialPlacementSimulatedMs: placedAt,
      siteLossToAllActiveSimulatedMs: restoredAt === undefined ? null : restoredAt - crashedAt,
      runCpuMsAfterTheLoss: Math.round((cpu.user + cpu.system) / 1000),
      wallMs: Math.round(performance.now() - wallStart),
      violations: world.violations.length,
    };
  } finally {
    await world.close();
  }
}

/** Runs in 250 ms steps until done() holds; the simulated time then, or undefined at the limit. */
async function runUntil(
  world: World,
  limitMs: number,
  done: () => boolean,
): Promise<number | undefined> {
  const end = world.now() + limitMs;
  while (world.now() < end) {
    await world.run(250);
    if (done()) return world.now();
  }
  return undefined;
}
