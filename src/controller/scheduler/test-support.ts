// Builders shared by the scheduler's example tests: nodes and workloads with sensible defaults,
// and a runner for tables of (snapshot, request, expected decision or reason pattern).
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { workloadSpecSchema } from '../../core/spec.js';
import {
  place,
  type PlacementDecision,
  type PlacementRequest,
  type SchedulerNode,
  type SchedulerSnapshot,
  type SchedulerWorkload,
} from './place.js';

export const node = (name: string, extra: Partial<SchedulerNode> = {}): SchedulerNode => ({
  name,
  site: 'east',
  role: 'production',
  capacity: { cpu: 4, memoryMiB: 4096 },
  labels: {},
  schedulable: true,
  ...extra,
});
export const spare = (name: string, extra: Partial<SchedulerNode> = {}): SchedulerNode =>
  node(name, { role: 'spare', ...extra });

export interface WorkloadOptions {
  cpu?: number;
  memoryMiB?: number;
  priority?: number;
  labels?: Record<string, string>;
  antiAffinity?: string[];
  sites?: string[];
}
export function workload(
  name: string,
  owner: string | null,
  options: WorkloadOptions = {},
): SchedulerWorkload {
  const spec = workloadSpecSchema.parse({
    name,
    driver: 'process',
    process: { command: ['true'] },
    resources: { cpu: options.cpu ?? 1, memoryMiB: options.memoryMiB ?? 1024 },
    availability: {
      priority: options.priority ?? 100,
      placement: {
        labels: options.labels ?? {},
        antiAffinity: options.antiAffinity ?? [],
        sites: options.sites ?? [],
      },
    },
  });
  return { name, spec, node: owner };
}

export const ok = (node: string, preempt: string[] = []): PlacementDecision => ({
  ok: true,
  node,
  preempt,
});

export interface Case {
  name: string;
  snapshot: SchedulerSnapshot;
  request: PlacementRequest;
  expect: PlacementDecision | RegExp;
}

export function runTable(cases: Case[]): void {
  for (const c of cases) {
    it(c.name, () => {
      const decision = place(c.snapshot, c.request);
      if (c.expect instanceof RegExp) {
        assert.equal(decision.ok, false, `expected no placement, got ${JSON.stringify(decision)}`);
        if (!decision.ok) assert.match(decision.reason, c.expect);
      } else {
        assert.deepEqual(decision, c.expect);
      }
    });
  }
}

export const initial = (w: string): PlacementRequest => ({ workload: w, purpose: 'initial' });
export const failover = (w: string, from: string): PlacementRequest => ({
  workload: w,
  purpose: 'failover',
  exclude: [from],
});
