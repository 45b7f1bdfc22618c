// Why a workload could not be placed, in an operator's words: which constraint ruled out how many
// nodes, and which ones. The reason is shown on the console and journaled as the workload's
// blocked reason, so it must say what to change (add capacity, a label, a site) without a log dive.
import { formatAmount, formatCpu } from './capacity.js';
import type { PlacementContext, Rejection } from './checks.js';
import type { SchedulerNode } from './types.js';

/** Node names listed per reason before the rest are only counted: the reason stays one line. */
export const nodeNamesInReasonMax = 5;

export interface RejectedNode {
  node: SchedulerNode;
  rejection: Rejection;
}

const kindOrder: Rejection['kind'][] = [
  'unschedulable',
  'excluded',
  'current',
  'volume',
  'outOfSync',
  'labels',
  'site',
  'antiAffinity',
  'capacity',
];

export function describeDemand(context: PlacementContext): string {
  const { demand, workload, priority } = context;
  const needs = `${formatCpu(demand.milliCpu)} and ${demand.memoryMiB} MiB`;
  return `${workload.name} (needs ${needs}, priority ${priority})`;
}

/** What a group of nodes rejected for the same kind of reason has in common. */
function describeKind(context: PlacementContext, kind: Rejection['kind']): string {
  const placement = context.workload.spec.availability.placement;
  switch (kind) {
    case 'unschedulable':
      return 'down or in maintenance';
    case 'excluded':
      return 'excluded by the request';
    case 'current':
      return 'its current node, which it is leaving';
    case 'volume':
      return `not ${context.workload.spec.volumes[0]?.node ?? 'its volume node'}, which holds its volumes (a volume without replicas stays on its node)`;
    case 'outOfSync':
      return `without an in-sync copy of its replicated volumes (in sync: ${context.workload.inSync?.join(', ') || 'none'})`;
    case 'labels':
      return `without labels ${formatLabels(placement.labels)}`;
    case 'site':
      return `outside sites ${placement.sites.join(', ')}`;
    case 'antiAffinity':
      return `running workloads in anti-affinity with ${context.workload.name}`;
    case 'capacity':
      return 'short of free capacity even after evicting lower-priority workloads';
  }
}

/** The detail shown next to one node's name, where there is one worth showing. */
function detailOf(rejection: Rejection): string {
  if (rejection.kind === 'antiAffinity') return ` runs ${rejection.workloads.join(', ')}`;
  if (rejection.kind === 'capacity') return ` has ${formatAmount(rejection.free)} free`;
  return '';
}

function listNodes(rejected: RejectedNode[]): string {
  const shown = rejected
    .slice(0, nodeNamesInReasonMax)
    .map(({ node, rejection }) => `${node.name}${detailOf(rejection)}`);
  // Entries with details contain commas of their own, so they are set apart with semicolons.
  const separator = shown.some((entry) => entry.includes(' ')) ? '; ' : ', ';
  const more = rejected.length - shown.length;
  return more > 0 ? `${shown.join(separator)}${separator}and ${more} more` : shown.join(separator);
}

/** Why no node at all fits: every node is counted under the first constraint it failed. */
export function explainNoFit(context: PlacementContext, rejected: RejectedNode[]): string {
  const head = `no node can take ${describeDemand(context)}`;
  if (rejected.length === 0) return `${head}: the cluster has no nodes`;
  const groups = kindOrder
    .map((kind) => rejected.filter((r) => r.rejection.kind === kind))
    .filter((group) => group.length > 0)
    .map((group) => {
      const kind = group[0]!.rejection.kind;
      return `${group.length} ${describeKind(context, kind)} (${listNodes(group)})`;
    });
  const checked = `${rejected.length} ${rejected.length === 1 ? 'node' : 'nodes'} checked`;
  return `${head}: ${checked}: ${groups.join('; ')}`;
}

/** Why the one node asked for (a switchover target) cannot take the workload. */
export function explainNode(context: PlacementContext, rejected: RejectedNode): string {
  const { node, rejection } = rejected;
  const head = `node ${node.name} cannot take ${describeDemand(context)}`;
  switch (rejection.kind) {
    case 'labels':
      return `${head}: it lacks labels ${rejection.missing.join(', ')}`;
    case 'site':
      return `${head}: its site ${node.site} is not one of ${context.workload.spec.availability.placement.sites.join(', ')}`;
    case 'antiAffinity':
      return `${head}: it runs ${rejection.workloads.join(', ')}, in anti-affinity with ${context.workload.name}`;
    case 'capacity':
      return `${head}: it has only ${formatAmount(rejection.free)} free (a chosen node is never made room on by preemption)`;
    case 'unschedulable':
      return `${head}: it is down or in maintenance`;
    case 'excluded':
      return `${head}: it is excluded by the request`;
    case 'current':
      return `${head}: it is the workload's current node`;
    case 'volume':
      return `${head}: its volumes live on node ${rejection.node} and have no replicas`;
    case 'outOfSync':
      return `${head}: it holds no in-sync copy of the workload's replicated volumes (in sync: ${context.workload.inSync?.join(', ') || 'none'})`;
  }
}

function formatLabels(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([key, value]) => `${key}=${value}`)
    .join(', ');
}
