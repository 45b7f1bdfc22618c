// Restoring a replicated volume's redundancy (ARCHITECTURE.md section 4: "then restore redundancy
// in the background"), as a pure function of the workload's record and the nodes: a new copy is
// placed when fewer copies than asked for live on nodes that are up (a spare first), and once
// enough copies are in sync the surplus ones outside the ISR are released.
import type { VolumeReplicaRecord, WorkloadRecord } from '../../core/model.js';
import { pickReplicaNode, type ReplicaNodeView, type VolumeRecords } from './volume-records.js';

export function restoreRedundancy(
  workload: WorkloadRecord,
  nodes: readonly ReplicaNodeView[],
  held: Map<string, number>,
  now: number,
): { volumes: VolumeRecords; reason: string } | undefined {
  if (workload.volumes === undefined || workload.node === null) return undefined;
  const owner = workload.node;
  const reasons: string[] = [];
  const volumes: VolumeRecords = {};
  for (const [name, record] of Object.entries(workload.volumes)) {
    const spec = workload.spec.volumes.find((v) => v.name === name);
    const wanted = spec?.replicas ?? record.replicas.length;
    const next = restoreOne(
      record,
      { owner, wanted, spreadSites: spec?.spreadSites ?? false },
      {
        nodes,
        held,
        now,
        say: (what) => reasons.push(`volume ${name}: ${what}`),
      },
    );
    volumes[name] = next;
  }
  if (reasons.length === 0) return undefined;
  return { volumes, reason: reasons.join('; ') };
}

function restoreOne(
  record: VolumeReplicaRecord,
  want: { owner: string; wanted: number; spreadSites: boolean },
  ctx: {
    nodes: readonly ReplicaNodeView[];
    held: Map<string, number>;
    now: number;
    say: (what: string) => void;
  },
): VolumeReplicaRecord {
  const liveness = new Map(ctx.nodes.map((n) => [n.name, n.liveness]));
  const down = (node: string) => (liveness.get(node) ?? 'down') === 'down';
  // An ISR member whose node is down stays in the ISR here: its volume server may well be up (only
  // the agent restarted), and if it is not, the primary reports it unresponsive and waits.
  let next = record;
  const live = next.replicas.filter((node) => !down(node));
  if (live.length < want.wanted) {
    const node = pickReplicaNode(ctx.nodes, next.replicas, {
      spreadSites: want.spreadSites,
      held: ctx.held,
    });
    if (node !== undefined) {
      ctx.held.set(node, (ctx.held.get(node) ?? 0) + 1);
      next = {
        ...next,
        replicas: [...next.replicas, node],
        outdated: { ...next.outdated, [node]: { since: ctx.now, reason: 'new copy' } },
        isrVersion: next.isrVersion + 1,
      };
      ctx.say(
        `a new copy on ${node} (${live.length} of ${want.wanted} copies on nodes that are up)`,
      );
    }
  }
  // Released only once enough in-sync copies are on nodes that are up: a copy just placed for
  // one whose node is down must not be released in the same pass.
  if (next.isr.filter((node) => !down(node)).length >= want.wanted) {
    const surplus = next.replicas.filter((node) => !next.isr.includes(node));
    if (surplus.length > 0) {
      const outdated = { ...next.outdated };
      for (const node of surplus) delete outdated[node];
      next = {
        ...next,
        replicas: next.replicas.filter((n) => next.isr.includes(n)),
        outdated,
        isrVersion: next.isrVersion + 1,
      };
      ctx.say(`${want.wanted} copies in sync: ${surplus.join(', ')} released`);
    }
  }
  return next;
}
