// The driver lifecycle (ARCHITECTURE.md section 2; CONVENTIONS.md item 8): small, and built so a
// restarted agent re-attaches to running instances instead of relaunching them. The process
// driver is the real one; the simulator's fake driver passes the same contract suite.
import type { WorkloadSpec } from '../../core/spec.js';

export interface StartRequest {
  workload: string;
  epoch: number;
  spec: WorkloadSpec;
  /** Directory for this incarnation's runtime files (handle, socket, exit record, logs). */
  runDir: string;
  /** Working directory of the process, already resolved and created by the agent. */
  cwd: string;
  /** Variables the agent adds to the spec's env (CONTINUUM_*, PORT). */
  env: Record<string, string>;
}

/** Persisted by the agent (JSON) so that it can recover the instance after its own restart. */
export interface InstanceHandle {
  driver: string;
  workload: string;
  epoch: number;
  runDir: string;
  /** PID of the workload's main process; also its process group id. */
  pid: number;
  startedAt: number;
  /** Driver-private facts needed to re-attach (supervisor PID, socket path, process start time). */
  attach: Record<string, string | number>;
}

export interface ExitInfo {
  code: number | null;
  signal: string | null;
  at: number;
}

export interface InstanceInspection {
  running: boolean;
  pid: number;
  exit?: ExitInfo;
}

export interface InstanceStats {
  cpuSeconds: number;
  rssBytes: number;
  /** Open file descriptors of the instance's processes, where the driver can count them. */
  openFiles?: number;
}

export interface Driver {
  readonly name: string;
  /** Resolves once the process is spawned (not once it is healthy). */
  start(request: StartRequest): Promise<InstanceHandle>;
  /** Re-attaches after an agent restart; null when the instance is gone (its exit is then recorded). */
  recover(handle: InstanceHandle): Promise<InstanceHandle | null>;
  /** Calls listener once when the instance's process exits; returns an unsubscribe function. */
  onExit(handle: InstanceHandle, listener: (exit: ExitInfo) => void): () => void;
  /** SIGTERM to the process group, SIGKILL after graceMs; resolves when every process is gone. */
  stop(handle: InstanceHandle, options: { graceMs: number }): Promise<ExitInfo>;
  /** Kills at once and releases everything the driver holds for the instance. */
  destroy(handle: InstanceHandle): Promise<void>;
  inspect(handle: InstanceHandle): Promise<InstanceInspection>;
  stats(handle: InstanceHandle): Promise<InstanceStats>;
  /**
   * The last lines the instance wrote (its output, oldest first), from its run directory, also
   * after it stopped. Optional: a driver without it answers that it keeps no output.
   */
  logTail?(runDir: string, options: LogTailOptions): Promise<LogTail>;
}

export interface LogTailOptions {
  linesMax: number;
  /** Most bytes read from the end of the output. */
  bytesMax: number;
  /** Longest line returned; the rest is cut. */
  lineCharsMax: number;
}

export interface LogTail {
  lines: string[];
  /** Older output exists beyond what was read. */
  truncated: boolean;
}
