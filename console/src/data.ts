// The console's copy of the controller's state, kept live: a first full load, then, for each
// journal event, a debounced refetch of only what it concerns (one workload, one node, or a list),
// never a full reload per event. Views subscribe and re-render on change.
import { ApiError, get } from './api.js';
import { derive, type Derived } from './derive.js';
import { LiveLink, type LinkState } from './live.js';
import type {
  ClusterInfo,
  FailoverView,
  JournalEvent,
  NodeView,
  VolumeInfo,
  WorkloadView,
} from './types.js';

/** Events gathered for this long are answered with one round of refetches. */
export const refetchDebounceMs = 75;
/** More changed objects than this in one round: fetch the whole list instead of each one. */
export const singleFetchesMax = 20;
/** Journal entries kept in the browser for the overview and the workload and node views. */
export const eventsKeptMax = 2000;
/** Node usage is reported in heartbeats, not journaled: refreshed on this period instead. */
export const nodesPollMs = 15_000;
/**
 * While a copy is outdated or resyncing, its workload is refetched on this period to show when a
 * resync starts, its progress and rate: the controller keeps resync progress in memory and
 * journals only its end, so no event says that one has begun.
 */
export const resyncPollMs = 2000;
/** How far back the first load reads the journal. */
export const eventsLoadWindowMs = 60 * 60_000;
const eventPagesMax = 5;

export interface Snapshot {
  cluster?: ClusterInfo;
  nodes: NodeView[];
  workloads: WorkloadView[];
  failovers: FailoverView[];
  volumes?: { items: VolumeInfo[]; unreachable: { node: string; error: string }[] };
  events: JournalEvent[];
  derived: Derived;
  loaded: boolean;
  link: { state: LinkState; detail: string; since: number; lostAt?: number; backAt?: number };
  /** Set by the first render after a load (the benchmark reads it). */
  lastEventSeq: number;
  error?: string;
}

export type ListName = 'nodes' | 'workloads' | 'failovers' | 'volumes';
type Pending = { nodes: Set<string>; workloads: Set<string>; lists: Set<ListName> };

/** The newest events of a query: pages forward from a time until the end (bounded), keeps the tail. */
export async function loadTail(query: URLSearchParams, keepMax: number): Promise<JournalEvent[]> {
  let events: JournalEvent[] = [];
  let after: number | undefined;
  for (let page = 0; page < eventPagesMax; page++) {
    const q = new URLSearchParams(query);
    q.set('limit', '10000');
    if (after !== undefined) q.set('after', String(after));
    const { items } = await get<{ items: JournalEvent[] }>(`/v1/events?${q.toString()}`);
    events = events.concat(items).slice(-keepMax);
    if (items.length < 10000) break;
    after = items[items.length - 1]!.seq;
  }
  return events;
}

export class ConsoleData {
  private state: Snapshot;
  private readonly listeners = new Set<() => void>();
  private pending: Pending = { nodes: new Set(), workloads: new Set(), lists: new Set() };
  private timer: ReturnType<typeof setTimeout> | undefined;
  private poll: ReturnType<typeof setInterval> | undefined;
  private resyncPoll: ReturnType<typeof setInterval> | undefined;
  private link: LiveLink | undefined;

  constructor(private readonly token: string) {
    this.state = {
      nodes: [],
      workloads: [],
      failovers: [],
      events: [],
      derived: derive([], []),
      loaded: false,
      link: { state: 'connecting', detail: '', since: Date.now() },
      lastEventSeq: 0,
    };
  }

  snapshot = (): Snapshot => this.state;

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  private set(patch: Partial<Snapshot>): void {
    this.state = { ...this.state, ...patch };
    if (patch.nodes !== undefined || patch.workloads !== undefined)
      this.state.derived = derive(this.state.nodes, this.state.workloads);
    for (const listener of this.listeners) listener();
  }

  async start(): Promise<void> {
    const since = Date.now() - eventsLoadWindowMs;
    const [cluster, nodes, workloads, failovers, events] = await Promise.all([
      get<ClusterInfo>('/v1/cluster'),
      get<{ items: NodeView[] }>('/v1/nodes'),
      get<{ items: WorkloadView[] }>('/v1/workloads'),
      get<{ items: FailoverView[] }>('/v1/failovers'),
      loadTail(new URLSearchParams({ since: String(since) }), eventsKeptMax),
    ]);
    const lastEventSeq = events.at(-1)?.seq ?? 0;
    this.set({
      cluster,
      nodes: nodes.items,
      workloads: workloads.items,
      failovers: failovers.items,
      events,
      loaded: true,
      lastEventSeq,
    });
    this.link = new LiveLink({
      token: this.token,
      afterSeq: lastEventSeq,
      onEvents: (batch) => this.onEvents(batch),
      onState: (state, detail) => this.onLink(state, detail),
    });
    this.link.start();
    this.poll = setInterval(() => this.want({ lists: ['nodes'] }), nodesPollMs);
    // Resync progress is reported to the controller's memory, not journaled at every step, and
    // the start of a resync not at all: a workload with a copy outside the in-sync set is watched
    // too, or a resync that starts later would stay shown as "outdated" until it ends.
    this.resyncPoll = setInterval(() => {
      const up = new Set(this.state.nodes.filter((n) => n.state === 'up').map((n) => n.name));
      const watched = this.state.workloads.filter((w) => mayBeResyncing(w, up));
      if (watched.length > 0) this.want({ workloads: watched.map((w) => w.name) });
    }, resyncPollMs);
  }

  stop(): void {
    this.link?.stop();
    clearTimeout(this.timer);
    clearInterval(this.poll);
    clearInterval(this.resyncPoll);
    this.listeners.clear();
  }

  /** Lists a view needs beyond the first load (volumes are asked of every agent, so only on demand). */
  want(what: { lists?: ListName[]; workloads?: string[] }): void {
    for (const list of what.lists ?? []) this.pending.lists.add(list);
    for (const name of what.workloads ?? []) this.pending.workloads.add(name);
    this.schedule();
  }

  private onLink(state: LinkState, detail: string): void {
    const prev = this.state.link;
    if (prev.state === state && prev.detail === detail) return;
    const now = Date.now();
    const link = { ...prev, state, detail, since: now };
    if (state === 'lost' && prev.state !== 'lost') link.lostAt = now;
    if (state === 'live' && prev.state === 'lost') {
      link.backAt = now;
      // Whatever changed while the stream was down is caught up by refetching every list once.
      this.want({ lists: ['nodes', 'workloads', 'failovers'] });
    }
    this.set({ link });
  }

  private onEvents(batch: JournalEvent[]): void {
    for (const e of batch) this.route(e);
    const events = this.state.events.concat(batch).slice(-eventsKeptMax);
    this.set({ events, lastEventSeq: batch[batch.length - 1]!.seq });
    this.schedule();
  }

  /** What one event concerns; a hint of what to refetch, never the data itself (level-based). */
  private route(e: JournalEvent): void {
    const { kind, name } = e.subject;
    const p = this.pending;
    if (kind === 'node') {
      p.nodes.add(name);
      // A node that goes down or into maintenance changes where its workloads can go.
      if (/^node\.(down|up|maintenance|fenced)/.test(e.kind)) p.lists.add('workloads');
    } else if (kind === 'workload') p.workloads.add(name);
    else if (kind === 'instance') p.workloads.add(name.split('/')[0]!);
    else if (kind === 'volume') {
      p.lists.add('volumes');
      p.lists.add('workloads');
    } else p.lists.add('nodes').add('workloads');
    if (e.kind.endsWith('.completed')) p.lists.add('failovers');
  }

  private schedule(): void {
    if (this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, refetchDebounceMs);
  }

  private async flush(): Promise<void> {
    const p = this.pending;
    this.pending = { nodes: new Set(), workloads: new Set(), lists: new Set() };
    try {
      await Promise.all([
        this.refreshNodes(p),
        this.refreshWorkloads(p),
        p.lists.has('failovers') ? this.refreshFailovers() : undefined,
        p.lists.has('volumes') ? this.refreshVolumes() : undefined,
      ]);
      if (this.state.error !== undefined) this.set({ error: undefined });
    } catch (error) {
      this.set({ error: error instanceof Error ? error.message : String(error) });
    }
  }

  private async refreshNodes(p: Pending): Promise<void> {
    if (p.lists.has('nodes') || p.nodes.size > singleFetchesMax) {
      this.set({ nodes: (await get<{ items: NodeView[] }>('/v1/nodes')).items });
    } else if (p.nodes.size > 0) {
      const fresh = await Promise.all(
        [...p.nodes].map((n) =>
          get<NodeView>(`/v1/nodes/${encodeURIComponent(n)}`).catch(goneIf404),
        ),
      );
      this.set({ nodes: merge(this.state.nodes, fresh, [...p.nodes]) });
    }
  }

  private async refreshWorkloads(p: Pending): Promise<void> {
    if (p.lists.has('workloads') || p.workloads.size > singleFetchesMax) {
      this.set({ workloads: (await get<{ items: WorkloadView[] }>('/v1/workloads')).items });
    } else if (p.workloads.size > 0) {
      const fresh = await Promise.all(
        [...p.workloads].map((w) =>
          get<WorkloadView>(`/v1/workloads/${encodeURIComponent(w)}`).catch(goneIf404),
        ),
      );
      this.set({ workloads: merge(this.state.workloads, fresh, [...p.workloads]) });
    }
  }

  private async refreshFailovers(): Promise<void> {
    this.set({ failovers: (await get<{ items: FailoverView[] }>('/v1/failovers')).items });
  }

  private async refreshVolumes(): Promise<void> {
    this.set({ volumes: await get<Snapshot['volumes'] & object>('/v1/volumes') });
  }
}

/**
 * A copy resyncs now, or is outdated on a node that is up and so may start to (a resync is not
 * journaled until done). A copy on a node that is down cannot resync: it is not watched, so a
 * long outage does not make the console poll.
 */
export function mayBeResyncing(w: WorkloadView, nodesUp: ReadonlySet<string>): boolean {
  if ((w.resyncs?.length ?? 0) > 0) return true;
  return Object.values(w.volumes ?? {}).some((v) =>
    v.replicas.some((n) => !v.isr.includes(n) && nodesUp.has(n)),
  );
}

/** A single refetch that finds the object gone (deleted) removes it; any other failure is raised. */
function goneIf404(error: unknown): undefined {
  if (error instanceof ApiError && error.status === 404) return undefined;
  throw error;
}

/** Replaces (or adds, or removes when gone) the named items, keeping the list's order. */
function merge<T extends { name: string }>(
  list: readonly T[],
  fresh: readonly (T | undefined)[],
  names: readonly string[],
): T[] {
  const byName = new Map(fresh.filter((x): x is T => x !== undefined).map((x) => [x.name, x]));
  const gone = new Set(names.filter((n) => !byName.has(n)));
  const out = list.filter((x) => !gone.has(x.name)).map((x) => byName.get(x.name) ?? x);
  const known = new Set(list.map((x) => x.name));
  for (const x of byName.values()) if (!known.has(x.name)) out.push(x);
  return out;
}
