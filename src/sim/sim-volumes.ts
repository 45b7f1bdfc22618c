// One simulated node's volume server for replicated volumes: the real DutyRunner (and through it
// the real primary and replica cores) over the node's simulated disks, its replication state
// "disk" and the simulated network. Disks and state survive a crash (minus what was not flushed);
// the open primaries and replicas do not. Like the real volume server, it survives an agent
// restart: only a crash of the node takes it down.
import { silentLogger, type Clock, type Rng } from '../core/ports.js';
import { DutyRunner } from '../storage/replication/duty-runner.js';
import { replicationLimits } from '../storage/replication/limits.js';
import type {
  PrimaryReport,
  ReplicationLimits,
  VolumeDuty,
  VolumeDutyPort,
} from '../storage/replication/types.js';
import { SimDisk } from './sim-disk.js';
import type { SimLinkFabric } from './sim-replication-link.js';
import { newSimStateDisk, SimStateStore } from './sim-state-store.js';

/** Replication limits of the simulation: short timeouts, so that a seed exercises them. */
export const simReplicationLimits: ReplicationLimits = replicationLimits({
  replicaAckTimeoutMs: 600,
  acceptEpochTimeoutMs: 600,
  readLeaseMs: 400,
  resyncChunkBytes: 64 * 1024,
  bitmapRegionBytes: 16 * 1024,
  resyncBytesPerSecondMax: 4 * 2 ** 20,
});

export interface SimVolumesOptions {
  node: string;
  clock: Clock;
  rng: Rng;
  fabric: SimLinkFabric;
  /** Where a primary's reports go: the node's agent, if one runs. */
  report(report: PrimaryReport): void;
  unsafeAckBeforeIsr: boolean;
}

export class SimVolumes implements VolumeDutyPort {
  readonly disks = new Map<string, SimDisk>();
  readonly stateDisk = newSimStateDisk();
  runner: DutyRunner | undefined;

  constructor(private readonly options: SimVolumesOptions) {}

  /** The volume server starts (at boot): a fresh DutyRunner, reachable from primaries again. */
  start(): void {
    const { node, clock, rng, fabric } = this.options;
    for (const disk of this.disks.values()) if (!disk.isOpen) disk.open();
    const runner = new DutyRunner({
      context: {
        node,
        clock,
        random: () => rng.next(),
        logger: silentLogger,
        limits: simReplicationLimits,
      },
      device: (volume, sizeBytes) => Promise.resolve(this.disk(volume, sizeBytes)),
      state: (volume) => new SimStateStore({ disk: this.stateDisk, volume, clock }),
      connect: fabric.connect(node),
      report: (report) => {
        if (this.runner === runner) this.options.report(report);
      },
      unsafeAckBeforeIsr: this.options.unsafeAckBeforeIsr,
    });
    this.runner = runner;
    fabric.registerAcceptor(node, (open, link) => runner.accept(open, link));
  }

  setDuties(duties: readonly VolumeDuty[]): void {
    this.runner?.setDuties(duties);
  }

  selfFence(volume: string, epoch: number, reason: string): void {
    this.runner?.selfFence(volume, epoch, reason);
  }

  /** Power loss: links break, open handles are abandoned, disks lose what was not flushed. */
  crash(): void {
    const runner = this.runner;
    this.runner = undefined;
    this.options.fabric.dropNode(this.options.node);
    for (const disk of this.disks.values()) disk.crash();
    // Its timers must not act on after the "power loss": closing fails whatever was pending.
    void runner?.close();
  }

  private disk(volume: string, sizeBytes: number): SimDisk {
    let disk = this.disks.get(volume);
    if (disk === undefined) {
      disk = new SimDisk({ sizeBytes, clock: this.options.clock, rng: this.options.rng });
      this.disks.set(volume, disk);
    }
    return disk;
  }
}
