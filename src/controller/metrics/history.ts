// The metrics history the console charts: named series of (time, value) samples kept in memory for
// the last historyMs, each in a bounded ring. Pure data structure: the sampler (sampler.ts) feeds
// it on the controller's clock and the API reads it. Nothing here survives a controller restart;
// Prometheus is the place for longer or durable history.

export interface HistoryLimits {
  sampleIntervalMs: number;
  historyMs: number;
  /** Most distinct series (name and labels); samples of further ones are dropped and counted. */
  seriesMax: number;
}

export type Labels = Record<string, string>;

export interface SeriesHistory {
  labels: Labels;
  /** [time in ms since the epoch, value], oldest first. */
  samples: [number, number][];
}

interface Ring {
  name: string;
  labels: Labels;
  at: number[];
  values: number[];
  /** Index of the oldest kept sample: the arrays are compacted when it grows past capacity. */
  start: number;
}

export class MetricsHistory {
  private readonly series = new Map<string, Ring>();
  private readonly capacity: number;
  /** Samples not kept because seriesMax series were already held. */
  droppedSamplesTotal = 0;

  constructor(readonly limits: HistoryLimits) {
    for (const [name, value] of Object.entries(limits)) {
      if (!Number.isInteger(value) || value <= 0)
        throw new RangeError(
          `metrics history ${name}: expected a positive whole number, got ${value}`,
        );
    }
    this.capacity = Math.ceil(limits.historyMs / limits.sampleIntervalMs) + 1;
  }

  get seriesCount(): number {
    return this.series.size;
  }

  /** Adds one sample; a non-finite value is skipped (a chart cannot draw it). */
  record(name: string, labels: Labels, at: number, value: number): void {
    if (!Number.isFinite(value)) return;
    const key = seriesKey(name, labels);
    let ring = this.series.get(key);
    if (ring === undefined) {
      if (this.series.size >= this.limits.seriesMax) {
        this.droppedSamplesTotal++;
        return;
      }
      ring = { name, labels: { ...labels }, at: [], values: [], start: 0 };
      this.series.set(key, ring);
    }
    ring.at.push(at);
    ring.values.push(value);
    if (ring.at.length - ring.start > this.capacity) ring.start++;
    if (ring.start >= this.capacity) compact(ring);
  }

  /** Drops samples older than historyMs before now, and series left with none. */
  prune(now: number): void {
    const oldest = now - this.limits.historyMs;
    for (const [key, ring] of this.series) {
      while (ring.start < ring.at.length && ring.at[ring.start]! < oldest) ring.start++;
      if (ring.start === ring.at.length) this.series.delete(key);
      else if (ring.start >= this.capacity) compact(ring);
    }
  }

  /** Names of the series held now, sorted. */
  names(): string[] {
    return [...new Set([...this.series.values()].map((r) => r.name))].sort();
  }

  /** Every series of this name whose labels include `filter`, with samples at or after sinceMs. */
  query(name: string, filter: Labels, sinceMs = 0): SeriesHistory[] {
    const out: SeriesHistory[] = [];
    for (const ring of this.series.values()) {
      if (ring.name !== name) continue;
      if (!Object.entries(filter).every(([k, v]) => ring.labels[k] === v)) continue;
      const samples: [number, number][] = [];
      for (let i = ring.start; i < ring.at.length; i++)
        if (ring.at[i]! >= sinceMs) samples.push([ring.at[i]!, ring.values[i]!]);
      if (samples.length > 0) out.push({ labels: { ...ring.labels }, samples });
    }
    return out.sort((a, b) => seriesKey(name, a.labels).localeCompare(seriesKey(name, b.labels)));
  }
}

function seriesKey(name: string, labels: Labels): string {
  const pairs = Object.keys(labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`);
  return `${name}{${pairs.join(',')}}`;
}

function compact(ring: Ring): void {
  ring.at.splice(0, ring.start);
  ring.values.splice(0, ring.start);
  ring.start = 0;
}
