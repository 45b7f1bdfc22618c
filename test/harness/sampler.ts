// Samples what really runs (from /proc) every few milliseconds and records any moment at which
// two live processes of one workload carried the same epoch: the double-active that safety forbids.
import { scanWorkloads, type WorkloadProcess } from './cluster.js';

export class DoubleActiveSampler {
  readonly violations: { at: number; workload: string; epoch: number; pids: number[] }[] = [];
  samples = 0;
  readonly epochsSeen = new Set<string>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly dir: string,
    private readonly intervalMs = 10,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.sample(), this.intervalMs);
  }

  sample(): WorkloadProcess[] {
    this.samples++;
    const live = scanWorkloads().filter((p) => p.cwd.startsWith(this.dir));
    const byEpoch = new Map<string, number[]>();
    for (const p of live) {
      const key = `${p.workload}@${p.epoch}`;
      this.epochsSeen.add(key);
      byEpoch.set(key, [...(byEpoch.get(key) ?? []), p.pid]);
    }
    for (const [key, pids] of byEpoch) {
      if (pids.length > 1) {
        const [workload, epoch] = key.split('@');
        this.violations.push({ at: Date.now(), workload: workload!, epoch: Number(epoch), pids });
      }
    }
    return live;
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
  }
}
