// The controller's decisions about replicated volumes (docs/replication.md), as pure functions of
// records: where the copies go at first placement, what a change of owner does to the in-sync set
// (ISR), how lost redundancy is restored, and what a primary's report changes. The shell writes
// each result conditionally, in the same write as the owner and epoch it goes with.
import type { NodeLiveness, VolumeReplicaRecord, WorkloadRecord } from '../../core/model.js';
import { isReplicated, type WorkloadSpec } from '../../core/spec.js';

const mebibyte = 1_048_576;

/** What these decisions need to know of a node. */
export interface ReplicaNodeView {
  name: string;
  site: string;
  role: 'production' | 'spare';
  liveness: NodeLiveness;
  maintenance: boolean;
}

export type VolumeRecords = Record<string, VolumeReplicaRecord>;

/** Copies each node holds, over every workload: new copies go where there are fewest. */
export function copiesPerNode(workloads: readonly WorkloadRecord[]): Map<string, number> {
  const held = new Map<string, number>();
  for (const w of workloads)
    for (const record of Object.values(w.volumes ?? {}))
      for (const node of record.replicas) held.set(node, (held.get(node) ?? 0) + 1);
  return held;
}

/**
 * The nodes that may be promoted: those in the ISR of every replicated volume. Undefined when the
 * workload has none yet (first placement may go anywhere: its copies start there).
 */
export function inSyncNodes(workload: WorkloadRecord): string[] | undefined {
  const records = Object.values(workload.volumes ?? {});
  if (records.length === 0) return undefined;
  return records
    .map((r) => r.isr)
    .reduce((common, isr) => common.filter((node) => isr.includes(node)));
}

/**
 * A node for one more copy: up and not in maintenance, not holding one already; on another site
 * when the volume asks to spread; spares first (they are where failovers land, N+1), then the node
 * holding the fewest copies, then by name.
 */
export function pickReplicaNode(
  nodes: readonly ReplicaNodeView[],
  taken: readonly string[],
  options: { spreadSites: boolean; held: ReadonlyMap<string, number> },
): string | undefined {
  const usedSites = new Set(nodes.filter((n) => taken.includes(n.name)).map((n) => n.site));
  const candidates = nodes.filter(
    (n) => n.liveness === 'up' && !n.maintenance && !taken.includes(n.name),
  );
  const rank = (n: ReplicaNodeView) => [
    options.spreadSites && usedSites.has(n.site) ? 1 : 0,
    n.role === 'spare' ? 0 : 1,
    options.held.get(n.name) ?? 0,
  ];
  candidates.sort((a, b) => {
    const [ra, rb] = [rank(a), rank(b)];
    for (let i = 0; i < ra.length; i++) if (ra[i] !== rb[i]) return ra[i]! - rb[i]!;
    return a.name.localeCompare(b.name);
  });
  return candidates[0]?.name;
}

/**
 * The records of a workload's first placement on `owner`: every copy starts empty, so all are in
 * sync from the start. Fewer nodes than copies asked for: the missing ones are added later, as
 * redundancy is restored.
 */
export function initialRecords(
  spec: WorkloadSpec,
  owner: string,
  nodes: readonly ReplicaNodeView[],
  held: Map<string, number>,
): VolumeRecords | undefined {
  const volumes = spec.volumes.filter(isReplicated);
  if (volumes.length === 0) return undefined;
  const records: VolumeRecords = {};
  for (const volume of volumes) {
    const replicas = [owner];
    while (replicas.length < volume.replicas) {
      const node = pickReplicaNode(nodes, replicas, { spreadSites: volume.spreadSites, held });
      if (node === undefined) break;
      replicas.push(node);
      held.set(node, (held.get(node) ?? 0) + 1);
    }
    records[volume.name] = {
      sizeBytes: volume.sizeMiB * mebibyte,
      replicas,
      isr: [...replicas],
      outdated: {},
      isrVersion: 1,
    };
  }
  return records;
}

/**
 * A change of owner to `toNode`, an ISR member (the scheduler saw to it; only the simulator's
 * deliberately broken build promotes another, which is then written into the ISR so that its
 * checkers see the damage). A former owner that is down leaves the ISR in the same write, so the
 * new primary need not wait for it; one that is up stays and becomes a replica at the new epoch.
 * A move to no node changes nothing: the copies wait, in sync, for a node to come back.
 */
export function recordsAfterMove(
  workload: WorkloadRecord,
  toNode: string | null,
  fromNodeDown: boolean,
  now: number,
): VolumeRecords | undefined {
  const from = workload.node;
  if (workload.volumes === undefined || toNode === null) return undefined;
  return mapRecords(workload.volumes, (record) => {
    let next = record;
    if (!next.isr.includes(toNode))
      next = { ...next, isr: [...next.isr, toNode], isrVersion: next.isrVersion + 1 };
    if (from !== null && fromNodeDown && from !== toNode && next.isr.includes(from))
      next = dropFromIsr(next, from, `node ${from} is down`, now);
    return next;
  });
}

/** The ISR without `node`, which is recorded as outdated; a new isrVersion. */
export function dropFromIsr(
  record: VolumeReplicaRecord,
  node: string,
  reason: string,
  now: number,
): VolumeReplicaRecord {
  return {
    ...record,
    isr: record.isr.filter((n) => n !== node),
    outdated: { ...record.outdated, [node]: { since: now, reason } },
    isrVersion: record.isrVersion + 1,
  };
}

function mapRecords(
  records: VolumeRecords,
  change: (record: VolumeReplicaRecord, name: string) => VolumeReplicaRecord,
): VolumeRecords | undefined {
  let changed = false;
  const next: VolumeRecords = {};
  for (const [name, record] of Object.entries(records)) {
    next[name] = change(record, name);
    if (next[name] !== record) changed = true;
  }
  return changed ? next : undefined;
}
