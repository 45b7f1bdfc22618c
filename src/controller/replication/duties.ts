// What each node's volume server must do for replicated volumes, derived from the records (the
// owner serves as primary, every other holder of a copy is a replica, all at the workload's
// epoch), and what a primary's report changes in the record. Pure functions; the controller sends
// the duties with each node's assignment set and writes report changes conditionally.
import type { NodeRecord, WorkloadRecord } from '../../core/model.js';
import type { PrimaryReportMessage, VolumeDutyMessage } from '../../core/protocol.js';
import { dropFromIsr, type VolumeRecords } from './volume-records.js';

/**
 * Duties per node. A workload waiting for a planned handoff (its old instance still stopping) has
 * none: the new primary must not fence the old one while that one still flushes and unmounts.
 */
export function dutiesByNode(
  state: { nodes: readonly NodeRecord[]; workloads: readonly WorkloadRecord[] },
  waiting: (workload: WorkloadRecord) => boolean,
): Map<string, VolumeDutyMessage[]> {
  const addresses = new Map(state.nodes.map((n) => [n.name, n.replicationAddress ?? '']));
  const duties = new Map<string, VolumeDutyMessage[]>();
  for (const w of state.workloads) {
    if (w.volumes === undefined || waiting(w)) continue;
    for (const [volume, record] of Object.entries(w.volumes)) {
      const membership = {
        replicas: record.replicas.map((node) => ({ node, address: addresses.get(node) ?? '' })),
        isr: record.isr,
        isrVersion: record.isrVersion,
      };
      for (const node of record.replicas) {
        const role = node === w.node ? ('primary' as const) : ('replica' as const);
        const list = duties.get(node) ?? [];
        list.push({ volume, sizeBytes: record.sizeBytes, role, epoch: w.epoch, membership });
        duties.set(node, list);
      }
    }
  }
  return duties;
}

/**
 * The records after a primary's report, or undefined when it changes nothing. Only the owner's
 * reports at the current epoch count. An unresponsive ISR member is dropped (outdated); a caught-up
 * copy joins the ISR; an owner whose own copy was not closed cleanly ('unclean': it may have lost
 * writes the other ISR members hold) leaves the ISR when others remain in it, and decide.ts then
 * moves the workload to one of them. Either way the isrVersion moves on, even when the report is
 * out of date (the node already left, or is no longer a holder), so the primary stops waiting on
 * what it reported.
 */
export function recordsAfterReport(
  workload: WorkloadRecord,
  reporter: string,
  report: PrimaryReportMessage,
  now: number,
): { volumes: VolumeRecords; message: string } | undefined {
  if (report.kind !== 'unresponsive' && report.kind !== 'caught-up' && report.kind !== 'unclean')
    return undefined;
  const record = workload.volumes?.[report.volume];
  if (record === undefined || workload.node !== reporter || report.epoch !== workload.epoch)
    return undefined;
  if (report.isrVersion !== record.isrVersion) return undefined; // Decided already: the primary has or will get the newer one.
  const { node } = report;
  let next;
  let message;
  if (report.kind === 'unclean') {
    if (node !== reporter || !record.isr.includes(node) || record.isr.length < 2) {
      next = { ...record, isrVersion: record.isrVersion + 1 };
      message = `${node} reported its copy unclean, but it is not the owner's copy among others in sync`;
    } else {
      next = dropFromIsr(record, node, 'lost unflushed writes in a crash', now);
      message = `the copy on ${node} was not closed cleanly (it may have lost unflushed writes): it leaves the in-sync set`;
    }
  } else if (report.kind === 'unresponsive') {
    if (node === reporter || !record.isr.includes(node)) {
      next = { ...record, isrVersion: record.isrVersion + 1 };
      message = `${node} was reported unresponsive but is not a replica in sync`;
    } else {
      next = dropFromIsr(record, node, `unresponsive to the primary on ${reporter}`, now);
      message = `${node} stopped answering the primary on ${reporter}: it leaves the in-sync set`;
    }
  } else if (record.replicas.includes(node) && !record.isr.includes(node)) {
    const outdated = { ...record.outdated };
    delete outdated[node];
    next = { ...record, isr: [...record.isr, node], outdated, isrVersion: record.isrVersion + 1 };
    message = `${node} caught up: it joins the in-sync set`;
  } else {
    next = { ...record, isrVersion: record.isrVersion + 1 };
    message = `${node} caught up but is no longer a copy to add`;
  }
  return {
    volumes: { ...workload.volumes, [report.volume]: next },
    message: `volume ${report.volume}: ${message} (in sync: ${next.isr.join(', ')})`,
  };
}
