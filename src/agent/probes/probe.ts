// The probe port: one check of one probe, run next to the instance. The agent's remediation
// ladder decides what repeated failures mean; a probe only says ok or not, and why.
import type { ProbeSpec } from '../../core/spec.js';

export interface ProbeTarget {
  /** Host the instance's endpoints listen on (the node's loopback for local checks). */
  host: string;
  /** Port of each endpoint of the instance, by endpoint name. */
  ports: Record<string, number>;
  cwd: string;
  env: Record<string, string>;
}

export interface ProbeResult {
  ok: boolean;
  durationMs: number;
  /** Why the check failed, in words an operator understands. */
  error?: string;
  /**
   * True when the target answered but not as expected (an HTTP status or body mismatch, an exec
   * exit code). Such failures count even while the instance starts; "nobody listening yet" does not.
   */
  answered?: boolean;
}

export interface ProbeRunner {
  run(probe: ProbeSpec, target: ProbeTarget, signal?: AbortSignal): Promise<ProbeResult>;
}
