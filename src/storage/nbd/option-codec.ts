// Encoding of handshake messages (greeting, option replies, the EXPORT_NAME reply) and decoding of
// option payloads (INFO/GO, LIST/SET_META_CONTEXT). Pure functions over Buffers: the connection
// feeds them bytes and writes what they return, and the unit tests drive them directly.
import {
  NBD_FLAG_FIXED_NEWSTYLE,
  NBD_FLAG_NO_ZEROES,
  NBD_INIT_MAGIC,
  NBD_OPTS_MAGIC,
  NBD_REP_MAGIC_HIGH,
  NBD_REP_MAGIC_LOW,
  STRING_BYTES_MAX,
} from './protocol.js';

const TWO_TO_32 = 2 ** 32;

/** Writes a non-negative safe integer as an unsigned 64-bit big-endian number. */
export function writeUint64(target: Buffer, value: number, offset: number): void {
  target.writeUInt32BE(Math.floor(value / TWO_TO_32), offset);
  target.writeUInt32BE(value >>> 0, offset + 4);
}

/** Reads an unsigned 64-bit number; values past 2^53 come back as Infinity (always out of range). */
export function readUint64(source: Buffer, offset: number): number {
  const high = source.readUInt32BE(offset);
  if (high >= 0x200000) return Infinity;
  return high * TWO_TO_32 + source.readUInt32BE(offset + 4);
}

/** The 18 bytes the server sends first: NBDMAGIC, IHAVEOPT and its handshake flags. */
export function encodeGreeting(): Buffer {
  const greeting = Buffer.alloc(18);
  NBD_INIT_MAGIC.copy(greeting, 0);
  NBD_OPTS_MAGIC.copy(greeting, 8);
  greeting.writeUInt16BE(NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES, 16);
  return greeting;
}

/** One option reply: magic, the option it answers, the reply type, and the payload. */
export function encodeOptionReply(option: number, type: number, payload?: Buffer): Buffer {
  const length = payload?.length ?? 0;
  const reply = Buffer.allocUnsafe(20 + length);
  reply.writeUInt32BE(NBD_REP_MAGIC_HIGH, 0);
  reply.writeUInt32BE(NBD_REP_MAGIC_LOW, 4);
  reply.writeUInt32BE(option >>> 0, 8);
  reply.writeUInt32BE(type >>> 0, 12);
  reply.writeUInt32BE(length, 16);
  payload?.copy(reply, 20);
  return reply;
}

/** An error reply carries a message for a human; it is cut to the specification's string limit. */
export function encodeOptionError(option: number, type: number, message: string): Buffer {
  return encodeOptionReply(option, type, encodeString(message));
}

/** UTF-8 bytes of a string, cut at STRING_BYTES_MAX on a character boundary. */
export function encodeString(text: string): Buffer {
  let bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= STRING_BYTES_MAX) return bytes;
  bytes = bytes.subarray(0, STRING_BYTES_MAX);
  // Drop a multi-byte character cut in half: continuation bytes look like 0b10xxxxxx.
  let end = bytes.length;
  while (end > 0 && (bytes[end - 1]! & 0xc0) === 0x80) end--;
  if (end > 0 && bytes[end - 1]! >= 0xc0) end--;
  return bytes.subarray(0, end === 0 ? bytes.length : end);
}

/** NBD_REP_SERVER payload: name length, name, then the description for humans. */
export function encodeServerEntry(name: string, description: string | undefined): Buffer {
  const nameBytes = encodeString(name);
  const descriptionBytes = encodeString(description ?? '');
  const payload = Buffer.allocUnsafe(4 + nameBytes.length + descriptionBytes.length);
  payload.writeUInt32BE(nameBytes.length, 0);
  nameBytes.copy(payload, 4);
  descriptionBytes.copy(payload, 4 + nameBytes.length);
  return payload;
}

/** NBD_INFO_EXPORT payload: size and transmission flags. */
export function encodeInfoExport(sizeBytes: number, transmissionFlags: number): Buffer {
  const payload = Buffer.allocUnsafe(12);
  payload.writeUInt16BE(0, 0);
  writeUint64(payload, sizeBytes, 2);
  payload.writeUInt16BE(transmissionFlags, 10);
  return payload;
}

/** NBD_INFO_NAME or NBD_INFO_DESCRIPTION payload. */
export function encodeInfoString(infoType: number, text: string): Buffer {
  const bytes = encodeString(text);
  const payload = Buffer.allocUnsafe(2 + bytes.length);
  payload.writeUInt16BE(infoType, 0);
  bytes.copy(payload, 2);
  return payload;
}

/** NBD_INFO_BLOCK_SIZE payload: minimum, preferred and maximum block sizes. */
export function encodeInfoBlockSize(min: number, preferred: number, max: number): Buffer {
  const payload = Buffer.allocUnsafe(14);
  payload.writeUInt16BE(3, 0);
  payload.writeUInt32BE(min, 2);
  payload.writeUInt32BE(preferred, 6);
  payload.writeUInt32BE(max, 10);
  return payload;
}

/** NBD_REP_META_CONTEXT payload: the context id and its name. */
export function encodeMetaContext(id: number, name: string): Buffer {
  const bytes = encodeString(name);
  const payload = Buffer.allocUnsafe(4 + bytes.length);
  payload.writeUInt32BE(id, 0);
  bytes.copy(payload, 4);
  return payload;
}

/** Reply to NBD_OPT_EXPORT_NAME: size, flags, and 124 zero bytes unless the client declined them. */
export function encodeExportNameReply(
  sizeBytes: number,
  transmissionFlags: number,
  noZeroes: boolean,
): Buffer {
  const reply = Buffer.alloc(noZeroes ? 10 : 134);
  writeUint64(reply, sizeBytes, 0);
  reply.writeUInt16BE(transmissionFlags, 8);
  return reply;
}

export type Decoded<T> = { ok: true; value: T } | { ok: false; reason: string; tooBig?: boolean };

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A protocol string: valid UTF-8, no NUL, at most STRING_BYTES_MAX bytes. */
export function decodeString(bytes: Buffer, what: string): Decoded<string> {
  if (bytes.length > STRING_BYTES_MAX) {
    return { ok: false, reason: `${what}: ${bytes.length} bytes, at most ${STRING_BYTES_MAX}` };
  }
  if (bytes.includes(0)) return { ok: false, reason: `${what}: contains a NUL byte` };
  try {
    return { ok: true, value: utf8.decode(bytes) };
  } catch {
    return { ok: false, reason: `${what}: not valid UTF-8` };
  }
}

/** NBD_OPT_INFO and NBD_OPT_GO data: name length, name, count of info requests, the requests. */
export function decodeInfoRequest(data: Buffer): Decoded<{ name: string; infos: number[] }> {
  if (data.length < 6) return { ok: false, reason: `INFO/GO data of ${data.length} bytes, need 6` };
  const nameLength = data.readUInt32BE(0);
  if (nameLength > data.length - 6) {
    return { ok: false, reason: `name length ${nameLength} runs past the option data` };
  }
  const name = decodeString(data.subarray(4, 4 + nameLength), 'export name');
  if (!name.ok) return name;
  const count = data.readUInt16BE(4 + nameLength);
  if (data.length !== 6 + nameLength + 2 * count) {
    return {
      ok: false,
      reason: `${count} info requests do not match ${data.length} bytes of data`,
    };
  }
  const infos: number[] = [];
  for (let i = 0; i < count; i++) infos.push(data.readUInt16BE(6 + nameLength + 2 * i));
  return { ok: true, value: { name: name.value, infos } };
}

/** LIST_META_CONTEXT and SET_META_CONTEXT data: export name, then a counted list of queries. */
export function decodeMetaContextRequest(
  data: Buffer,
  queriesMax: number,
): Decoded<{ name: string; queries: string[] }> {
  if (data.length < 8) return { ok: false, reason: `meta context data of ${data.length} bytes` };
  const nameLength = data.readUInt32BE(0);
  if (nameLength > data.length - 8) {
    return { ok: false, reason: `name length ${nameLength} runs past the option data` };
  }
  const name = decodeString(data.subarray(4, 4 + nameLength), 'export name');
  if (!name.ok) return name;
  let at = 4 + nameLength;
  const count = data.readUInt32BE(at);
  at += 4;
  if (count > queriesMax) {
    return { ok: false, reason: `${count} queries, at most ${queriesMax}`, tooBig: true };
  }
  const queries: string[] = [];
  for (let i = 0; i < count; i++) {
    if (data.length - at < 4) return { ok: false, reason: `query ${i} runs past the option data` };
    const length = data.readUInt32BE(at);
    at += 4;
    if (length > data.length - at) return { ok: false, reason: `query ${i} length ${length}` };
    const query = decodeString(data.subarray(at, at + length), `query ${i}`);
    if (!query.ok) return query;
    queries.push(query.value);
    at += length;
  }
  if (at !== data.length)
    return { ok: false, reason: `${data.length - at} bytes after the queries` };
  return { ok: true, value: { name: name.value, queries } };
}
