// Helpers for the NBD unit tests: request encoding, a fake socket that records what the server
// writes, and a parser of the server's reply stream (simple and structured) into plain records.
import { EventEmitter } from 'node:events';
import type { BlockDevice } from '../block-device.js';
import { type Session, sessionFor } from './exports.js';
import { readUint64, writeUint64 } from './option-codec.js';
import * as P from './protocol.js';

export interface RequestFields {
  type: number;
  handle: number;
  offset?: number;
  length?: number;
  flags?: number;
  data?: Buffer;
  magic?: number;
}

export function encodeRequest(fields: RequestFields): Buffer {
  const header = Buffer.alloc(P.REQUEST_HEADER_BYTES);
  header.writeUInt32BE(fields.magic ?? P.NBD_REQUEST_MAGIC, 0);
  header.writeUInt16BE(fields.flags ?? 0, 4);
  header.writeUInt16BE(fields.type, 6);
  header.writeUInt32BE(0, 8);
  header.writeUInt32BE(fields.handle, 12);
  writeUint64(header, fields.offset ?? 0, 16);
  header.writeUInt32BE(fields.length ?? fields.data?.length ?? 0, 24);
  return fields.data === undefined ? header : Buffer.concat([header, fields.data]);
}

/** Records writes; tests drive writableLength and 'drain' by hand. */
export class FakeSocket extends EventEmitter {
  readonly written: Buffer[] = [];
  writable = true;
  writableLength = 0;
  paused = false;
  corked = 0;
  /** Times uncork() released corked writes: each would be one writev on a real socket. */
  flushes = 0;

  write(chunk: Buffer): boolean {
    this.written.push(Buffer.from(chunk));
    return true;
  }
  cork(): void {
    this.corked++;
  }
  uncork(): void {
    this.corked--;
    if (this.corked === 0) this.flushes++;
  }
  pause(): this {
    this.paused = true;
    return this;
  }
  resume(): this {
    this.paused = false;
    return this;
  }
  bytes(): Buffer {
    return Buffer.concat(this.written);
  }
}

export interface ParsedReply {
  handle: number;
  errno: number;
  data?: Buffer;
  chunkType?: number;
  offset?: number;
  message?: string;
  extents?: { length: number; flags: number }[];
}

/** Splits a reply stream; `readLengths` says how much data follows a simple reply to a read. */
export function parseReplies(stream: Buffer, readLengths: Map<number, number>): ParsedReply[] {
  const replies: ParsedReply[] = [];
  let at = 0;
  while (at < stream.length) {
    const magic = stream.readUInt32BE(at);
    if (magic === P.NBD_SIMPLE_REPLY_MAGIC) {
      const errno = stream.readUInt32BE(at + 4);
      const handle = stream.readUInt32BE(at + 12);
      at += 16;
      const length = errno === 0 ? (readLengths.get(handle) ?? 0) : 0;
      replies.push({
        handle,
        errno,
        data: length > 0 ? stream.subarray(at, at + length) : undefined,
      });
      at += length;
      continue;
    }
    if (magic !== P.NBD_STRUCTURED_REPLY_MAGIC) throw new Error(`bad magic at ${at}`);
    const chunkType = stream.readUInt16BE(at + 6);
    const handle = stream.readUInt32BE(at + 12);
    const length = stream.readUInt32BE(at + 16);
    const payload = stream.subarray(at + 20, at + 20 + length);
    at += 20 + length;
    const reply: ParsedReply = { handle, errno: 0, chunkType };
    if (chunkType === P.NBD_REPLY_TYPE_ERROR) {
      reply.errno = payload.readUInt32BE(0);
      reply.message = payload.subarray(6, 6 + payload.readUInt16BE(4)).toString();
    } else if (chunkType === P.NBD_REPLY_TYPE_OFFSET_DATA) {
      reply.offset = readUint64(payload, 0);
      reply.data = payload.subarray(8);
    } else if (chunkType === P.NBD_REPLY_TYPE_BLOCK_STATUS) {
      reply.extents = [];
      for (let i = 4; i < payload.length; i += 8) {
        reply.extents.push({ length: payload.readUInt32BE(i), flags: payload.readUInt32BE(i + 4) });
      }
    }
    replies.push(reply);
  }
  return replies;
}

export function testSession(
  device: BlockDevice,
  options: { structured?: boolean; blockStatus?: boolean; readOnly?: boolean; name?: string } = {},
): Session {
  const name = options.name ?? 'disk';
  return sessionFor(
    name,
    { device, readOnly: options.readOnly },
    {
      structuredReplies: options.structured ?? false,
      metaContextExport: options.blockStatus === true ? name : undefined,
    },
  );
}

/** Resolves once `condition` holds, polling each macrotask turn; rejects after `timeoutMs`. */
export async function until(
  condition: () => boolean,
  what: string,
  timeoutMs = 5000,
): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}
