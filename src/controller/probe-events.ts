// What an instance report says about its probes that belongs in the journal: a probe whose
// verdict turned failing (`probe.failed`, with the action it takes), one that recovered
// (`probe.recovered`), and a remediation script that ran (`probe.remediated`). Alerts and the
// console follow these events (docs/probes.md).
import type { InstanceRecord, NewEvent, ProbeStatus } from '../core/model.js';

type Reported = {
  workload: string;
  node: string;
  epoch: number;
  probes: Record<string, ProbeStatus>;
};

/** Whether the probes part of a report differs from the record enough to be written. */
export function probesChanged(
  prev: Record<string, ProbeStatus>,
  next: Record<string, ProbeStatus>,
): boolean {
  return Object.entries(next).some(([name, p]) => {
    const before = prev[name];
    return (
      before?.ok !== p.ok ||
      (before.failing ?? false) !== (p.failing ?? false) ||
      before.remediation?.at !== p.remediation?.at ||
      before.lastDurationMs !== p.lastDurationMs
    );
  });
}

export function probeEvents(
  prev: InstanceRecord | undefined,
  status: Reported,
  now: number,
): NewEvent[] {
  const events: NewEvent[] = [];
  const sameIncarnation = prev !== undefined && prev.epoch === status.epoch;
  for (const [probe, p] of Object.entries(status.probes)) {
    const before = sameIncarnation ? prev.probes[probe] : undefined;
    const data = {
      workload: status.workload,
      node: status.node,
      epoch: status.epoch,
      probe,
      ...(p.action === undefined ? {} : { action: p.action }),
    };
    const subject = { kind: 'workload' as const, name: status.workload };
    const where = `probe ${probe} of ${status.workload} on ${status.node}`;
    if (p.failing === true && before?.failing !== true)
      events.push({
        at: now,
        kind: 'probe.failed',
        subject,
        message: `${where} is failing: ${p.reason ?? 'threshold crossed'}${p.lastError === undefined ? '' : ` (${p.lastError})`}; action: ${p.action ?? 'restart'}`,
        data: { ...data, ...(p.reason === undefined ? {} : { reason: p.reason }) },
      });
    if (p.failing !== true && before?.failing === true)
      events.push({
        at: now,
        kind: 'probe.recovered',
        subject,
        message: `${where} recovered`,
        data,
      });
    if (p.remediation !== undefined && p.remediation.at !== before?.remediation?.at)
      events.push({
        at: now,
        kind: 'probe.remediated',
        subject,
        message: `${where}: remediation script ${p.remediation.ok ? 'ran' : 'failed'}: ${p.remediation.message}`,
        data: { ...data, ok: p.remediation.ok },
      });
  }
  return events;
}
