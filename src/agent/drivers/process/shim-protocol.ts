// The contract between the process driver and its per-instance supervisor (the shim): the files
// the shim keeps in the run directory and the newline-delimited JSON spoken on its unix socket.
// Type-only plus constants, so the shim can import it without slowing its start.

/** Names of the files in an instance's run directory. */
export const runFiles = {
  socket: 'shim.sock',
  shimRecord: 'shim.json',
  exitRecord: 'exit.json',
  env: 'env.json',
  shimLog: 'shim.log',
  logDir: 'logs',
  outputLog: 'output.log',
} as const;

/** Written by the shim once the workload is spawned; lets a restarted agent detect PID reuse. */
export interface ShimRecord {
  shimPid: number;
  pid: number;
  startedAt: number;
  /** Field 22 of /proc/<pid>/stat (clock ticks since boot): PID plus this names one process. */
  procStartTime: number;
}

/** Written atomically by the shim (tmp + rename) when the workload exits. */
export interface ExitRecord {
  code: number | null;
  signal: string | null;
  at: number;
}

/** Shim to client. `hello` always comes first; `exited` follows at once if the workload is gone. */
export type ShimEvent =
  ({ ev: 'hello' } & ShimRecord) | ({ ev: 'exited'; pid: number } & ExitRecord);

/** Client to shim: the signal goes to the workload's whole process group. */
export interface ShimCommand {
  op: 'signal';
  signal: NodeJS.Signals;
}

/** Defaults the driver passes on the shim's command line (`--name value`). */
export const shimDefaults = {
  logFileBytesMax: 10 * 1024 * 1024,
  logFilesKept: 3,
  /** How long the shim stays after the workload's exit for a client to hear of it. */
  exitLingerMs: 2000,
} as const;

/** A unix socket path longer than this does not fit in sockaddr_un on Linux. */
export const socketPathBytesMax = 107;

/** Largest line either side accepts; anything longer is a protocol error and closes the socket. */
export const messageBytesMax = 64 * 1024;
