// The simulator's checkers, in the words of ARCHITECTURE.md section 3 (safety) and section 4
// (liveness, stability). Safety is checked after every step of a run; liveness and stability once
// the faults have stopped.
import type { World } from './world.js';

/** Never two active instances of a workload at the same epoch. (Epochs only grow, and no agent
 * starts an epoch the store does not hold, are checked as they happen, in world.ts.) */
export function checkSafety(world: World): void {
  const seen = new Map<string, number>();
  for (const process of world.table.live()) {
    const key = `${process.workload}@${process.epoch}`;
    const other = seen.get(key);
    if (other !== undefined) {
      world.violate(
        `double-active: two instances of ${process.workload} at epoch ${process.epoch}: pids ${other} and ${process.pid}`,
      );
    } else seen.set(key, process.pid);
  }
}

export interface Convergence {
  ok: boolean;
  problems: string[];
}

/** Liveness: every workload placed, healthy at its current epoch on its owner, and nothing stale runs. */
export function checkConverged(world: World): Convergence {
  const problems: string[] = [];
  const live = world.table.live();
  for (const workload of world.workloads.values()) {
    const running = live.filter((p) => p.workload === workload.name);
    if (workload.node === null) {
      problems.push(
        `${workload.name} is not placed (${workload.blockedReason ?? 'no reason recorded'})`,
      );
      continue;
    }
    const current = running.filter((p) => p.epoch === workload.epoch && p.node === workload.node);
    if (current.length !== 1)
      problems.push(
        `${workload.name}@${workload.epoch} runs ${current.length} times on its owner ${workload.node}`,
      );
    for (const stale of running.filter(
      (p) => p.epoch !== workload.epoch || p.node !== workload.node,
    )) {
      problems.push(
        `a stale instance of ${workload.name} still runs: epoch ${stale.epoch} on ${stale.node} (current ${workload.epoch} on ${workload.node})`,
      );
    }
  }
  for (const process of live) {
    if (!world.workloads.has(process.workload))
      problems.push(`pid ${process.pid} runs ${process.workload}, which no longer exists`);
  }
  return { ok: problems.length === 0, problems };
}

/** Changes of owner decided since `afterSeq` (failovers, switchovers, evictions, preemptions). */
export function movesSince(world: World, afterSeq: number): number {
  return world.events.filter(
    (e) => e.seq > afterSeq && e.kind.endsWith('.decided') && !e.kind.startsWith('placement'),
  ).length;
}

/**
 * Liveness of the fence reports, once every node is back in touch: each 'fenced' report an agent
 * made is journaled as volume.fenced, and no fence (volume, node, epoch) is journaled twice. A
 * report sent on a session that was cut but not yet closed must not be lost.
 */
export function checkFencesJournaled(world: World): string[] {
  const journaled = new Map<string, number>();
  for (const e of world.events) {
    if (e.kind !== 'volume.fenced') continue;
    const key = `${e.subject.name} on ${String(e.data?.node)} at epoch ${String(e.data?.epoch)}`;
    journaled.set(key, (journaled.get(key) ?? 0) + 1);
  }
  const problems: string[] = [];
  for (const [key, count] of journaled)
    if (count > 1) problems.push(`the fence of ${key} was journaled ${count} times`);
  for (const [name, node] of world.nodes) {
    for (const { volume, epoch } of node.fencedReports) {
      const key = `${volume} on ${name} at epoch ${epoch}`;
      if (!journaled.has(key)) problems.push(`the fence of ${key} was reported but not journaled`);
    }
  }
  return problems;
}

/** Primaries self-fenced by their agents (journaled once the agent was back in touch). */
export function selfFences(world: World): number {
  return world.events.filter(
    (e) =>
      e.kind === 'volume.fenced' &&
      typeof e.data?.reason === 'string' &&
      e.data.reason.startsWith('self-fenced'),
  ).length;
}

/** Leader elections, and writes refused because their controller no longer led. */
export function leadership(world: World): { elections: number; refusedWrites: number } {
  return {
    elections: world.events.filter((e) => e.kind === 'controller.elected').length,
    refusedWrites: world.controllerSlots.reduce((sum, s) => sum + s.writesRefusedNotLeader, 0),
  };
}
