// A small line chart of one series of the controller's metrics history (/v1/metrics/history):
// a workload's response time, a node's CPU or memory. Read again at the history's own sample
// interval; an SVG with its latest, lowest and highest values in words for screen readers.
import { useEffect, useState } from 'preact/hooks';
import { ApiError, get } from '../api.js';

/** Shown: the last hour at most (the controller keeps more; Prometheus is the place for history). */
export const chartWindowMs = 60 * 60_000;
const widthPx = 320;
const heightPx = 64;

type History = {
  sampleIntervalMs: number;
  items: { labels: Record<string, string>; samples: [number, number][] }[];
};

export interface HistoryChartProps {
  title: string;
  series: string;
  labels: Record<string, string>;
  /** Turns a stored value into the shown unit (seconds to ms, ratio to %, bytes to MiB). */
  scale: number;
  unit: string;
}

export function HistoryChart(props: HistoryChartProps) {
  const [history, setHistory] = useState<History | { error: string } | undefined>();
  const query = new URLSearchParams({ series: props.series, ...props.labels });
  const key = query.toString();
  useEffect(() => {
    let current = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const read = () => {
      const since = Date.now() - chartWindowMs;
      get<History>(`/v1/metrics/history?${key}&since=${since}`)
        .then((result) => {
          if (!current) return;
          setHistory(result);
          timer = setTimeout(read, Math.max(1000, result.sampleIntervalMs));
        })
        .catch((error: unknown) => {
          if (!current) return;
          setHistory({ error: error instanceof ApiError ? error.message : String(error) });
          timer = setTimeout(read, 15_000);
        });
    };
    read();
    return () => {
      current = false;
      clearTimeout(timer);
    };
  }, [key]);
  const label = `${props.title} (${props.unit})`;
  if (history === undefined) return <p class="empty">{label}: reading…</p>;
  if ('error' in history)
    return (
      <p class="empty" role="status">
        {label}: not available ({history.error})
      </p>
    );
  const samples = history.items[0]?.samples ?? [];
  if (samples.length < 2)
    return (
      <p class="empty" data-testid={`chart-${props.series}`}>
        {label}: no samples yet (one every {Math.round(history.sampleIntervalMs / 1000)} s)
      </p>
    );
  const values = samples.map(([, v]) => v * props.scale);
  const times = samples.map(([t]) => t);
  const low = Math.min(...values);
  const high = Math.max(...values);
  const first = times[0]!;
  const span = Math.max(1, times.at(-1)! - first);
  const range = high - low || 1;
  const points = samples
    .map((_, i) => {
      const x = ((times[i]! - first) / span) * widthPx;
      const y = heightPx - ((values[i]! - low) / range) * (heightPx - 4) - 2;
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    })
    .join(' ');
  const shown = (v: number) => (v >= 100 ? Math.round(v) : Math.round(v * 10) / 10);
  const words = `${label}: now ${shown(values.at(-1)!)}, lowest ${shown(low)}, highest ${shown(high)} over ${Math.round(span / 60_000)} min`;
  return (
    <figure class="chart" data-testid={`chart-${props.series}`}>
      <figcaption>{words}</figcaption>
      <svg viewBox={`0 0 ${widthPx} ${heightPx}`} width={widthPx} height={heightPx} role="img">
        <title>{words}</title>
        <polyline points={points} fill="none" stroke="currentColor" stroke-width="1.5" />
      </svg>
    </figure>
  );
}
