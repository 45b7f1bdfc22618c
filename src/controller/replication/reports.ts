// The shell around a primary's reports: each one that changes the in-sync set is written
// conditionally on the workload's record (retried on a conflict, bounded), with its journal event;
// fencing and finished resyncs are journaled. The pure part is duties.ts recordsAfterReport.
import { keys, type NewEvent, type WorkloadRecord } from '../../core/model.js';
import type { PrimaryReportMessage } from '../../core/protocol.js';
import { eventsPageMax, type StateStore } from '../../store/port.js';
import { recordsAfterReport } from './duties.js';

/** A resync in progress, as its primary last reported it (memory only: it is reported again). */
export interface ResyncView {
  volume: string;
  node: string;
  primary: string;
  mode: 'delta' | 'full' | 'verify';
  bytesCopied: number;
  bytesToCopy: number;
  blocksCompared: number;
  at: number;
  /** When bytesCopied or blocksCompared last grew (the first report counts as progress). */
  progressAt: number;
  /** Set once the resync was journaled as stalled, until it moves again. */
  stalledSince?: number;
}

interface ReportContext {
  readonly store: StateStore;
  readonly config: { readonly writeAttemptsMax: number };
  /** Resyncs in progress by `${volume}/${node}`. */
  readonly resyncs: Map<string, ResyncView>;
  poke(): void;
}

export async function volumeReport(
  controller: ReportContext,
  node: string,
  report: PrimaryReportMessage,
  now: number,
): Promise<void> {
  const subject = { kind: 'volume' as const, name: report.volume };
  if (report.kind === 'resync') {
    const key = `${report.volume}/${report.node}`;
    if (!report.done) {
      const { volume, node: target, mode, bytesCopied, bytesToCopy, blocksCompared } = report;
      const previous = controller.resyncs.get(key);
      const moved =
        previous === undefined ||
        bytesCopied > previous.bytesCopied ||
        blocksCompared > previous.blocksCompared;
      controller.resyncs.set(key, {
        volume,
        node: target,
        primary: node,
        mode,
        bytesCopied,
        bytesToCopy,
        blocksCompared,
        at: now,
        progressAt: moved ? now : previous.progressAt,
        ...(moved || previous.stalledSince === undefined
          ? {}
          : { stalledSince: previous.stalledSince }),
      });
      if (moved && previous?.stalledSince !== undefined)
        await controller.store.appendEvents([
          {
            at: now,
            kind: 'volume.resync-resumed',
            subject,
            message: `${mode} resync of ${target} moves again (${bytesCopied} of ${bytesToCopy} bytes)`,
            data: { node: target, primary: node },
          },
        ]);
      return;
    }
    controller.resyncs.delete(key);
  }
  if (report.kind === 'fenced' && (await fenceJournaled(controller.store, node, report))) return;
  if (report.kind === 'fenced' || report.kind === 'resync') {
    const message =
      report.kind === 'fenced'
        ? `the primary on ${node} at epoch ${report.epoch} is fenced: ${report.reason}`
        : `${report.mode} resync of ${report.node} done: ${report.bytesCopied} bytes copied, ${report.blocksCompared} blocks compared`;
    const kind = report.kind === 'fenced' ? 'volume.fenced' : 'volume.resynced';
    await controller.store.appendEvents([
      { at: now, kind, subject, message, data: { node, ...report } },
    ]);
    return;
  }
  for (let attempt = 0; attempt < controller.config.writeAttemptsMax; attempt++) {
    const workloads = await controller.store.range<WorkloadRecord>(keys.prefixes.workloads);
    const entry = workloads.entries.find((e) => e.value.volumes?.[report.volume] !== undefined);
    if (entry === undefined) return;
    const change = recordsAfterReport(entry.value, node, report, now);
    if (change === undefined) return;
    const value: WorkloadRecord = { ...entry.value, volumes: change.volumes, updatedAt: now };
    const event: NewEvent = {
      at: now,
      kind: report.kind === 'caught-up' ? 'volume.isr-grown' : 'volume.isr-shrunk',
      subject,
      message: change.message,
      data: {
        primary: node,
        node: report.node,
        isrVersion: change.volumes[report.volume]?.isrVersion,
      },
    };
    const result = await controller.store.txn({
      compares: [{ key: entry.key, modRevision: entry.modRevision }],
      puts: [{ key: entry.key, value }],
      events: [event],
    });
    if (result.ok) {
      controller.poke();
      return;
    }
  }
}

/**
 * Whether this fence (the primary on `node` at the report's epoch) is journaled already: an agent
 * that could not tell whether its session delivered a 'fenced' report sends it again after its
 * next welcome. Fences are few, so the volume's are read page by page.
 */
async function fenceJournaled(
  store: StateStore,
  node: string,
  report: PrimaryReportMessage & { kind: 'fenced' },
): Promise<boolean> {
  let afterSeq = 0;
  for (;;) {
    const page = await store.readEvents({
      afterSeq,
      limit: eventsPageMax,
      kinds: ['volume.fenced'],
      subject: { kind: 'volume', name: report.volume },
    });
    if (page.some((e) => e.data?.node === node && e.data.epoch === report.epoch)) return true;
    if (page.length < eventsPageMax) return false;
    afterSeq = page.at(-1)!.seq;
  }
}

/**
 * Journals each resync that has made no progress for stallMs (its primary reports the same
 * figures, or stopped reporting), once, as `volume.resync-stalled`; a replica that stays outside
 * the in-sync set that way leaves the volume with one copy fewer than asked, so operators hear.
 */
export async function journalStalledResyncs(
  controller: Pick<ReportContext, 'store' | 'resyncs'>,
  now: number,
  stallMs: number,
): Promise<void> {
  const events: NewEvent[] = [];
  for (const resync of controller.resyncs.values()) {
    if (resync.stalledSince !== undefined || now - resync.progressAt < stallMs) continue;
    resync.stalledSince = now;
    const silentMs = now - resync.at;
    events.push({
      at: now,
      kind: 'volume.resync-stalled',
      subject: { kind: 'volume', name: resync.volume },
      message: `${resync.mode} resync of ${resync.node} from ${resync.primary} made no progress for ${Math.round((now - resync.progressAt) / 1000)} s (${resync.bytesCopied} of ${resync.bytesToCopy} bytes${silentMs >= stallMs ? `; no report for ${Math.round(silentMs / 1000)} s` : ''})`,
      data: { node: resync.node, primary: resync.primary, bytesCopied: resync.bytesCopied },
    });
  }
  if (events.length > 0) await controller.store.appendEvents(events);
}
