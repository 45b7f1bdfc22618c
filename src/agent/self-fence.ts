// Self-fencing (ARCHITECTURE.md section 3, item 5; docs/replication.md "Self-fencing"): when this
// node's primary has held its instance's operations for fenceTimeoutMs because an in-sync replica
// is silent (or its own copy is unclean), only the controller may change the in-sync set. If the
// agent has also heard nothing from any controller for fenceTimeoutMs, nobody will: the agent
// fences the primary (its held operations fail) and stops the instance, rather than leave it hung
// on I/O with a stale view. It does not fence merely because the controller is away: while every
// in-sync replica acknowledges at our epoch, no other primary can exist (promotion needs their
// acceptance of a newer epoch), so a controller outage stops no workload.
//
// Every 'fenced' report is delivered at least once: the agent cannot know whether a session
// delivered it (a cut session stays open until its pings time out; an agent resumed after a hang
// hears what the controller sent before it closed the session, then writes into a dead socket).
// So the report is kept (bounded) until the controller says it took it ('fenced-taken'), sent again
// after each welcome and, on a session that answers its pings, every fencedReportResendMs. The
// controller journals each fence (volume, node, epoch) once, however often it is reported.
import type { PrimaryReportMessage } from '../core/protocol.js';

/** How long the agent waits, cut off from the controller with operations held, before it fences. */
export const agentFenceTimeoutMsDefault = 5000;
/** 'fenced' reports kept until the controller took them; past it the oldest goes. */
export const keptFencedReportsMax = 64;
/** A kept 'fenced' report not taken this long after it was sent is sent again. */
export const fencedReportResendMs = 2000;

export class SelfFence {
  private lastHeardAt: number;
  private readonly kept: { report: PrimaryReportMessage & { kind: 'fenced' }; sentAt: number }[] =
    [];

  constructor(
    private readonly fenceTimeoutMs: number,
    now: number,
  ) {
    if (!Number.isInteger(fenceTimeoutMs) || fenceTimeoutMs <= 0)
      throw new RangeError(
        `agent fenceTimeoutMs: expected a positive whole number of milliseconds, got ${fenceTimeoutMs}`,
      );
    // Not heard yet: the agent's start counts as contact, so a fresh agent does not fence at once.
    this.lastHeardAt = now;
  }

  /** Something arrived from the controller (a message, or a keep-alive answer). */
  heard(now: number): void {
    this.lastHeardAt = Math.max(this.lastHeardAt, now);
  }

  /** How long no controller has been heard (VIPs are withdrawn past fenceTimeoutMs). */
  silentMs(now: number): number {
    return Math.max(0, now - this.lastHeardAt);
  }

  /**
   * The reason to self-fence for this report, or undefined: only 'unresponsive' or 'unclean'
   * reports (operations held) waiting at least fenceTimeoutMs, with no controller heard as long.
   */
  reasonFor(report: PrimaryReportMessage, now: number): string | undefined {
    if (report.kind !== 'unresponsive' && report.kind !== 'unclean') return undefined;
    const silentMs = Math.round(now - this.lastHeardAt);
    if (report.waitingMs < this.fenceTimeoutMs || silentMs < this.fenceTimeoutMs) return undefined;
    const cause =
      report.kind === 'unclean'
        ? 'its copy was not closed cleanly'
        : `in-sync replica ${report.node} is silent`;
    return (
      `self-fenced: operations waited ${report.waitingMs} ms (${cause}) and no controller was ` +
      `heard for ${silentMs} ms (fenceTimeoutMs ${this.fenceTimeoutMs})`
    );
  }

  /** A report about to be sent (at `now`): a 'fenced' one is kept until taken. */
  keepUntilTaken(report: PrimaryReportMessage, now: number): void {
    if (report.kind !== 'fenced') return;
    this.taken(report.volume, report.epoch);
    this.kept.push({ report, sentAt: now });
    if (this.kept.length > keptFencedReportsMax) this.kept.shift();
  }

  /** The controller took the fence of `volume` at `epoch`: it is not sent again. */
  taken(volume: string, epoch: number): void {
    const index = this.kept.findIndex(
      (k) => k.report.volume === volume && k.report.epoch === epoch,
    );
    if (index >= 0) this.kept.splice(index, 1);
  }

  /**
   * The kept reports to send again now: every one on a new session (`all`), else those sent at
   * least fencedReportResendMs ago. They count as sent at `now`.
   */
  due(now: number, all = false): PrimaryReportMessage[] {
    const due = this.kept.filter((k) => all || now - k.sentAt >= fencedReportResendMs);
    for (const k of due) k.sentAt = now;
    return due.map((k) => k.report);
  }
}
