// Counters of an NBD server for metrics: connections, requests, bytes and errors. One mutable
// record shared by the server and its connections; readers get a copy from NbdServer.counters().
import type { NbdCloseCode } from './errors.js';

export interface NbdCounters {
  /** Connections accepted since the server started, including those refused at connectionsMax. */
  connectionsAccepted: number;
  /** Connections open now (handshake or transmission). */
  connectionsOpen: number;
  /** Connections closed on arrival because connectionsMax were open. */
  connectionsRefused: number;
  /** Handshakes that reached the transmission phase. */
  handshakesCompleted: number;
  /** Transmission requests received (every command but NBD_CMD_DISC). */
  requests: number;
  /** Payload bytes returned by reads and accepted by writes. */
  bytesRead: number;
  bytesWritten: number;
  /** Requests answered with an error value (refused by the checks, or failed by the device). */
  errorReplies: number;
  /** Connections the server closed for a protocol violation, timeout or shutdown, by code. */
  closedByServer: Partial<Record<NbdCloseCode, number>>;
  /** The same I/O by export (volume), for per-volume metrics; only exports that were opened. */
  byExport: Record<string, NbdExportCounters>;
}

/** Completed requests of one export: a request that failed counts in errorReplies only. */
export interface NbdExportCounters {
  reads: number;
  writes: number;
  flushes: number;
  trims: number;
  bytesRead: number;
  bytesWritten: number;
}

export type NbdCountedOp = 'read' | 'write' | 'flush' | 'trim';

/** Counts one completed request of an export (a handful of additions: cheap on the I/O path). */
export function countOp(
  counters: NbdCounters,
  exportName: string,
  op: NbdCountedOp,
  bytes = 0,
): void {
  let entry = counters.byExport[exportName];
  if (entry === undefined) {
    entry = { reads: 0, writes: 0, flushes: 0, trims: 0, bytesRead: 0, bytesWritten: 0 };
    counters.byExport[exportName] = entry;
  }
  if (op === 'read') {
    entry.reads++;
    entry.bytesRead += bytes;
  } else if (op === 'write') {
    entry.writes++;
    entry.bytesWritten += bytes;
  } else if (op === 'flush') entry.flushes++;
  else entry.trims++;
}

export function newCounters(): NbdCounters {
  return {
    connectionsAccepted: 0,
    connectionsOpen: 0,
    connectionsRefused: 0,
    handshakesCompleted: 0,
    requests: 0,
    bytesRead: 0,
    bytesWritten: 0,
    errorReplies: 0,
    closedByServer: {},
    byExport: {},
  };
}

export function countClose(counters: NbdCounters, code: NbdCloseCode): void {
  counters.closedByServer[code] = (counters.closedByServer[code] ?? 0) + 1;
}

export function copyCounters(counters: NbdCounters): NbdCounters {
  const byExport: Record<string, NbdExportCounters> = {};
  for (const [name, entry] of Object.entries(counters.byExport)) byExport[name] = { ...entry };
  return { ...counters, closedByServer: { ...counters.closedByServer }, byExport };
}
