// The records the controller keeps in the store, and the journal's events. Everything here is
// plain JSON so every store backend (memory, sqlite, etcd) holds it the same way.
import type { Capacity, NodeRole, SiteSpec, WorkloadSpec } from './spec.js';

/** Store key layout. One place, so backends and tools agree. */
export const keys = {
  cluster: 'cluster/meta',
  site: (name: string) => `sites/${name}`,
  node: (name: string) => `nodes/${name}`,
  workload: (name: string) => `workloads/${name}`,
  instance: (workload: string, node: string) => `instances/${workload}/${node}`,
  prefixes: { sites: 'sites/', nodes: 'nodes/', workloads: 'workloads/', instances: 'instances/' },
} as const;

export interface ClusterMeta {
  /** Chosen at first start; agents refuse assignments from a controller of another cluster. */
  clusterId: string;
  createdAt: number;
}

export type SiteRecord = SiteSpec;

/** Liveness as judged by the controller from heartbeats. */
export type NodeLiveness = 'unknown' | 'up' | 'suspect' | 'down';
/** What operators see: liveness, unless the node is in maintenance. */
export type NodeState = NodeLiveness | 'maintenance' | 'fenced';

export interface NodeInventory {
  hostname: string;
  cpuCount: number;
  memoryMiB: number;
  agentVersion: string;
  agentPid: number;
}

export interface NodeRecord {
  name: string;
  site: string;
  role: NodeRole;
  capacity: Capacity;
  labels: Record<string, string>;
  /** Where this node's instances are reachable (the redirector connects here). */
  address: string;
  /** Where this node's volume server accepts replication links ("host:port"), if it does. */
  replicationAddress?: string;
  /** True when the node is named in an applied spec (the spec's role, capacity and labels win). */
  declared: boolean;
  liveness: NodeLiveness;
  livenessChangedAt: number;
  maintenance: boolean;
  inventory?: NodeInventory;
}

export function nodeState(node: NodeRecord): NodeState {
  return node.maintenance ? 'maintenance' : node.liveness;
}

export type TransitionKind = 'placement' | 'failover' | 'switchover' | 'preemption' | 'eviction';

/** A change of owner and the times of its steps, for time-to-restore (ARCHITECTURE.md section 4). */
export interface Transition {
  id: string;
  kind: TransitionKind;
  reason: string;
  epoch: number;
  fromNode: string | null;
  toNode: string | null;
  /** Best estimate of when the failure happened (the last heartbeat of a lost node). */
  failedAt?: number;
  detectedAt: number;
  decidedAt: number;
  startedAt?: number;
  healthyAt?: number;
}

/** Derived for display from the record and its instance; never stored. */
export type WorkloadPhase = 'pending' | 'starting' | 'active' | 'degraded' | 'moving';

/**
 * Where the copies of one replicated volume are and which may be promoted (docs/replication.md).
 * Kept in the workload's record, so a failover changes the owner, the epoch and the in-sync set in
 * one conditional write.
 */
export interface VolumeReplicaRecord {
  sizeBytes: number;
  /** Every node holding a copy, in sync or not. */
  replicas: string[];
  /** In sync: each acks every write; only these may be promoted. Contains the owner. */
  isr: string[];
  /** Copies outside the ISR, since when and why (a new copy is outdated until resynced). */
  outdated: Record<string, { since: number; reason: string }>;
  /** Raised at every change of `isr` or `replicas`; a primary acts only on a newer membership. */
  isrVersion: number;
}

export interface WorkloadRecord {
  name: string;
  spec: WorkloadSpec;
  /** Raised by the controller at every change of owner, in the store before any agent hears of it. */
  epoch: number;
  /** The owner at this epoch, or null while unplaced. */
  node: string | null;
  /** Raised by the operator's restart action; the owning agent restarts when it grows. */
  restartNonce: number;
  transition?: Transition;
  /** Nodes this workload must avoid (its remediation ladder gave up there), until the given time. */
  avoid: { node: string; until: number }[];
  /** Replicated volumes by name; absent until the workload is first placed. */
  volumes?: Record<string, VolumeReplicaRecord>;
  /** Why the last attempt to place or move it failed, kept so the journal says it once, not every tick. */
  blockedReason?: string;
  updatedAt: number;
}

export type InstanceState =
  'starting' | 'healthy' | 'unhealthy' | 'restarting' | 'failed' | 'stopping' | 'stopped';

export interface ProbeStatus {
  /** The last check's outcome. */
  ok: boolean;
  consecutiveFailures: number;
  lastCheckedAt?: number;
  lastError?: string;
  /** How long the last check took (a response time, for the latency threshold and charts). */
  lastDurationMs?: number;
  /**
   * The probe's verdict: one of its thresholds (consecutive failures, latency, error rate) is
   * crossed. The controller journals `probe.failed` and `probe.recovered` as this changes.
   */
  failing?: boolean;
  /** Which threshold is crossed, in words, while failing. */
  reason?: string;
  /** What failing does (docs/probes.md); absent in reports of older agents. */
  action?: 'alert' | 'script' | 'restart' | 'failover';
  /** The last remediation script this probe ran, and how it ended. */
  remediation?: { at: number; ok: boolean; message: string };
}

/** One incarnation of a workload on one node, as its agent reports it. */
export interface InstanceStatus {
  workload: string;
  node: string;
  epoch: number;
  state: InstanceState;
  pid?: number;
  /** Port of each endpoint on the node. */
  ports: Record<string, number>;
  startedAt?: number;
  /** Restarts in place within the current window. */
  restarts: number;
  restartNonce: number;
  /** Set when the remediation ladder has given up on this node. */
  failoverRequested: boolean;
  probes: Record<string, ProbeStatus>;
  message?: string;
  /**
   * Stopped because its volume's primary was fenced at this epoch (a newer primary, or the agent
   * self-fenced it): it does not start again at this epoch; the controller moves the workload.
   */
  fenced?: boolean;
}

export interface InstanceRecord extends InstanceStatus {
  /** Controller time at which this status was received. */
  reportedAt: number;
  /** Controller time at which the instance entered its current state. */
  stateSince: number;
}

export type EventSubjectKind =
  'cluster' | 'node' | 'workload' | 'instance' | 'controller' | 'action' | 'volume' | 'alert';

/** An event as a component proposes it; the store assigns `seq`. */
export interface NewEvent {
  at: number;
  kind: string;
  subject: { kind: EventSubjectKind; name: string };
  message: string;
  actor?: string;
  data?: Record<string, unknown>;
}

/** An entry of the append-only journal. */
export interface JournalEvent extends NewEvent {
  seq: number;
}

/** Where the redirector sends an endpoint's connections. */
export interface Route {
  workload: string;
  endpoint: string;
  listenHost: string;
  listenPort: number;
  epoch: number;
  /** The active instance of the current epoch, or null while none is healthy. */
  target: { node: string; host: string; port: number } | null;
}

export interface RouteTable {
  revision: number;
  routes: Route[];
}
