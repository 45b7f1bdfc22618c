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
  };
}

export function countClose(counters: NbdCounters, code: NbdCloseCode): void {
  counters.closedByServer[code] = (counters.closedByServer[code] ?? 0) + 1;
}

export function copyCounters(counters: NbdCounters): NbdCounters {
  return { ...counters, closedByServer: { ...counters.closedByServer } };
}
