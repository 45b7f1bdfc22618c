// Validation of one transmission request against the session and the limits, before the device
// sees it: unknown commands and flags, ranges, read-only exports, features not negotiated. Pure;
// returns undefined for a request to execute, or the error value and a message to reply with.
import type { Session } from './exports.js';
import type { NbdLimits } from './limits.js';
import * as P from './protocol.js';

export interface Refusal {
  readonly errno: number;
  readonly message: string;
}

/** Command flags each command accepts. FUA is valid on every command (the specification says). */
const allowedFlags: Record<number, number> = {
  [P.NBD_CMD_READ]: P.NBD_CMD_FLAG_FUA | P.NBD_CMD_FLAG_DF,
  [P.NBD_CMD_WRITE]: P.NBD_CMD_FLAG_FUA,
  [P.NBD_CMD_DISC]: P.NBD_CMD_FLAG_FUA,
  [P.NBD_CMD_FLUSH]: P.NBD_CMD_FLAG_FUA,
  [P.NBD_CMD_TRIM]: P.NBD_CMD_FLAG_FUA,
  [P.NBD_CMD_WRITE_ZEROES]: P.NBD_CMD_FLAG_FUA | P.NBD_CMD_FLAG_NO_HOLE,
  [P.NBD_CMD_BLOCK_STATUS]: P.NBD_CMD_FLAG_FUA | P.NBD_CMD_FLAG_REQ_ONE,
};

function refuse(errno: number, message: string): Refusal {
  return { errno, message };
}

function describe(type: number, offset: number, length: number): string {
  return `${P.commandName(type)} at ${offset} for ${length} bytes`;
}

/** The first problem with a request, or undefined when it may run. */
export function checkRequest(
  session: Session,
  limits: NbdLimits,
  request: { type: number; flags: number; offset: number; length: number },
): Refusal | undefined {
  const { type, flags, offset, length } = request;
  const allowed = allowedFlags[type];
  if (allowed === undefined) return refuse(P.NBD_EINVAL, `unknown command ${type}`);
  if ((flags & ~allowed) !== 0) {
    return refuse(
      P.NBD_EINVAL,
      `flags 0x${flags.toString(16)} not valid for ${P.commandName(type)}`,
    );
  }
  if (type === P.NBD_CMD_FLUSH) return undefined;
  if ((flags & P.NBD_CMD_FLAG_DF) !== 0 && !session.structuredReplies) {
    return refuse(P.NBD_EINVAL, 'NBD_CMD_FLAG_DF needs structured replies');
  }
  const writes =
    type === P.NBD_CMD_WRITE || type === P.NBD_CMD_TRIM || type === P.NBD_CMD_WRITE_ZEROES;
  if (writes && session.readOnly) {
    return refuse(P.NBD_EPERM, `${P.commandName(type)} on read-only export ${session.exportName}`);
  }
  if (type === P.NBD_CMD_BLOCK_STATUS && !session.blockStatus) {
    return refuse(P.NBD_EINVAL, 'block status without a selected base:allocation context');
  }
  // offset is Infinity when the client sent more than 2^53; the sum stays exact below that.
  if (offset + length > session.sizeBytes) {
    const errno =
      type === P.NBD_CMD_WRITE || type === P.NBD_CMD_WRITE_ZEROES ? P.NBD_ENOSPC : P.NBD_EINVAL;
    return refuse(
      errno,
      `${describe(type, offset, length)} ends past the export size ${session.sizeBytes}`,
    );
  }
  const bounded = type === P.NBD_CMD_READ || type === P.NBD_CMD_WRITE_ZEROES;
  if (bounded && length > limits.requestBytesMax) {
    return refuse(
      P.NBD_EINVAL,
      `${describe(type, offset, length)} exceeds requestBytesMax ${limits.requestBytesMax}`,
    );
  }
  if (type === P.NBD_CMD_BLOCK_STATUS && length === 0) {
    return refuse(P.NBD_EINVAL, 'block status for 0 bytes');
  }
  return undefined;
}
