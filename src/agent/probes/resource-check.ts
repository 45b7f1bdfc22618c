// The resource probe's check: CPU, resident memory and open files of the instance's processes,
// from the driver's stats. CPU is a rate, so each check measures the CPU time used since the
// previous one; the first check only takes its starting point.
import type { ProbeSpec } from '../../core/probe-spec.js';
import type { InstanceStats } from '../drivers/driver.js';
import type { ProbeResult } from './probe.js';

type ResourceProbe = Extract<ProbeSpec, { type: 'resource' }>;

const mebibyte = 1024 * 1024;

export class ResourceCheck {
  private last: { at: number; cpuSeconds: number } | undefined;

  constructor(private readonly probe: ResourceProbe) {}

  /** Forgets the CPU starting point (a new process starts from zero CPU time). */
  reset(): void {
    this.last = undefined;
  }

  /** Judges one reading of the stats, taken at `now` (ms). */
  judge(stats: InstanceStats, now: number): ProbeResult {
    const over: string[] = [];
    const { cpuPercentMax, memoryMiBMax, openFilesMax } = this.probe;
    const previous = this.last;
    this.last = { at: now, cpuSeconds: stats.cpuSeconds };
    if (cpuPercentMax !== undefined && previous !== undefined && now > previous.at) {
      const percent = (100_000 * (stats.cpuSeconds - previous.cpuSeconds)) / (now - previous.at);
      if (percent > cpuPercentMax) over.push(`CPU ${Math.round(percent)}% above ${cpuPercentMax}%`);
    }
    const memoryMiB = stats.rssBytes / mebibyte;
    if (memoryMiBMax !== undefined && memoryMiB > memoryMiBMax)
      over.push(`memory ${Math.round(memoryMiB)} MiB above ${memoryMiBMax} MiB`);
    if (
      openFilesMax !== undefined &&
      stats.openFiles !== undefined &&
      stats.openFiles > openFilesMax
    )
      over.push(`${stats.openFiles} open files above ${openFilesMax}`);
    if (over.length === 0) return { ok: true, durationMs: 0 };
    return { ok: false, durationMs: 0, error: over.join(', '), answered: true };
  }
}
