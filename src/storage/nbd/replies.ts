// Encoders for transmission-phase replies: simple replies, and structured chunks for read data,
// errors and block status. Handles travel as two 32-bit halves so that no BigInt or copy of the
// request is needed. The transmission writes what these return; they never touch a socket.
import type { Extent } from '../block-device.js';
import { encodeString, writeUint64 } from './option-codec.js';
import {
  BASE_ALLOCATION_CONTEXT_ID,
  NBD_REPLY_FLAG_DONE,
  NBD_REPLY_TYPE_BLOCK_STATUS,
  NBD_REPLY_TYPE_ERROR,
  NBD_REPLY_TYPE_NONE,
  NBD_REPLY_TYPE_OFFSET_DATA,
  NBD_SIMPLE_REPLY_MAGIC,
  NBD_STATE_HOLE,
  NBD_STATE_ZERO,
  NBD_STRUCTURED_REPLY_MAGIC,
  SIMPLE_REPLY_BYTES,
  STRUCTURED_HEADER_BYTES,
} from './protocol.js';

/** The parts of a request a reply needs to name it. */
export interface ReplyTarget {
  readonly handleHigh: number;
  readonly handleLow: number;
}

/** A simple reply (the header only: read data, if any, is written after it). */
export function encodeSimpleReply(target: ReplyTarget, errno: number): Buffer {
  const reply = Buffer.allocUnsafe(SIMPLE_REPLY_BYTES);
  reply.writeUInt32BE(NBD_SIMPLE_REPLY_MAGIC, 0);
  reply.writeUInt32BE(errno, 4);
  reply.writeUInt32BE(target.handleHigh, 8);
  reply.writeUInt32BE(target.handleLow, 12);
  return reply;
}

function writeChunkHeader(
  reply: Buffer,
  target: ReplyTarget,
  type: number,
  payloadBytes: number,
): void {
  reply.writeUInt32BE(NBD_STRUCTURED_REPLY_MAGIC, 0);
  reply.writeUInt16BE(NBD_REPLY_FLAG_DONE, 4);
  reply.writeUInt16BE(type, 6);
  reply.writeUInt32BE(target.handleHigh, 8);
  reply.writeUInt32BE(target.handleLow, 12);
  reply.writeUInt32BE(payloadBytes, 16);
}

/** Bytes before the data in an OFFSET_DATA chunk: the chunk header and the offset. */
export const OFFSET_DATA_HEADER_BYTES = STRUCTURED_HEADER_BYTES + 8;

/**
 * The header of the one OFFSET_DATA chunk that answers a whole read, flagged DONE: the data is in
 * hand before the header is written, so no error can follow it.
 */
export function encodeReadChunkHeader(
  target: ReplyTarget,
  offset: number,
  dataBytes: number,
): Buffer {
  const reply = Buffer.allocUnsafe(OFFSET_DATA_HEADER_BYTES);
  writeChunkHeader(reply, target, NBD_REPLY_TYPE_OFFSET_DATA, 8 + dataBytes);
  writeUint64(reply, offset, STRUCTURED_HEADER_BYTES);
  return reply;
}

/** A final chunk with no payload: success for a command without data (or a zero-length read). */
export function encodeDoneChunk(target: ReplyTarget): Buffer {
  const reply = Buffer.allocUnsafe(STRUCTURED_HEADER_BYTES);
  writeChunkHeader(reply, target, NBD_REPLY_TYPE_NONE, 0);
  return reply;
}

/** A final NBD_REPLY_TYPE_ERROR chunk with a message for the human at the client. */
export function encodeErrorChunk(target: ReplyTarget, errno: number, message: string): Buffer {
  // The message length field is 16 bits; the string limit (4096) keeps it well inside.
  const text = encodeString(message);
  const reply = Buffer.allocUnsafe(STRUCTURED_HEADER_BYTES + 6 + text.length);
  writeChunkHeader(reply, target, NBD_REPLY_TYPE_ERROR, 6 + text.length);
  reply.writeUInt32BE(errno, STRUCTURED_HEADER_BYTES);
  reply.writeUInt16BE(text.length, STRUCTURED_HEADER_BYTES + 4);
  text.copy(reply, STRUCTURED_HEADER_BYTES + 6);
  return reply;
}

function stateFlags(extent: Extent): number {
  return (extent.hole ? NBD_STATE_HOLE : 0) | (extent.zero || extent.hole ? NBD_STATE_ZERO : 0);
}

/**
 * The base:allocation answer to a block status request of `lengthBytes`: extents clipped to the
 * request, neighbours with the same flags merged, at most `extentsMax` descriptors (one with
 * REQ_ONE). Returns undefined if the device described nothing, which the caller answers with EIO.
 */
export function encodeBlockStatusChunk(
  target: ReplyTarget,
  extents: readonly Extent[],
  options: { lengthBytes: number; extentsMax: number },
): Buffer | undefined {
  const lengths: number[] = [];
  const flags: number[] = [];
  let covered = 0;
  for (const extent of extents) {
    if (covered >= options.lengthBytes) break;
    const length = Math.min(extent.lengthBytes, options.lengthBytes - covered);
    if (!(length > 0)) continue;
    const state = stateFlags(extent);
    const last = lengths.length - 1;
    if (last >= 0 && flags[last] === state) lengths[last]! += length;
    else {
      if (lengths.length === options.extentsMax) break;
      lengths.push(length);
      flags.push(state);
    }
    covered += length;
  }
  if (lengths.length === 0) return undefined;
  const payloadBytes = 4 + 8 * lengths.length;
  const reply = Buffer.allocUnsafe(STRUCTURED_HEADER_BYTES + payloadBytes);
  writeChunkHeader(reply, target, NBD_REPLY_TYPE_BLOCK_STATUS, payloadBytes);
  reply.writeUInt32BE(BASE_ALLOCATION_CONTEXT_ID, STRUCTURED_HEADER_BYTES);
  for (let i = 0; i < lengths.length; i++) {
    reply.writeUInt32BE(lengths[i]!, STRUCTURED_HEADER_BYTES + 4 + 8 * i);
    reply.writeUInt32BE(flags[i]!, STRUCTURED_HEADER_BYTES + 8 + 8 * i);
  }
  return reply;
}
