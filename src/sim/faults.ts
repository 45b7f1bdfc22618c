// Faults drawn from the seed: which ones a run may use (a mix), and how each is injected into the
// world. Every injection is written to the trace, so a failing run says what happened to it.
import type { SeededRng } from './rng.js';
import type { World } from './world.js';

export const faultKinds = [
  'node-crash',
  'node-hang',
  'agent-restart',
  'process-crash',
  'health-flap',
  'partition-node',
  'isolate-node',
  'split-cluster',
  'controller-crash',
  'lossy-network',
] as const;

/** Faults that need several controllers; drawn only in runs that have them. */
export const controllersFaultKinds = ['controller-hang'] as const;

export type FaultKind = (typeof faultKinds)[number] | (typeof controllersFaultKinds)[number];

/** Every kind a run with this many controllers may draw. */
export function faultKindsFor(controllers: number): readonly FaultKind[] {
  return controllers > 1 ? [...faultKinds, ...controllersFaultKinds] : faultKinds;
}

/** A swarm run draws its own mix: a random subset of the kinds, so rare combinations get weight. */
export function drawMix(rng: SeededRng, kinds: readonly FaultKind[] = faultKinds): FaultKind[] {
  const mix = kinds.filter(() => rng.chance(0.5));
  return mix.length > 0 ? mix : [rng.pick(kinds)];
}

/** Injects one fault; returns the simulated time after which it is over (or undefined if instant). */
export async function inject(world: World, kind: FaultKind, rng: SeededRng): Promise<void> {
  const names = [...world.nodes.keys()];
  const name = rng.pick(names);
  const node = world.nodes.get(name)!;
  const durationMs = rng.between(500, 4000);
  const controllers = world.controllerAddresses;
  world.note(
    `fault ${kind} ${kind.includes('cluster') || kind.startsWith('controller') || kind.startsWith('lossy') ? '' : name} for ${durationMs} ms`,
  );
  switch (kind) {
    case 'node-crash':
      if (!node.alive) return;
      node.crash();
      world.clock.setTimeout(() => void node.boot(), durationMs * 2);
      return;
    case 'node-hang':
      node.clock.hang(world.clock.now() + durationMs);
      return;
    case 'agent-restart':
      if (!node.alive) return;
      node.killAgent();
      world.closeSessionsOf(name);
      world.clock.setTimeout(() => void node.boot(), rng.between(50, 1500));
      return;
    case 'process-crash': {
      const victims = world.table.live().filter((p) => p.node === name);
      if (victims.length === 0) return;
      const victim = rng.pick(victims);
      world.table.end(victim.pid, { code: null, signal: 'SIGKILL', at: world.clock.now() });
      return;
    }
    case 'health-flap': {
      const victims = world.table.live().filter((p) => p.node === name);
      if (victims.length === 0) return;
      const victim = rng.pick(victims);
      victim.healthy = false;
      world.clock.setTimeout(() => (victim.healthy = true), durationMs);
      return;
    }
    case 'partition-node':
      for (const controller of controllers) world.network.partition(name, controller);
      world.clock.setTimeout(() => {
        for (const controller of controllers) world.network.heal(name, controller);
      }, durationMs);
      return;
    case 'isolate-node':
      for (const other of [...names, ...controllers])
        if (other !== name) world.network.partition(name, other);
      world.clock.setTimeout(() => {
        for (const other of [...names, ...controllers])
          if (other !== name) world.network.heal(name, other);
      }, durationMs);
      return;
    case 'split-cluster': {
      const half = names.filter(() => rng.chance(0.5));
      for (const n of half) for (const c of controllers) world.network.partition(n, c);
      world.clock.setTimeout(() => {
        for (const n of half) for (const c of controllers) world.network.heal(n, c);
      }, durationMs);
      return;
    }
    case 'controller-crash': {
      if (world.controller === undefined) return;
      const slot = await world.crashController();
      world.clock.setTimeout(() => void world.startController(slot), durationMs);
      return;
    }
    case 'controller-hang':
      world.hangController(durationMs, rng.chance(0.5));
      return;
    case 'lossy-network':
      world.network.faults = {
        delayMsMin: 1,
        delayMsMax: rng.between(5, 200),
        lossProbability: rng.next() * 0.05,
        duplicateProbability: rng.next() * 0.1,
      };
      world.clock.setTimeout(
        () =>
          (world.network.faults = {
            delayMsMin: 1,
            delayMsMax: 3,
            lossProbability: 0,
            duplicateProbability: 0,
          }),
        durationMs,
      );
      return;
  }
}
