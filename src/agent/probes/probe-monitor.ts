// One probe of one running instance: its window of checks, its verdict and the status the agent
// reports for it. The instance runner decides what a failing verdict does (instance-runner.ts).
import type { ProbeStatus } from '../../core/model.js';
import { probeName, type ProbeSpec } from '../../core/probe-spec.js';
import type { ProbeResult } from './probe.js';
import { ProbeWindow } from './probe-window.js';
import { ResourceCheck } from './resource-check.js';

export interface ProbeChange {
  /** The last check's outcome differs from the one before. */
  okChanged: boolean;
  /** A threshold is crossed now, by the checks in the window: the probe's action is due. */
  crossed: boolean;
  /** The verdict turned to failing with this check. */
  becameFailing: boolean;
  /** The verdict cleared with this check. */
  recovered: boolean;
}

export class ProbeMonitor {
  readonly name: string;
  readonly resource: ResourceCheck | undefined;
  private readonly window: ProbeWindow;
  private current: ProbeStatus;
  /** A script action runs once per failing episode; if the probe fails again, the ladder climbs. */
  private scriptRan = false;

  constructor(
    readonly probe: ProbeSpec,
    index: number,
  ) {
    this.name = probeName(probe, index);
    this.window = new ProbeWindow(probe);
    this.resource = probe.type === 'resource' ? new ResourceCheck(probe) : undefined;
    this.current = { ok: false, consecutiveFailures: 0, action: probe.action };
  }

  get status(): ProbeStatus {
    return this.current;
  }

  get failing(): boolean {
    return this.current.failing === true;
  }

  /** A check while the instance starts: shown, but kept out of the window ("nobody listening yet"). */
  recordStartup(result: ProbeResult, now: number): void {
    this.current = this.next(result, now, result.ok ? 0 : this.current.consecutiveFailures + 1);
  }

  /**
   * A check of a running instance: it enters the window and may change the verdict. A failing
   * probe stays failing until a check passes with no threshold crossed, so a window emptied by a
   * remediation does not read as a recovery.
   */
  record(result: ProbeResult, now: number): ProbeChange {
    const before = this.current;
    this.window.add({ at: now, ok: result.ok, durationMs: result.durationMs });
    const verdict = this.window.verdict(now);
    const failing = verdict.failing || (before.failing === true && !result.ok);
    const next = this.next(result, now, this.window.consecutiveFailures);
    const { reason: _reason, ...rest } = next;
    const reason = verdict.failing ? verdict.reason : before.reason;
    this.current = failing
      ? { ...rest, failing: true, ...(reason === undefined ? {} : { reason }) }
      : { ...rest, failing: false };
    if (!failing) this.scriptRan = false;
    return {
      okChanged: before.ok !== result.ok,
      crossed: verdict.failing,
      becameFailing: failing && before.failing !== true,
      recovered: !failing && before.failing === true,
    };
  }

  /** True the first time a failing episode asks for the script; after that the ladder climbs. */
  takeScriptTurn(): boolean {
    if (this.scriptRan) return false;
    this.scriptRan = true;
    return true;
  }

  /** After a remediation script: its outcome is shown, and the window starts afresh. */
  remediated(outcome: { at: number; ok: boolean; message: string }): void {
    this.window.clear();
    this.current = { ...this.current, remediation: outcome };
  }

  private next(result: ProbeResult, now: number, consecutiveFailures: number): ProbeStatus {
    const { lastError: _lastError, ...rest } = this.current;
    return {
      ...rest,
      ok: result.ok,
      consecutiveFailures,
      lastCheckedAt: now,
      lastDurationMs: result.durationMs,
      ...(result.error === undefined ? {} : { lastError: result.error }),
    };
  }
}
