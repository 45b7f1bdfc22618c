// Operator actions: apply a spec, switch a workload over, restart it, put a node in or out of
// maintenance, delete a workload. Each is validated whole, written as one conditional
// transaction with its journal event naming who did it, and then left to the reconcile loop.
import { ContinuumError } from '../core/errors.js';
import { keys, type NodeRecord, type NewEvent, type WorkloadRecord } from '../core/model.js';
import { vipIp, type ClusterSpec } from '../core/spec.js';
import { validateSpec, type SpecProblem } from '../core/spec-validate.js';
import type { Controller } from './controller.js';
import { readAlertingBefore, withAlerting } from './alerts/apply-alerting.js';
import { place } from './scheduler/place.js';
import { readState, type ClusterState } from './reconcile/state.js';

export interface ApplyResult {
  created: string[];
  updated: string[];
  unchanged: string[];
  revision: number;
}

function specInvalid(problems: SpecProblem[]): ContinuumError {
  return new ContinuumError(
    'CONTINUUM_ERR_SPEC_INVALID',
    `the spec has ${problems.length} problem(s); nothing was applied`,
    {
      details: { problems },
    },
  );
}

async function writeOrConflict(
  controller: Controller,
  build: (state: ClusterState) => Parameters<Controller['store']['txn']>[0],
): Promise<number> {
  for (let attempt = 0; attempt < controller.config.writeAttemptsMax; attempt++) {
    const state = await readState(controller.store);
    const result = await controller.store.txn(build(state));
    if (result.ok) {
      controller.poke();
      return result.revision;
    }
  }
  throw new ContinuumError(
    'CONTINUUM_ERR_CONFLICT',
    'the cluster changed during the request; try again',
  );
}

export async function applySpec(
  controller: Controller,
  input: unknown,
  actor: string,
): Promise<ApplyResult> {
  const current = await readState(controller.store);
  const sites = (await controller.store.range<{ name: string }>(keys.prefixes.sites)).entries.map(
    (e) => e.value.name,
  );
  const validation = validateSpec(input, {
    sites,
    nodes: current.nodes,
    workloads: current.workloads.map((w) => w.name),
    endpoints: current.workloads.flatMap((w) =>
      w.spec.endpoints.map((e) => ({
        workload: w.name,
        host: e.host,
        port: e.port,
        ...(e.vip === undefined ? {} : { vip: vipIp(e.vip) }),
      })),
    ),
  });
  if (!validation.ok) throw specInvalid(validation.problems);
  const spec = validation.spec;
  const result: ApplyResult = { created: [], updated: [], unchanged: [], revision: 0 };
  result.revision = await controller.exclusive(async () => {
    const before = await readAlertingBefore(controller.store);
    return writeOrConflict(controller, (state) => {
      result.created = [];
      result.updated = [];
      result.unchanged = [];
      const now = controller.clock.now();
      const note = (kind: 'created' | 'updated' | 'unchanged', what: string) =>
        result[kind].push(what);
      // The alerting part first, so that the spec.applied event counts it.
      const alerting = withAlerting({}, spec.alerting, { before, now, actor, note });
      const txn = specTxn(state, spec, now, actor, result);
      return {
        ...txn,
        compares: [...txn.compares, ...(alerting.compares ?? [])],
        puts: [...txn.puts, ...(alerting.puts ?? [])],
      };
    });
  });
  return result;
}

function specTxn(
  state: ClusterState,
  spec: ClusterSpec,
  now: number,
  actor: string,
  result: ApplyResult,
) {
  const compares: { key: string; modRevision: number }[] = [];
  const puts: { key: string; value: unknown }[] = [];
  const events: NewEvent[] = [];
  const note = (kind: 'created' | 'updated' | 'unchanged', what: string) => result[kind].push(what);
  for (const site of spec.sites) {
    puts.push({ key: keys.site(site.name), value: site });
  }
  for (const node of spec.nodes) {
    const key = keys.node(node.name);
    const existing = state.nodes.find((n) => n.name === node.name);
    compares.push({ key, modRevision: state.revisions.get(key) ?? 0 });
    const capacity = node.capacity ?? existing?.capacity ?? { cpu: 1, memoryMiB: 1024 };
    const value: NodeRecord = existing
      ? {
          ...existing,
          site: node.site,
          role: node.role,
          capacity,
          labels: node.labels,
          declared: true,
        }
      : {
          name: node.name,
          site: node.site,
          role: node.role,
          capacity,
          labels: node.labels,
          address: '127.0.0.1',
          declared: true,
          liveness: 'unknown',
          livenessChangedAt: now,
          maintenance: false,
        };
    puts.push({ key, value });
    note(existing ? 'updated' : 'created', `node/${node.name}`);
  }
  for (const workload of spec.workloads) {
    const key = keys.workload(workload.name);
    const existing = state.workloads.find((w) => w.name === workload.name);
    compares.push({ key, modRevision: state.revisions.get(key) ?? 0 });
    if (existing !== undefined && JSON.stringify(existing.spec) === JSON.stringify(workload)) {
      note('unchanged', `workload/${workload.name}`);
      continue;
    }
    // A changed command, environment or endpoint takes effect through a restart in place.
    const restart =
      existing !== undefined &&
      JSON.stringify([existing.spec.process, existing.spec.endpoints]) !==
        JSON.stringify([workload.process, workload.endpoints]);
    const value: WorkloadRecord = existing
      ? {
          ...existing,
          spec: workload,
          restartNonce: existing.restartNonce + (restart ? 1 : 0),
          updatedAt: now,
        }
      : {
          name: workload.name,
          spec: workload,
          epoch: 0,
          node: null,
          restartNonce: 0,
          avoid: [],
          updatedAt: now,
        };
    puts.push({ key, value });
    note(existing ? 'updated' : 'created', `workload/${workload.name}`);
  }
  events.push({
    at: now,
    kind: 'spec.applied',
    subject: { kind: 'cluster', name: 'spec' },
    actor,
    message: `spec applied by ${actor}: ${result.created.length} created, ${result.updated.length} updated, ${result.unchanged.length} unchanged`,
    data: { created: result.created, updated: result.updated },
  });
  return { compares, puts, events };
}

function findWorkload(state: ClusterState, name: string): WorkloadRecord {
  const workload = state.workloads.find((w) => w.name === name);
  if (workload === undefined)
    throw new ContinuumError('CONTINUUM_ERR_WORKLOAD_NOT_FOUND', `no workload named "${name}"`);
  return workload;
}

function findNode(state: ClusterState, name: string): NodeRecord {
  const node = state.nodes.find((n) => n.name === name);
  if (node === undefined)
    throw new ContinuumError('CONTINUUM_ERR_NODE_NOT_FOUND', `no node named "${name}"`);
  return node;
}

/** A planned move with zero loss: the new owner starts only after the old instance has stopped. */
export async function switchover(
  controller: Controller,
  name: string,
  options: { to?: string; actor: string },
): Promise<{ epoch: number; node: string }> {
  let chosen = { epoch: 0, node: '' };
  await controller.exclusive(() =>
    writeOrConflict(controller, (state) => {
      const workload = findWorkload(state, name);
      if (options.to !== undefined) findNode(state, options.to);
      const decision = place(
        {
          nodes: state.nodes.map((n) => ({
            ...n,
            schedulable: n.liveness === 'up' && !n.maintenance,
          })),
          workloads: state.workloads.map((w) => ({ name: w.name, spec: w.spec, node: w.node })),
        },
        {
          workload: name,
          purpose: 'switchover',
          exclude: workload.node === null ? [] : [workload.node],
          ...(options.to === undefined ? {} : { preferNode: options.to }),
        },
      );
      if (!decision.ok)
        throw new ContinuumError(
          'CONTINUUM_ERR_NO_PLACEMENT',
          `cannot switch ${name} over: ${decision.reason}`,
        );
      if (decision.preempt.length > 0) {
        throw new ContinuumError(
          'CONTINUUM_ERR_NO_PLACEMENT',
          `switching ${name} to ${decision.node} would preempt ${decision.preempt.join(', ')}; refused`,
        );
      }
      const now = controller.clock.now();
      const epoch = workload.epoch + 1;
      chosen = { epoch, node: decision.node };
      const key = keys.workload(name);
      const value: WorkloadRecord = {
        ...workload,
        epoch,
        node: decision.node,
        transition: {
          id: `${name}@${epoch}`,
          kind: 'switchover',
          reason: `switchover requested by ${options.actor}`,
          epoch,
          fromNode: workload.node,
          toNode: decision.node,
          detectedAt: now,
          decidedAt: now,
        },
        updatedAt: now,
      };
      return {
        compares: [{ key, modRevision: state.revisions.get(key) ?? 0 }],
        puts: [{ key, value }],
        events: [
          {
            at: now,
            kind: 'switchover.decided',
            subject: { kind: 'workload', name },
            actor: options.actor,
            message: `switchover of ${name} from ${workload.node ?? 'nowhere'} to ${decision.node} at epoch ${epoch}, requested by ${options.actor}`,
            data: { epoch, fromNode: workload.node, toNode: decision.node },
          },
        ],
      };
    }),
  );
  return chosen;
}

export async function restartWorkload(
  controller: Controller,
  name: string,
  actor: string,
): Promise<{ restartNonce: number }> {
  let restartNonce = 0;
  await controller.exclusive(() =>
    writeOrConflict(controller, (state) => {
      const workload = findWorkload(state, name);
      const now = controller.clock.now();
      restartNonce = workload.restartNonce + 1;
      const key = keys.workload(name);
      return {
        compares: [{ key, modRevision: state.revisions.get(key) ?? 0 }],
        puts: [{ key, value: { ...workload, restartNonce, updatedAt: now } }],
        events: [
          {
            at: now,
            kind: 'workload.restart',
            subject: { kind: 'workload', name },
            actor,
            message: `restart of ${name} requested by ${actor}`,
          },
        ],
      };
    }),
  );
  return { restartNonce };
}

export async function setMaintenance(
  controller: Controller,
  name: string,
  on: boolean,
  actor: string,
): Promise<void> {
  await controller.exclusive(() =>
    writeOrConflict(controller, (state) => {
      const node = findNode(state, name);
      const now = controller.clock.now();
      const key = keys.node(name);
      return {
        compares: [{ key, modRevision: state.revisions.get(key) ?? 0 }],
        puts: [{ key, value: { ...node, maintenance: on } }],
        events: [
          {
            at: now,
            kind: on ? 'node.maintenance.on' : 'node.maintenance.off',
            subject: { kind: 'node', name },
            actor,
            message: `maintenance ${on ? 'on' : 'off'} for ${name}, by ${actor}`,
          },
        ],
      };
    }),
  );
}

export async function deleteWorkload(
  controller: Controller,
  name: string,
  actor: string,
): Promise<void> {
  await controller.exclusive(() =>
    writeOrConflict(controller, (state) => {
      findWorkload(state, name);
      const key = keys.workload(name);
      const now = controller.clock.now();
      return {
        compares: [{ key, modRevision: state.revisions.get(key) ?? 0 }],
        deletes: [key],
        events: [
          {
            at: now,
            kind: 'workload.deleted',
            subject: { kind: 'workload', name },
            actor,
            message: `workload ${name} deleted by ${actor}; its instances stop`,
          },
        ],
      };
    }),
  );
}
