// A probe's recent checks and its verdict: failing once failureThreshold checks in a row failed,
// or once a latency quantile or the error rate over the sliding window crosses its limit. Pure
// (time comes in as an argument), so the verdict's arithmetic is tested without a clock.
import type { ProbeSpec } from '../../core/probe-spec.js';

/** Checks kept per probe, whatever its window: a 1 ms interval over an hour would be 3.6 million. */
export const probeWindowSamplesMax = 1000;

export interface ProbeSample {
  at: number;
  ok: boolean;
  durationMs: number;
}

export type ProbeVerdict = { failing: false } | { failing: true; reason: string };

/** The value below which `quantile` of the sorted values lie (nearest rank). */
export function quantileOf(sortedValues: readonly number[], quantile: number): number {
  if (sortedValues.length === 0) return 0;
  const rank = Math.ceil(quantile * sortedValues.length);
  return sortedValues[Math.min(sortedValues.length, Math.max(1, rank)) - 1]!;
}

export class ProbeWindow {
  private samples: ProbeSample[] = [];
  private failuresInRow = 0;

  constructor(private readonly probe: ProbeSpec) {}

  get consecutiveFailures(): number {
    return this.failuresInRow;
  }

  add(sample: ProbeSample): void {
    this.samples.push(sample);
    if (this.samples.length > probeWindowSamplesMax) this.samples.shift();
    this.failuresInRow = sample.ok ? 0 : this.failuresInRow + 1;
  }

  /** Forgets every check: a restarted instance or a remediation starts a new window. */
  clear(): void {
    this.samples = [];
    this.failuresInRow = 0;
  }

  verdict(now: number): ProbeVerdict {
    const probe = this.probe;
    if (this.failuresInRow >= probe.failureThreshold) {
      return { failing: true, reason: `${this.failuresInRow} checks in a row failed` };
    }
    if (probe.type === 'resource') return { failing: false };
    if (probe.latency !== undefined) {
      const { thresholdMs, quantile, windowMs, samplesMin } = probe.latency;
      const durations = this.within(now, windowMs).map((s) => s.durationMs);
      if (durations.length >= samplesMin) {
        const value = quantileOf(
          durations.sort((a, b) => a - b),
          quantile,
        );
        if (value > thresholdMs) {
          return {
            failing: true,
            reason: `p${Math.round(quantile * 100)} response time ${Math.round(value)} ms over the last ${durations.length} checks (${windowMs / 1000} s), above ${thresholdMs} ms`,
          };
        }
      }
    }
    if (probe.errorRate !== undefined) {
      const { max, windowMs, samplesMin } = probe.errorRate;
      const recent = this.within(now, windowMs);
      const failed = recent.filter((s) => !s.ok).length;
      if (recent.length >= samplesMin && failed / recent.length > max) {
        return {
          failing: true,
          reason: `${failed} of the last ${recent.length} checks failed (${windowMs / 1000} s), above ${Math.round(max * 100)}%`,
        };
      }
    }
    return { failing: false };
  }

  private within(now: number, windowMs: number): ProbeSample[] {
    return this.samples.filter((s) => now - s.at <= windowMs);
  }
}
