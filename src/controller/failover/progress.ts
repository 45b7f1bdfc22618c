// Pure bookkeeping of a change of owner as the new instance reports in: when it started, when it
// became healthy, and so the time to restore service (ARCHITECTURE.md section 4).
import type {
  InstanceRecord,
  InstanceStatus,
  NewEvent,
  Transition,
  WorkloadRecord,
} from '../../core/model.js';

export interface ProgressUpdate {
  transition?: Transition;
  events: NewEvent[];
}

/** Step durations of a completed transition, in milliseconds. */
export function transitionTimings(t: Transition): {
  detectMs?: number;
  decideMs: number;
  startMs?: number;
  healthyMs?: number;
  restoreMs?: number;
} {
  return {
    ...(t.failedAt === undefined ? {} : { detectMs: t.detectedAt - t.failedAt }),
    decideMs: t.decidedAt - t.detectedAt,
    ...(t.startedAt === undefined ? {} : { startMs: t.startedAt - t.decidedAt }),
    ...(t.startedAt === undefined || t.healthyAt === undefined
      ? {}
      : { healthyMs: t.healthyAt - t.startedAt }),
    ...(t.healthyAt === undefined ? {} : { restoreMs: t.healthyAt - (t.failedAt ?? t.detectedAt) }),
  };
}

export function progress(
  workload: WorkloadRecord,
  previous: InstanceRecord | undefined,
  status: InstanceStatus,
  now: number,
): ProgressUpdate {
  const t = workload.transition;
  if (
    t === undefined ||
    status.epoch !== workload.epoch ||
    status.node !== workload.node ||
    t.healthyAt !== undefined
  ) {
    return { events: [] };
  }
  const events: NewEvent[] = [];
  let next: Transition = t;
  const subject = { kind: 'workload' as const, name: workload.name };
  if (next.startedAt === undefined && previous?.epoch !== status.epoch) {
    next = { ...next, startedAt: now };
    events.push({
      at: now,
      kind: `${t.kind}.started`,
      subject,
      message: `instance started on ${status.node} at epoch ${status.epoch}`,
      data: { transition: t.id, node: status.node, epoch: status.epoch, pid: status.pid },
    });
  }
  if (status.state === 'healthy') {
    next = { ...next, healthyAt: now, startedAt: next.startedAt ?? now };
    const timings = transitionTimings(next);
    events.push({
      at: now,
      kind: `${t.kind}.completed`,
      subject,
      message:
        timings.restoreMs === undefined
          ? `healthy on ${status.node} at epoch ${status.epoch}`
          : `healthy on ${status.node} at epoch ${status.epoch}; service restored in ${timings.restoreMs} ms`,
      data: {
        transition: next.id,
        kind: t.kind,
        fromNode: t.fromNode,
        toNode: t.toNode,
        epoch: t.epoch,
        ...timings,
      },
    });
  }
  return next === t ? { events } : { transition: next, events };
}
