// Stable codes for the ways an NBD connection ends badly (CONVENTIONS.md item 10), and the mapping
// from block device errors to the error values NBD replies carry. A protocol violation closes that
// one connection with a logged code and reason; nothing here is allowed to stop the server.
import { BlockDeviceError } from '../block-device.js';
import { NBD_EINVAL, NBD_EIO, NBD_ENOSPC, NBD_EPERM, NBD_ESHUTDOWN } from './protocol.js';

export const nbdCloseCodes = {
  /** An option or request did not start with the magic number; the stream cannot be resynced. */
  CONTINUUM_ERR_NBD_BAD_MAGIC: { retryable: false },
  /** The client set flags the server did not offer (the specification requires a disconnect). */
  CONTINUUM_ERR_NBD_BAD_CLIENT_FLAGS: { retryable: false },
  /** The handshake did not reach the transmission phase within handshakeTimeoutMs. */
  CONTINUUM_ERR_NBD_HANDSHAKE_TIMEOUT: { retryable: true },
  /** More options than handshakeOptionsMax in one handshake. */
  CONTINUUM_ERR_NBD_TOO_MANY_OPTIONS: { retryable: false },
  /** NBD_OPT_EXPORT_NAME named an export that does not exist; that option cannot carry an error. */
  CONTINUUM_ERR_NBD_UNKNOWN_EXPORT: { retryable: false },
  /** A write payload above requestBytesMax: reading it would be a denial of service. */
  CONTINUUM_ERR_NBD_PAYLOAD_TOO_LARGE: { retryable: false },
  /** The server already holds connectionsMax connections. */
  CONTINUUM_ERR_NBD_CONNECTIONS_MAX: { retryable: true },
  /** The server is shutting down (drain deadline passed, or destroy()). */
  CONTINUUM_ERR_NBD_SHUTDOWN: { retryable: true },
  /**
   * Handling this connection's bytes threw: a bug in the server, reached by this client's input.
   * Only this connection is closed; the stack is logged at error level.
   */
  CONTINUUM_ERR_NBD_INTERNAL: { retryable: false },
} as const;

export type NbdCloseCode = keyof typeof nbdCloseCodes;

/** Why a connection was closed by the server; logged, counted, never thrown past the connection. */
export class NbdProtocolError extends Error {
  readonly code: NbdCloseCode;
  readonly retryable: boolean;
  constructor(code: NbdCloseCode, message: string) {
    super(message);
    this.name = 'NbdProtocolError';
    this.code = code;
    this.retryable = nbdCloseCodes[code].retryable;
  }
}

/** What a failed device call becomes on the wire, and whether it is worth a warning in the log. */
export interface ErrorReply {
  readonly errno: number;
  readonly message: string;
  /** False for expected refusals (read-only, out of range); true when the device itself failed. */
  readonly unexpected: boolean;
}

/**
 * Maps an error from a BlockDevice to an NBD error value. `range` on a write becomes ENOSPC, as the
 * specification asks for writes past the end. Anything that is not a BlockDeviceError is a bug in
 * the device; it is answered with EIO (that client's request fails, every other client carries on)
 * and reported as unexpected so that the server logs it at error level.
 */
export function errorReplyFor(error: unknown, isWrite: boolean): ErrorReply {
  if (error instanceof BlockDeviceError) {
    switch (error.kind) {
      case 'range':
        return {
          errno: isWrite ? NBD_ENOSPC : NBD_EINVAL,
          message: error.message,
          unexpected: false,
        };
      case 'read-only':
        return { errno: NBD_EPERM, message: error.message, unexpected: false };
      case 'no-space':
        return { errno: NBD_ENOSPC, message: error.message, unexpected: false };
      case 'closed':
        return { errno: NBD_ESHUTDOWN, message: error.message, unexpected: false };
      case 'corrupt':
      case 'io':
        return { errno: NBD_EIO, message: error.message, unexpected: true };
    }
  }
  const message = error instanceof Error ? error.message : String(error);
  return { errno: NBD_EIO, message: `internal error: ${message}`, unexpected: true };
}
