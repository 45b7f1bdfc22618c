// The remediation ladder's arithmetic (ARCHITECTURE.md section 4): restart in place with
// exponential backoff, at most maxRestarts within windowMs, then give up so the controller can
// fail over. Pure, so the simulator and the agent share it.
import type { RestartPolicy } from '../core/spec.js';

export type LadderStep =
  { action: 'restart'; delayMs: number; attempt: number } | { action: 'give-up'; restarts: number };

/** Restart times still inside the window, oldest first. */
export function recentRestarts(
  times: readonly number[],
  now: number,
  policy: RestartPolicy,
): number[] {
  return times.filter((t) => now - t < policy.windowMs);
}

export function nextStep(times: readonly number[], now: number, policy: RestartPolicy): LadderStep {
  const recent = recentRestarts(times, now, policy);
  if (recent.length >= policy.maxRestarts) return { action: 'give-up', restarts: recent.length };
  const delayMs = Math.min(policy.backoffMaxMs, policy.backoffInitialMs * 2 ** recent.length);
  return { action: 'restart', delayMs, attempt: recent.length + 1 };
}
