// Volumes: each replicated volume with its copies and their state (in sync, outdated, resyncing
// with progress and rate), from the workload views' `volumes` and `resyncs`; and the volumes each
// node's volume server holds (/v1/volumes, asked of every agent, so fetched only on this view).
import { useEffect, useMemo } from 'preact/hooks';
import { Badge, Section } from '../components/bits.js';
import { VirtualTable, type Column } from '../components/virtual-table.js';
import { bytes, clock, percent } from '../format.js';
import { go } from '../router.js';
import { useData } from '../use-data.js';
import type { ResyncView, VolumeInfo, WorkloadView } from '../types.js';

/** The previous progress report of each resync, to tell its rate (the API reports bytes, not rates). */
const lastProgress = new Map<string, { at: number; bytes: number; rate?: number }>();

function rateOf(r: ResyncView): number | undefined {
  const key = `${r.volume}/${r.node}`;
  const prev = lastProgress.get(key);
  if (prev !== undefined && r.at > prev.at && r.bytesCopied >= prev.bytes) {
    const rate = ((r.bytesCopied - prev.bytes) * 1000) / (r.at - prev.at);
    lastProgress.set(key, { at: r.at, bytes: r.bytesCopied, rate });
    return rate;
  }
  if (prev === undefined || r.at !== prev.at)
    lastProgress.set(key, { at: r.at, bytes: r.bytesCopied });
  return prev?.rate;
}

interface Replica {
  node: string;
  state: 'in sync' | 'outdated' | 'resyncing';
  primary: boolean;
  detail: string;
}

export function replicasOf(w: WorkloadView, volume: string): Replica[] {
  const record = w.volumes?.[volume];
  if (record === undefined) return [];
  return record.replicas.map((node) => {
    const resync = w.resyncs?.find((r) => r.node === node && r.volume.endsWith(volume));
    const outdated = record.outdated[node];
    if (resync !== undefined) {
      const rate = rateOf(resync);
      return {
        node,
        state: 'resyncing',
        primary: false,
        detail: `${resync.mode} resync from ${resync.primary}: ${bytes(resync.bytesCopied)} of ${bytes(resync.bytesToCopy)} (${percent(resync.bytesCopied, resync.bytesToCopy)})${rate === undefined ? '' : `, ${bytes(rate)}/s`}`,
      };
    }
    if (record.isr.includes(node))
      return {
        node,
        state: 'in sync',
        primary: node === w.node,
        detail: node === w.node ? 'primary' : 'acknowledges every write',
      };
    return {
      node,
      state: 'outdated',
      primary: false,
      detail:
        outdated === undefined
          ? 'outside the in-sync set'
          : `since ${clock(outdated.since)}: ${outdated.reason}`,
    };
  });
}

export function VolumeReplicas(props: { workload: WorkloadView; only?: string }) {
  const names = Object.keys(props.workload.volumes ?? {}).filter(
    (n) => props.only === undefined || n === props.only,
  );
  if (names.length === 0) return <p class="empty">No replicated volumes.</p>;
  return (
    <>
      {names.map((name) => (
        <table
          class="plain"
          key={name}
          data-testid="volume-replicas"
          aria-label={`Copies of ${name}`}
        >
          <caption>
            <a href={`#/volumes/${props.workload.name}/${name}`}>{name}</a>:{' '}
            {bytes(props.workload.volumes![name]!.sizeBytes)}, membership version{' '}
            {props.workload.volumes![name]!.isrVersion}
          </caption>
          <thead>
            <tr>
              <th scope="col">Node</th>
              <th scope="col">State</th>
              <th scope="col">Detail</th>
            </tr>
          </thead>
          <tbody>
            {replicasOf(props.workload, name).map((r) => (
              <tr key={r.node}>
                <td>
                  <a href={`#/node/${r.node}`}>{r.node}</a>
                  {r.primary ? ' (primary)' : ''}
                </td>
                <td>
                  <Badge state={r.state} />
                </td>
                <td>{r.detail}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ))}
    </>
  );
}

interface VolumeRow {
  key: string;
  workload: WorkloadView;
  volume: string;
  replicas: Replica[];
}

export function VolumesView(props: { workload?: string; volume?: string }) {
  const { data, snap } = useData();
  useEffect(() => data.want({ lists: ['volumes'] }), [data]);
  const rows = useMemo(() => {
    const out: VolumeRow[] = [];
    for (const w of snap.workloads)
      for (const volume of Object.keys(w.volumes ?? {}))
        out.push({
          key: `${w.name}/${volume}`,
          workload: w,
          volume,
          replicas: replicasOf(w, volume),
        });
    return out;
  }, [snap.workloads]);
  const columns: Column<VolumeRow>[] = [
    {
      label: 'Volume',
      width: '2fr',
      render: (r) => <a href={`#/volumes/${r.workload.name}/${r.volume}`}>{r.key}</a>,
    },
    { label: 'Copies', width: '5rem', render: (r) => r.replicas.length },
    {
      label: 'In sync',
      width: '5rem',
      render: (r) => r.replicas.filter((x) => x.state === 'in sync').length,
    },
    {
      label: 'State',
      width: '2fr',
      render: (r) => r.replicas.map((x) => <Badge key={x.node} state={x.state} />),
    },
  ];
  const localColumns: Column<VolumeInfo>[] = [
    { label: 'Node', width: '1fr', render: (v) => v.node },
    { label: 'Volume', width: '1.5fr', render: (v) => v.name },
    { label: 'Size', width: '6rem', render: (v) => bytes(v.sizeBytes) },
    { label: 'Allocated', width: '6rem', render: (v) => bytes(v.allocatedBytes) },
    { label: 'Snapshots', width: '1fr', render: (v) => v.snapshots.join(', ') || '—' },
    { label: 'Attached', width: '5rem', render: (v) => (v.attached ? 'yes' : 'no') },
  ];
  const selected = snap.workloads.find((w) => w.name === props.workload);
  return (
    <div class="volumes-view">
      <h1>Volumes</h1>
      {selected !== undefined && props.volume !== undefined && (
        <Section title={`Volume ${selected.name}/${props.volume}`}>
          <VolumeReplicas workload={selected} only={props.volume} />
        </Section>
      )}
      <Section title={`Replicated volumes (${rows.length})`}>
        <VirtualTable
          label="Replicated volumes"
          testId="volumes-table"
          rows={rows}
          columns={columns}
          rowKey={(r) => r.key}
          onOpen={(r) => go(`volumes/${r.workload.name}/${r.volume}`)}
          heightPx={240}
        />
      </Section>
      <Section title="Volumes on each node">
        {snap.volumes === undefined ? (
          <p aria-busy="true">Asking each node's volume server…</p>
        ) : (
          <>
            <VirtualTable
              label="Volumes on each node"
              testId="node-volumes-table"
              rows={snap.volumes.items}
              columns={localColumns}
              rowKey={(v) => `${v.node}/${v.name}`}
              heightPx={240}
            />
            {snap.volumes.unreachable.map((u) => (
              <p key={u.node} class="error">
                {u.node}: {u.error}
              </p>
            ))}
          </>
        )}
      </Section>
    </div>
  );
}
