// Events: the journal, filterable by kind, object and time, following live. A filter change asks
// the controller for the newest matching entries; live events that match are appended as they
// arrive, matched as /v1/events matches: by exact kind (several separated by commas) and object.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { subjectHref } from '../components/bits.js';
import { VirtualTable, type Column } from '../components/virtual-table.js';
import { loadTail } from '../data.js';
import { dateTime } from '../format.js';
import { useData } from '../use-data.js';
import type { JournalEvent } from '../types.js';

/** Entries the events view keeps; older ones are a narrower filter away. */
export const eventsViewMax = 20_000;
/** Typing in a filter waits this long before asking the controller. */
const filterDebounceMs = 300;

interface Filter {
  kind: string;
  subject: string;
  since: string;
}

export function matchesFilter(e: JournalEvent, f: Filter, sinceAt: number | undefined): boolean {
  const kinds = f.kind
    .split(',')
    .map((k) => k.trim())
    .filter(Boolean);
  if (kinds.length > 0 && !kinds.includes(e.kind)) return false;
  if (f.subject.trim() !== '' && e.subject.name !== f.subject.trim()) return false;
  return sinceAt === undefined || e.at >= sinceAt;
}

export function EventsView() {
  const { snap } = useData();
  const [filter, setFilter] = useState<Filter>({ kind: '', subject: '', since: '' });
  const [follow, setFollow] = useState(true);
  const [loaded, setLoaded] = useState<{ events: JournalEvent[]; filter: Filter } | undefined>();
  const [error, setError] = useState<string | undefined>();
  const sinceAt = filter.since === '' ? undefined : new Date(filter.since).getTime();

  useEffect(() => {
    let current = true;
    const timer = setTimeout(() => {
      const q = new URLSearchParams();
      if (filter.kind.trim() !== '') q.set('kind', filter.kind.replace(/\s+/g, ''));
      if (filter.subject.trim() !== '') q.set('subject', filter.subject.trim());
      // Without a time, the last day: the journal of a long-lived cluster is long.
      q.set('since', String(sinceAt ?? Date.now() - 24 * 3600_000));
      loadTail(q, eventsViewMax)
        .then((events) => current && (setLoaded({ events, filter }), setError(undefined)))
        .catch(
          (err: unknown) => current && setError(err instanceof Error ? err.message : String(err)),
        );
    }, filterDebounceMs);
    return () => {
      current = false;
      clearTimeout(timer);
    };
  }, [filter.kind, filter.subject, filter.since]);

  const [frozenAt, setFrozenAt] = useState(0);
  useEffect(() => setFrozenAt(follow ? Number.MAX_SAFE_INTEGER : snap.lastEventSeq), [follow]);
  const rows = useMemo(() => {
    if (loaded === undefined) return [];
    const last = loaded.events.at(-1)?.seq ?? 0;
    const live = snap.events.filter(
      (e) => e.seq > last && e.seq <= frozenAt && matchesFilter(e, loaded.filter, sinceAt),
    );
    return loaded.events.concat(live).slice(-eventsViewMax).reverse();
  }, [loaded, snap.events, frozenAt]);

  const columns: Column<JournalEvent>[] = [
    { label: 'Time', width: '12rem', render: (e) => <time>{dateTime(e.at)}</time> },
    { label: 'Kind', width: '11rem', render: (e) => e.kind },
    {
      label: 'Object',
      width: '10rem',
      render: (e) => {
        const href = subjectHref(e);
        return href === undefined ? e.subject.name : <a href={href}>{e.subject.name}</a>;
      },
    },
    { label: 'Message', width: '3fr', render: (e) => <span title={e.message}>{e.message}</span> },
    { label: 'By', width: '6rem', render: (e) => e.actor ?? '' },
  ];
  const set = (key: keyof Filter) => (e: Event) =>
    setFilter({ ...filter, [key]: (e.currentTarget as HTMLInputElement).value });
  return (
    <div class="events-view">
      <h1>Events</h1>
      <form
        class="filters"
        role="search"
        aria-label="Filter events"
        onSubmit={(e) => e.preventDefault()}
      >
        <label for="events-kind">Kind</label>
        <input
          id="events-kind"
          data-filter
          placeholder="failover.completed, node.down ( / )"
          value={filter.kind}
          onInput={set('kind')}
        />
        <label for="events-subject">Object</label>
        <input
          id="events-subject"
          placeholder="kv, node-1"
          value={filter.subject}
          onInput={set('subject')}
        />
        <label for="events-since">Since</label>
        <input
          id="events-since"
          type="datetime-local"
          value={filter.since}
          onInput={set('since')}
        />
        <label>
          <input
            type="checkbox"
            checked={follow}
            onChange={(e) => setFollow(e.currentTarget.checked)}
          />{' '}
          Follow live
        </label>
      </form>
      {error !== undefined && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {loaded === undefined ? (
        <p aria-busy="true">Reading the journal…</p>
      ) : (
        <VirtualTable
          label="Events, newest first"
          testId="events-table"
          rows={rows}
          columns={columns}
          rowKey={(e) => String(e.seq)}
          heightPx={560}
        />
      )}
    </div>
  );
}
