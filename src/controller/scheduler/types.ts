// The scheduler's vocabulary: the immutable snapshot it reads, the request it answers and the
// decision it returns. Kept apart from place.ts so the helper modules can share these types
// without importing the module that imports them (import cycles are banned).
import type { WorkloadSpec } from '../../core/spec.js';

export interface SchedulerNode {
  name: string;
  site: string;
  role: 'production' | 'spare';
  capacity: { cpu: number; memoryMiB: number };
  labels: Record<string, string>;
  /** up and not in maintenance */
  schedulable: boolean;
}

export interface SchedulerWorkload {
  name: string;
  spec: WorkloadSpec;
  /** current owner, or null */
  node: string | null;
  /**
   * Nodes holding an in-sync copy of every replicated volume of the workload, once it has any:
   * only these may be promoted (ARCHITECTURE.md section 3, item 3). Absent: no constraint.
   */
  inSync?: readonly string[];
}

export interface SchedulerSnapshot {
  nodes: SchedulerNode[];
  /** Indexed by the scheduler on first use: move workloads only through applyMoves. */
  workloads: SchedulerWorkload[];
}

export type PlacementPurpose = 'initial' | 'failover' | 'switchover';

export interface PlacementRequest {
  workload: string;
  purpose: PlacementPurpose;
  /** nodes that must not be chosen (the failed node, nodes the workload must avoid) */
  exclude?: string[];
  /** switchover to a chosen node */
  preferNode?: string;
}

export type PlacementDecision =
  | {
      ok: true;
      node: string;
      /** workloads to evict from that node, lowest priority first */
      preempt: string[];
    }
  | {
      ok: false;
      /** why no node fits, in operator words */
      reason: string;
    };
