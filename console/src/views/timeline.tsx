// A workload's timeline: each change of owner with the time and duration of every step (detect,
// decide, start, healthy) and the time to restore service; the one in progress; and restarts in
// place. Completed steps come from /v1/failovers, the live one from the workload's transition.
import { Fragment, type ComponentChildren } from 'preact';
import { clock, durationMs } from '../format.js';
import type { FailoverView, JournalEvent, Transition } from '../types.js';

interface Step {
  name: 'detect' | 'decide' | 'start' | 'healthy';
  /** When the step ended. */
  at: number | undefined;
  ms: number | undefined;
}

/** Step end times of a completed change of owner, counted back from when it became healthy. */
export function completedSteps(f: FailoverView): Step[] {
  const healthyAt = f.at;
  const startedAt = f.healthyMs === undefined ? undefined : healthyAt - f.healthyMs;
  const decidedAt =
    startedAt === undefined || f.startMs === undefined ? undefined : startedAt - f.startMs;
  const detectedAt =
    decidedAt === undefined || f.decideMs === undefined ? undefined : decidedAt - f.decideMs;
  return [
    { name: 'detect', at: detectedAt, ms: f.detectMs },
    { name: 'decide', at: decidedAt, ms: f.decideMs },
    { name: 'start', at: startedAt, ms: f.startMs },
    { name: 'healthy', at: healthyAt, ms: f.healthyMs },
  ];
}

function liveSteps(t: Transition): Step[] {
  const since = (a: number | undefined, b: number | undefined) =>
    a === undefined || b === undefined ? undefined : a - b;
  return [
    { name: 'detect', at: t.detectedAt, ms: since(t.detectedAt, t.failedAt) },
    { name: 'decide', at: t.decidedAt, ms: since(t.decidedAt, t.detectedAt) },
    { name: 'start', at: t.startedAt, ms: since(t.startedAt, t.decidedAt) },
    { name: 'healthy', at: t.healthyAt, ms: since(t.healthyAt, t.startedAt) },
  ];
}

function Steps(props: { steps: Step[] }) {
  const total = props.steps.reduce((sum, s) => sum + (s.ms ?? 0), 0);
  return (
    <>
      <div class="bar" aria-hidden="true">
        {props.steps.map((s) => (
          <span
            key={s.name}
            class={`bar-${s.name}`}
            style={{ flexGrow: total === 0 ? 1 : Math.max(s.ms ?? 0, total / 100) }}
            title={`${s.name} ${durationMs(s.ms)}`}
          />
        ))}
      </div>
      <ol class="steps">
        {props.steps.map((s) => (
          <li key={s.name} data-step={s.name}>
            <span class="step-name">{s.name}</span>{' '}
            <time>{s.at === undefined ? 'waiting' : clock(s.at)}</time>{' '}
            <span class="step-ms">{durationMs(s.ms)}</span>
          </li>
        ))}
      </ol>
    </>
  );
}

export function Timeline(props: {
  failovers: readonly FailoverView[];
  transition: Transition | undefined;
  restarts: readonly JournalEvent[];
}) {
  const live =
    props.transition !== undefined && props.transition.healthyAt === undefined
      ? props.transition
      : undefined;
  type Entry = { at: number; key: string; node: ComponentChildren };
  const entries: Entry[] = [];
  for (const f of props.failovers)
    entries.push({
      at: f.at,
      key: `f${f.seq}`,
      node: (
        <li class="timeline-entry" data-kind={f.kind} data-testid="timeline-failover">
          <h3>
            {f.kind} {f.fromNode ?? '—'} → {f.toNode ?? '—'} at epoch {f.epoch}:{' '}
            <span class="restore">service restored in {durationMs(f.restoreMs)}</span>
          </h3>
          <Steps steps={completedSteps(f)} />
        </li>
      ),
    });
  for (const e of props.restarts)
    entries.push({
      at: e.at,
      key: `r${e.seq}`,
      node: (
        <li class="timeline-entry" data-kind="restart">
          <h3>
            <time>{clock(e.at)}</time> {e.kind}: {e.message}
            {e.actor === undefined ? '' : ` (by ${e.actor})`}
          </h3>
        </li>
      ),
    });
  entries.sort((a, b) => b.at - a.at);
  return (
    <ol class="timeline" aria-label="Timeline" data-testid="timeline">
      {live !== undefined && (
        <li class="timeline-entry in-progress" data-testid="timeline-in-progress">
          <h3>
            {live.kind} in progress: {live.fromNode ?? '—'} → {live.toNode ?? '—'} at epoch{' '}
            {live.epoch} ({live.reason})
          </h3>
          <Steps steps={liveSteps(live)} />
        </li>
      )}
      {entries.map((e) => (
        <Fragment key={e.key}>{e.node}</Fragment>
      ))}
      {entries.length === 0 && live === undefined && (
        <li class="empty">No failovers or restarts yet.</li>
      )}
    </ol>
  );
}
