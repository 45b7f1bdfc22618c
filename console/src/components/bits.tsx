// Small pieces the views share: a state badge, a labelled figure, a section with a heading, and
// the list of latest journal events.
import type { ComponentChildren } from 'preact';
import { clock, stateClass } from '../format.js';
import type { JournalEvent } from '../types.js';

export function Badge(props: { state: string }) {
  return <span class={stateClass(props.state)}>{props.state}</span>;
}

export function Figure(props: { label: string; value: ComponentChildren; testId?: string }) {
  return (
    <div class="figure" data-testid={props.testId}>
      <div class="figure-value">{props.value}</div>
      <div class="figure-label">{props.label}</div>
    </div>
  );
}

export function Section(props: {
  title: string;
  children: ComponentChildren;
  actions?: ComponentChildren;
}) {
  const id = `section-${props.title.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
  return (
    <section aria-labelledby={id}>
      <div class="section-head">
        <h2 id={id}>{props.title}</h2>
        {props.actions}
      </div>
      {props.children}
    </section>
  );
}

export function subjectHref(e: JournalEvent): string | undefined {
  const { kind, name } = e.subject;
  if (kind === 'node') return `#/node/${encodeURIComponent(name)}`;
  if (kind === 'workload') return `#/workload/${encodeURIComponent(name)}`;
  if (kind === 'instance') return `#/workload/${encodeURIComponent(name.split('/')[0]!)}`;
  return undefined;
}

export function EventList(props: {
  events: readonly JournalEvent[];
  label: string;
  testId?: string;
}) {
  return (
    <ol class="events" aria-label={props.label} data-testid={props.testId}>
      {props.events.length === 0 && <li class="empty">No events yet.</li>}
      {props.events.map((e) => {
        const href = subjectHref(e);
        return (
          <li key={e.seq} data-seq={e.seq}>
            <time>{clock(e.at)}</time> <span class="kind">{e.kind}</span>{' '}
            {href === undefined ? (
              <span class="subject">{e.subject.name}</span>
            ) : (
              <a href={href}>{e.subject.name}</a>
            )}{' '}
            <span class="message">{e.message}</span>
            {e.actor !== undefined && <span class="actor"> (by {e.actor})</span>}
          </li>
        );
      })}
    </ol>
  );
}
