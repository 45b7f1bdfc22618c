// Overview: sites, nodes and workloads with their protection state, the spare capacity left, and
// the latest events. Both tables are virtualized and filterable, for clusters of thousands.
import { useMemo, useState } from 'preact/hooks';
import { Badge, EventList, Figure, Section } from '../components/bits.js';
import { VirtualTable, type Column } from '../components/virtual-table.js';
import { protections, type Protection } from '../derive.js';
import { cpus, mebibytes, percent } from '../format.js';
import { go } from '../router.js';
import { useData } from '../use-data.js';
import type { NodeView, WorkloadView } from '../types.js';

/** Latest events shown on the overview; the events view has the whole journal. */
export const overviewEventsMax = 15;

export function Overview() {
  const { snap } = useData();
  const { derived } = snap;
  const [filter, setFilter] = useState('');
  const [only, setOnly] = useState<Protection | 'all'>('all');
  const text = filter.trim().toLowerCase();

  const workloads = useMemo(
    () =>
      snap.workloads.filter(
        (w) =>
          (only === 'all' || derived.protection.get(w.name) === only) &&
          (text === '' || w.name.includes(text) || (w.node ?? '').includes(text)),
      ),
    [snap.workloads, derived, only, text],
  );
  const nodes = useMemo(
    () =>
      snap.nodes.filter(
        (n) =>
          text === '' || n.name.includes(text) || n.site.includes(text) || n.state.includes(text),
      ),
    [snap.nodes, text],
  );

  const workloadColumns: Column<WorkloadView>[] = [
    {
      label: 'Workload',
      width: '2fr',
      render: (w) => <a href={`#/workload/${w.name}`}>{w.name}</a>,
    },
    {
      label: 'Protection',
      width: '8rem',
      render: (w) => <Badge state={derived.protection.get(w.name) ?? 'down'} />,
    },
    { label: 'Phase', width: '6rem', render: (w) => w.phase },
    {
      label: 'Node',
      width: '1.5fr',
      render: (w) => (w.node === null ? '—' : <a href={`#/node/${w.node}`}>{w.node}</a>),
    },
    { label: 'Epoch', width: '4rem', render: (w) => w.epoch },
    { label: 'Mode', width: '4rem', render: (w) => w.spec.availability.mode },
  ];
  const nodeColumns: Column<NodeView>[] = [
    { label: 'Node', width: '2fr', render: (n) => <a href={`#/node/${n.name}`}>{n.name}</a> },
    { label: 'State', width: '7rem', render: (n) => <Badge state={n.state} /> },
    { label: 'Role', width: '6rem', render: (n) => n.role },
    { label: 'Site', width: '1fr', render: (n) => n.site },
    { label: 'Workloads', width: '6rem', render: (n) => derived.byNode.get(n.name)?.length ?? 0 },
    {
      label: 'Free CPU / memory',
      width: '10rem',
      render: (n) => {
        const free = derived.free.get(n.name);
        return free === undefined ? '—' : `${cpus(free.cpu)} / ${mebibytes(free.memoryMiB)}`;
      },
    },
    {
      label: 'CPU used',
      width: '6rem',
      render: (n) => (n.usage === undefined ? '—' : `${n.usage.cpuPercent.toFixed(0)} %`),
    },
  ];

  const capacity = snap.nodes.reduce((sum, n) => sum + n.capacity.cpu, 0);
  return (
    <div class="overview">
      <h1>Overview</h1>
      <div class="figures" data-testid="protection-counts">
        {protections.map((p) => (
          <Figure
            key={p}
            label={p}
            value={<span class={`count count-${p.replace(' ', '-')}`}>{derived.counts[p]}</span>}
            testId={`count-${p.replace(' ', '-')}`}
          />
        ))}
        <Figure
          label={`spare capacity on ${derived.spare.nodes} spare node(s)`}
          value={`${cpus(derived.spare.cpu)} CPU · ${mebibytes(derived.spare.memoryMiB)}`}
          testId="spare-capacity"
        />
        <Figure label="free CPU across the cluster" value={percent(derived.total.cpu, capacity)} />
      </div>
      <Section title="Sites">
        <ul class="sites" data-testid="sites">
          {derived.sites.map((s) => (
            <li key={s.name}>
              <strong>{s.name}</strong>: {s.up} of {s.nodes} node(s) up
            </li>
          ))}
        </ul>
      </Section>
      <div class="filters" role="search">
        <label for="overview-filter">Filter</label>
        <input
          id="overview-filter"
          data-filter
          type="search"
          placeholder="name, node, site or state ( / )"
          value={filter}
          onInput={(e) => setFilter(e.currentTarget.value)}
        />
        <label for="overview-protection">Protection</label>
        <select
          id="overview-protection"
          value={only}
          onChange={(e) => setOnly(e.currentTarget.value as Protection | 'all')}
        >
          <option value="all">all</option>
          {protections.map((p) => (
            <option key={p} value={p}>
              {p}
            </option>
          ))}
        </select>
      </div>
      <div class="columns">
        <Section title={`Workloads (${workloads.length} of ${snap.workloads.length})`}>
          <VirtualTable
            label="Workloads"
            testId="workloads-table"
            rows={workloads}
            columns={workloadColumns}
            rowKey={(w) => w.name}
            onOpen={(w) => go(`workload/${w.name}`)}
          />
        </Section>
        <Section title={`Nodes (${nodes.length} of ${snap.nodes.length})`}>
          <VirtualTable
            label="Nodes"
            testId="nodes-table"
            rows={nodes}
            columns={nodeColumns}
            rowKey={(n) => n.name}
            onOpen={(n) => go(`node/${n.name}`)}
          />
        </Section>
      </div>
      <Section title="Latest events" actions={<a href="#/events">All events</a>}>
        <EventList
          label="Latest events"
          testId="latest-events"
          events={snap.events.slice(-overviewEventsMax).reverse()}
        />
      </Section>
    </div>
  );
}
