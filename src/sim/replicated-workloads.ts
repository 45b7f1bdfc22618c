// Replicated volumes in a simulation run: a writer per workload that declares one (each live
// instance with an open primary at its epoch may be the one that writes next, stale ones too, so
// fencing is exercised), and the end-of-run checks: the writer's final read-back, every in-sync
// copy identical to the primary's (compared by checksum), and redundancy restored.
import type { TimerHandle } from '../core/ports.js';
import { isReplicated } from '../core/spec.js';
import type { SeededRng } from './rng.js';
import { SimWriter, type SimWriterTarget } from './sim-writer.js';
import type { World } from './world.js';

/** How often each writer gets a chance to issue its next operation. */
export const simWriterStepMs = 50;

export class ReplicatedWorkloads {
  readonly writers = new Map<string, SimWriter>();
  private timer: TimerHandle | undefined;

  constructor(
    private readonly world: World,
    private readonly rng: SeededRng,
  ) {
    for (const workload of world.options.spec.workloads ?? []) {
      const volume = (workload.volumes ?? []).find((v) =>
        isReplicated({ replicas: v.replicas ?? 1 }),
      );
      if (volume === undefined) continue;
      this.writers.set(
        workload.name,
        new SimWriter(
          {
            now: () => world.now(),
            note: (line) => world.note(line),
            violate: (message) => world.violate(message),
            lastCrashAt: (node) => {
              const at = world.nodes.get(node)?.lastCrashAt ?? 0;
              return at === 0 ? 0 : at - 1_700_000_000_000;
            },
          },
          workload.name,
          volume.name,
        ),
      );
    }
  }

  start(): void {
    if (this.writers.size === 0) return;
    const tick = () => {
      for (const writer of this.writers.values()) {
        const targets = this.targets(writer);
        writer.step(targets.length === 0 ? undefined : this.rng.pick(targets));
      }
      this.timer = this.world.clock.setTimeout(tick, simWriterStepMs);
    };
    this.timer = this.world.clock.setTimeout(tick, simWriterStepMs);
  }

  stop(): void {
    if (this.timer !== undefined) this.world.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Every live instance of the workload whose node has an open, unfenced primary at its epoch. */
  private targets(writer: SimWriter): SimWriterTarget[] {
    const targets: SimWriterTarget[] = [];
    for (const process of this.world.table.live()) {
      if (process.workload !== writer.workload) continue;
      const node = this.world.nodes.get(process.node);
      const runner = node?.alive ? node.volumes.runner : undefined;
      const primary = runner?.primary(writer.volume);
      if (primary === undefined || primary.fenced) continue;
      if (runner?.primaryEpoch(writer.volume) !== process.epoch) continue;
      targets.push({ node: process.node, epoch: process.epoch, primary });
    }
    return targets;
  }

  /**
   * Workloads left unplaced for a reason the rules require: every in-sync copy of their volume is
   * on a node without room for them (up, but full), and no other node may be promoted (safety
   * before availability). The checker does not count these as liveness failures.
   */
  waitingForRoom(): Set<string> {
    const waiting = new Set<string>();
    const owners = [...this.world.workloads.values()];
    for (const record of owners) {
      if (record.node !== null || record.volumes === undefined) continue;
      const inSync = Object.values(record.volumes)
        .map((v) => v.isr)
        .reduce((common, isr) => common.filter((n) => isr.includes(n)));
      const full = inSync.every((name) => {
        const node = this.world.nodes.get(name);
        if (node === undefined || !node.alive) return false;
        const used = owners
          .filter((w) => w.node === name)
          .reduce((sum, w) => sum + w.spec.resources.cpu, 0);
        return node.spec.cpu - used < record.spec.resources.cpu;
      });
      if (inSync.length > 0 && full) waiting.add(record.name);
    }
    return waiting;
  }

  /** After the faults stopped and the writers did: problems found (safety ones go to the world). */
  async finalChecks(waiting: ReadonlySet<string>): Promise<string[]> {
    const problems: string[] = [];
    for (const writer of this.writers.values()) {
      if (waiting.has(writer.workload)) continue;
      const record = this.world.workloads.get(writer.workload);
      const owner = record?.node ?? undefined;
      const target =
        owner === undefined ? undefined : this.ownerTarget(writer, owner, record?.epoch ?? 0);
      let outcome: { problem: string | undefined } | undefined;
      void writer.finalCheck(target).then(
        (problem) => (outcome = { problem }),
        (error: unknown) => (outcome = { problem: `the final read-back failed: ${String(error)}` }),
      );
      await this.world.run(1_000);
      // A primary that holds its operations (its copy was not closed cleanly) never answers.
      if (outcome === undefined)
        problems.push(
          `liveness: the final read-back of ${writer.volume} through the primary on ${owner ?? 'no node'} did not complete`,
        );
      else if (outcome.problem !== undefined) problems.push(`liveness: ${outcome.problem}`);
      const copies = record?.volumes?.[writer.volume];
      const wanted = record?.spec.volumes.find((v) => v.name === writer.volume)?.replicas ?? 0;
      if (copies !== undefined && copies.isr.length < wanted)
        problems.push(
          `liveness: ${writer.volume} has ${copies.isr.length} of ${wanted} copies in sync (${copies.isr.join(', ')}) after the faults stopped`,
        );
      if (owner !== undefined && copies !== undefined)
        await this.compareCopies(writer.volume, owner, copies.isr);
    }
    return problems;
  }

  private ownerTarget(
    writer: SimWriter,
    owner: string,
    epoch: number,
  ): SimWriterTarget | undefined {
    const runner = this.world.nodes.get(owner)?.volumes.runner;
    const primary = runner?.primary(writer.volume);
    if (primary === undefined || runner?.primaryEpoch(writer.volume) !== epoch) return undefined;
    return { node: owner, epoch, primary };
  }

  /** Every in-sync copy holds what the primary holds, block by block (by checksum). */
  private async compareCopies(
    volume: string,
    owner: string,
    isr: readonly string[],
  ): Promise<void> {
    const primaryDisk = this.world.nodes.get(owner)?.volumes.disks.get(volume);
    if (primaryDisk === undefined) return;
    const blocks = primaryDisk.sizeBytes / primaryDisk.blockSizeBytes;
    const reads = isr.map((node) => {
      const disk = this.world.nodes.get(node)?.volumes.disks.get(volume);
      return disk === undefined ? Promise.resolve(undefined) : disk.readChecksums(0, blocks);
    });
    const all = Promise.all(reads);
    await this.world.run(500);
    const sums = await all;
    const reference = sums[isr.indexOf(owner)];
    if (reference === undefined) return;
    isr.forEach((node, i) => {
      const other = sums[i];
      if (other === undefined || node === owner) return;
      const differ = reference.checksums.findIndex((crc, block) => other.checksums[block] !== crc);
      if (differ >= 0)
        this.world.violate(
          `${volume}: the in-sync copy on ${node} differs from the primary's on ${owner} (first at block ${differ})`,
        );
    });
  }
}
