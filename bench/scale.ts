// Scale of decisions: a cluster of 1,000 nodes in 3 sites with 5,000 workloads loses a whole site.
// Measures the controller CPU time of the pure decision pass that fails every displaced workload
// over (failover/decide.ts with the real scheduler), the way the reconcile loop calls it.
import type { InstanceRecord, NodeRecord, WorkloadRecord } from '../src/core/model.js';
import { workloadSpecSchema } from '../src/core/spec.js';
import { defaultControllerConfig } from '../src/controller/config.js';
import { decide } from '../src/controller/failover/decide.js';

export interface ScaleOptions {
  nodes: number;
  sites: number;
  workloads: number;
}

function cluster(options: ScaleOptions): {
  nodes: NodeRecord[];
  workloads: WorkloadRecord[];
  instances: InstanceRecord[];
} {
  const nodes: NodeRecord[] = Array.from({ length: options.nodes }, (_, i) => ({
    name: `n${i}`,
    site: `site-${i % options.sites}`,
    role: i % 10 === 9 ? 'spare' : 'production',
    capacity: { cpu: 32, memoryMiB: 65536 },
    labels: { class: i % 2 === 0 ? 'a' : 'b' },
    address: '127.0.0.1',
    declared: true,
    liveness: 'up',
    livenessChangedAt: 0,
    maintenance: false,
  }));
  const production = nodes.filter((n) => n.role === 'production');
  const workloads: WorkloadRecord[] = Array.from({ length: options.workloads }, (_, i) => ({
    name: `w${i}`,
    spec: workloadSpecSchema.parse({
      name: `w${i}`,
      driver: 'process',
      process: { command: ['svc'] },
      resources: { cpu: 1 + (i % 3), memoryMiB: 1024 * (1 + (i % 4)) },
      availability: { priority: (i % 5) * 100 },
    }),
    epoch: 1,
    node: production[i % production.length]!.name,
    restartNonce: 0,
    avoid: [],
    updatedAt: 0,
  }));
  return { nodes, workloads, instances: [] };
}

export function benchScale(options: ScaleOptions): Record<string, unknown> {
  const state = cluster(options);
  const now = 1_000_000;
  const lastHeartbeatAt: Record<string, number> = {};
  for (const node of state.nodes)
    lastHeartbeatAt[node.name] = node.site === 'site-0' ? now - 10_000 : now - 50;
  const displaced = state.workloads.filter(
    (w) => state.nodes.find((n) => n.name === w.node)!.site === 'site-0',
  ).length;
  const before = process.cpuUsage();
  const started = performance.now();
  const decisions = decide(
    { now, startedAt: 0, ...state, lastHeartbeatAt },
    defaultControllerConfig,
  );
  const wallMs = performance.now() - started;
  const cpu = process.cpuUsage(before);
  const moves = decisions.filter((d) => d.type === 'move' && d.kind === 'failover');
  return {
    ...options,
    siteLost: 'site-0',
    displacedWorkloads: displaced,
    failoverDecisions: moves.filter((d) => d.type === 'move' && d.toNode !== null).length,
    unplaced: moves.filter((d) => d.type === 'move' && d.toNode === null).length,
    decideCpuMs: Math.round((cpu.user + cpu.system) / 1000),
    decideWallMs: Math.round(wallMs),
    targetCpuMs: 1000,
  };
}
