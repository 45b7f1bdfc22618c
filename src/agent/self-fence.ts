// Self-fencing (ARCHITECTURE.md section 3, item 5; docs/replication.md "Self-fencing"): when this
// node's primary has held its instance's operations for fenceTimeoutMs because an in-sync replica
// is silent (or its own copy is unclean), only the controller may change the in-sync set. If the
// agent has also heard nothing from any controller for fenceTimeoutMs, nobody will: the agent
// fences the primary (its held operations fail) and stops the instance, rather than leave it hung
// on I/O with a stale view. It does not fence merely because the controller is away: while every
// in-sync replica acknowledges at our epoch, no other primary can exist (promotion needs their
// acceptance of a newer epoch), so a controller outage stops no workload.
//
// The 'fenced' reports made while no session was open are kept (bounded) and sent after the next
// welcome, so the controller journals the self-fence once the agent is back in touch.
import type { PrimaryReportMessage } from '../core/protocol.js';

/** How long the agent waits, cut off from the controller with operations held, before it fences. */
export const agentFenceTimeoutMsDefault = 5000;
/** 'fenced' reports kept while no controller session is open; past it the oldest goes. */
export const unsentFencedReportsMax = 64;

export class SelfFence {
  private lastHeardAt: number;
  private connected = false;
  private readonly unsent: PrimaryReportMessage[] = [];

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
    this.connected = true;
  }

  /** How long no controller has been heard (VIPs are withdrawn past fenceTimeoutMs). */
  silentMs(now: number): number {
    return Math.max(0, now - this.lastHeardAt);
  }

  /** The session to the controller closed (it reconnects on its own). */
  lost(): void {
    this.connected = false;
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

  /** A 'fenced' report about to be sent: kept for after the next welcome if no session is open. */
  keepIfUnsent(report: PrimaryReportMessage): void {
    if (report.kind !== 'fenced' || this.connected) return;
    this.unsent.push(report);
    if (this.unsent.length > unsentFencedReportsMax) this.unsent.shift();
  }

  /** The kept reports, once: the session is open again. */
  takeUnsent(): PrimaryReportMessage[] {
    return this.unsent.splice(0);
  }
}
