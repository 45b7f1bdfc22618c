// What agents report, written to the store: a hello's node record (upsertNode), and an instance
// report (writeInstance): the instance record, the progress of its workload's transition and the
// journal events in one conditional write (false when a concurrent change made it fail: the
// caller reads again and retries). A stale report (an older epoch, or a node that no longer owns
// the workload) only clears a stopped instance's record.
import { keys, type InstanceRecord, type NodeRecord, type WorkloadRecord } from '../core/model.js';
import type { Logger } from '../core/ports.js';
import type { AgentHello, AgentMessage } from '../core/protocol.js';
import type { StateStore } from '../store/port.js';
import { progress } from './failover/progress.js';
import { probeEvents, probesChanged } from './probe-events.js';

/** A hello's node record: created at the first, kept up to date (address, inventory) after. */
export async function upsertNode(store: StateStore, hello: AgentHello, now: number): Promise<void> {
  const key = keys.node(hello.node);
  const existing = await store.get<NodeRecord>(key);
  const base: NodeRecord = existing?.value ?? {
    name: hello.node,
    site: hello.site,
    role: hello.role,
    capacity: hello.capacity,
    labels: hello.labels,
    address: hello.address,
    declared: false,
    liveness: 'unknown',
    livenessChangedAt: now,
    maintenance: false,
  };
  const fromAgent = base.declared
    ? {}
    : { site: hello.site, role: hello.role, capacity: hello.capacity, labels: hello.labels };
  const value: NodeRecord = {
    ...base,
    ...fromAgent,
    address: hello.address,
    inventory: hello.inventory,
    ...(hello.replicationAddress === undefined
      ? {}
      : { replicationAddress: hello.replicationAddress }),
  };
  const events =
    existing === undefined
      ? [
          {
            at: now,
            kind: 'node.joined',
            subject: { kind: 'node' as const, name: hello.node },
            message: `node ${hello.node} joined (site ${value.site}, role ${value.role})`,
          },
        ]
      : [];
  await store.txn({
    compares: [{ key, modRevision: existing?.modRevision ?? 0 }],
    puts: [{ key, value }],
    events,
  });
}

export async function writeInstance(
  store: StateStore,
  logger: Logger,
  status: AgentMessageStatus,
  now: number,
): Promise<boolean> {
  const instanceKey = keys.instance(status.workload, status.node);
  const workloadKey = keys.workload(status.workload);
  const [previous, workload] = await Promise.all([
    store.get<InstanceRecord>(instanceKey),
    store.get<WorkloadRecord>(workloadKey),
  ]);
  const prev = previous?.value;
  const stale =
    workload === undefined ||
    status.epoch < workload.value.epoch ||
    workload.value.node !== status.node;
  if (workload !== undefined && status.epoch > workload.value.epoch) {
    // An agent runs an epoch the store never held: the one thing that must never happen.
    logger.log('error', 'safety: instance epoch ahead of the store', { ...status });
  }
  const compares = [
    { key: instanceKey, modRevision: previous?.modRevision ?? 0 },
    { key: workloadKey, modRevision: workload?.modRevision ?? 0 },
  ];
  if (stale && status.state === 'stopped') {
    if (previous === undefined) return true;
    return (
      await store.txn({
        compares,
        deletes: [instanceKey],
        events: [instanceEvent(status, now, 'stopped (stale epoch)')],
      })
    ).ok;
  }
  const changed = prev === undefined || instanceChanged(prev, status);
  const update =
    workload === undefined ? { events: [] } : progress(workload.value, prev, status, now);
  if (!changed && update.transition === undefined) return true;
  const record: InstanceRecord = {
    ...status,
    reportedAt: now,
    stateSince: prev?.state === status.state && prev.epoch === status.epoch ? prev.stateSince : now,
  };
  const puts: { key: string; value: unknown }[] = [{ key: instanceKey, value: record }];
  if (update.transition !== undefined && workload !== undefined) {
    puts.push({
      key: workloadKey,
      value: { ...workload.value, transition: update.transition, updatedAt: now },
    });
  }
  const events = [
    ...(prev?.state !== status.state || prev.epoch !== status.epoch
      ? [instanceEvent(status, now)]
      : []),
    ...probeEvents(prev, status, now),
    ...update.events,
  ];
  return (await store.txn({ compares, puts, events })).ok;
}

export type AgentMessageStatus = Extract<AgentMessage, { type: 'instance' }>['status'];

function instanceChanged(prev: InstanceRecord, next: AgentMessageStatus): boolean {
  return (
    prev.state !== next.state ||
    prev.epoch !== next.epoch ||
    prev.pid !== next.pid ||
    prev.restarts !== next.restarts ||
    prev.restartNonce !== next.restartNonce ||
    prev.failoverRequested !== next.failoverRequested ||
    JSON.stringify(prev.ports) !== JSON.stringify(next.ports) ||
    probesChanged(prev.probes, next.probes)
  );
}

function instanceEvent(status: AgentMessageStatus, now: number, override?: string) {
  const detail = status.message === undefined ? '' : `: ${status.message}`;
  return {
    at: now,
    kind: `instance.${status.state}`,
    subject: { kind: 'instance' as const, name: `${status.workload}/${status.node}` },
    message:
      override ??
      `${status.workload} on ${status.node} (epoch ${status.epoch}) is ${status.state}${detail}`,
    data: {
      workload: status.workload,
      node: status.node,
      epoch: status.epoch,
      pid: status.pid,
      restarts: status.restarts,
    },
  };
}
