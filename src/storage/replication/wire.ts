// The binary wire format of the replication connection between a primary and a replica
// (docs/replication.md): what each message holds and how it is framed, as pure functions over
// Buffers. The connection writes what encode() returns and feeds what it reads to a FrameDecoder;
// nothing here touches a socket, a clock or a disk.
//
// Every frame is a 10-byte header, then the body; numbers are big-endian, as in NBD:
//
//   magic u32 = 0x43525031 ("CRP1") | type u16 | body length u32 | body
//
// | type (code)             | from    | body, in order                               | bytes      |
// | ----------------------- | ------- | -------------------------------------------- | ---------- |
// | REPL_HELLO (1)          | replica | accepted epoch u64, generation u64,          | 26 + names |
// |                         |         | data generation counter u64, volume length   |            |
// |                         |         | u8, node length u8, volume, replica node     |            |
// | REPL_WRITE (2)          | primary | seq u64, epoch u64, offset u64, flags u16,   | 26 + data  |
// |                         |         | data                                         |            |
// | REPL_TRIM (3)           | primary | seq u64, epoch u64, offset u64, length u32,  | 30         |
// |                         |         | flags u16                                    |            |
// | REPL_WRITE_ZEROES (4)   | primary | as REPL_TRIM                                 | 30         |
// | REPL_FLUSH (5)          | primary | seq u64, epoch u64                           | 16         |
// | REPL_ACK (6)            | replica | seq u64, kind u8 (1 written, 2 durable)      | 9          |
// | REPL_FENCED (7)         | replica | accepted epoch u64, message length u16,      | 10 + text  |
// |                         |         | message                                      |            |
// | REPL_ACCEPT_EPOCH (8)   | asker   | epoch u64                                    | 8          |
// | REPL_EPOCH_ACCEPTED (9) | replica | epoch u64: the highest it has persisted      | 8          |
//
// Names and messages are UTF-8: a name is 1 to 255 bytes (an empty one can only be a bug on the
// peer, so it is refused both ways), a REPL_FENCED message 0 to 1024 bytes. ACK `written` answers
// the mutation of that seq; `durable` says everything up to seq is durable, the answer to
// REPL_FLUSH(seq). Flag bit 0 is the client's FUA, carried so that a replica can make that mutation
// durable at once; the durability a client waits for still comes from REPL_FLUSH. Any other flag
// bit is refused, so a new flag needs both ends to know it. REPL_ACCEPT_EPOCH comes from whoever
// carries the controller's accept-epoch(E); the answer holds the replica's highest accepted epoch,
// which the asker compares with E. The generation is a 64-bit id written as 16 lowercase hex
// digits (0000000000000000: no data yet). Epochs, offsets and the data generation counter travel
// as u64 but must fit a safe integer, because the rest of the system counts them in numbers;
// sequence numbers are full u64 bigints. The last byte of the magic is the wire version: a peer
// speaking another version fails at its first frame. Every frame the decoder accepts re-encodes to
// the same bytes (a message has one encoding), which the fuzz test checks.
import { TextDecoder } from 'node:util';
import { ContinuumError } from '../../core/errors.js';
import { requestBytesMax } from '../engine/limits.js';

/** "CRP1": Continuum replication, wire version 1. */
export const REPLICATION_MAGIC = 0x43525031;
export const replicationHeaderBytes = 10;
/** Volume and node names: the u8 length field's range, and never empty. */
export const replicationNameBytesMax = 255;
/** A REPL_FENCED message is for a human; longer ones are cut on a character boundary. */
export const replicationTextBytesMax = 1024;
export const REPL_FLAG_FUA = 1 << 0;
const knownFlags = REPL_FLAG_FUA;

const writeFixedBytes = 26;
/** Largest frame by default: a write of the NBD request limit, its fixed fields and the header. */
export const replicationMessageBytesMax =
  requestBytesMax + writeFixedBytes + replicationHeaderBytes;
/** What `messageBytesMax` may be set to: above every message but a write, at most a 1 GiB write. */
const messageBytesMaxBounds = [4096, 2 ** 30 + writeFixedBytes + replicationHeaderBytes] as const;

export const replicationMessageTypes = {
  REPL_HELLO: 1,
  REPL_WRITE: 2,
  REPL_TRIM: 3,
  REPL_WRITE_ZEROES: 4,
  REPL_FLUSH: 5,
  REPL_ACK: 6,
  REPL_FENCED: 7,
  REPL_ACCEPT_EPOCH: 8,
  REPL_EPOCH_ACCEPTED: 9,
} as const;
export type ReplicationMessageType = keyof typeof replicationMessageTypes;

const typeOfCode = new Map<number, ReplicationMessageType>(
  Object.entries(replicationMessageTypes).map(([name, code]) => [
    code,
    name as ReplicationMessageType,
  ]),
);

/** Body sizes a header may announce: the fixed fields, plus at most this much that varies. */
const bodyShapes: Record<ReplicationMessageType, { fixed: number; variableMax: number }> = {
  REPL_HELLO: { fixed: 26, variableMax: 2 * replicationNameBytesMax },
  REPL_WRITE: { fixed: writeFixedBytes, variableMax: Infinity },
  REPL_TRIM: { fixed: 30, variableMax: 0 },
  REPL_WRITE_ZEROES: { fixed: 30, variableMax: 0 },
  REPL_FLUSH: { fixed: 16, variableMax: 0 },
  REPL_ACK: { fixed: 9, variableMax: 0 },
  REPL_FENCED: { fixed: 10, variableMax: replicationTextBytesMax },
  REPL_ACCEPT_EPOCH: { fixed: 8, variableMax: 0 },
  REPL_EPOCH_ACCEPTED: { fixed: 8, variableMax: 0 },
};

export type AckKind = 'written' | 'durable';
const ackKindCodes: Record<AckKind, number> = { written: 1, durable: 2 };
const ackKindOfCode = new Map<number, AckKind>([
  [1, 'written'],
  [2, 'durable'],
]);

export interface ReplHello {
  readonly type: 'REPL_HELLO';
  readonly volume: string;
  readonly replicaNode: string;
  readonly acceptedEpoch: number;
  /** The replica's newest generation, 16 lowercase hex digits. */
  readonly generation: string;
  readonly dataGenerationCounter: number;
}
export interface ReplWrite {
  readonly type: 'REPL_WRITE';
  readonly seq: bigint;
  readonly epoch: number;
  readonly offset: number;
  readonly fua: boolean;
  /** A decoded write that arrived in one chunk is a slice of it, not a copy. */
  readonly data: Buffer;
}
export interface ReplRangeMutation {
  readonly type: 'REPL_TRIM' | 'REPL_WRITE_ZEROES';
  readonly seq: bigint;
  readonly epoch: number;
  readonly offset: number;
  readonly length: number;
  readonly fua: boolean;
}
export interface ReplFlush {
  readonly type: 'REPL_FLUSH';
  readonly seq: bigint;
  readonly epoch: number;
}
export interface ReplAck {
  readonly type: 'REPL_ACK';
  readonly seq: bigint;
  readonly kind: AckKind;
}
export interface ReplFenced {
  readonly type: 'REPL_FENCED';
  readonly acceptedEpoch: number;
  readonly message: string;
}
export interface ReplEpoch {
  readonly type: 'REPL_ACCEPT_EPOCH' | 'REPL_EPOCH_ACCEPTED';
  readonly epoch: number;
}
export type ReplicationMessage =
  ReplHello | ReplWrite | ReplRangeMutation | ReplFlush | ReplAck | ReplFenced | ReplEpoch;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const uint64Max = 2n ** 64n - 1n;
const generationPattern = /^[0-9a-f]{16}$/;

// ---------------------------------------------------------------------------------------------
// Encoding

/** Writes fields in order into a buffer that already holds the frame header. */
class FieldWriter {
  private at = replicationHeaderBytes;
  readonly buffer: Buffer;

  /** `ownBytes` of the body live in this buffer; a write's data follows it as another part. */
  constructor(type: ReplicationMessageType, ownBytes: number, bodyBytes: number) {
    this.buffer = Buffer.allocUnsafe(replicationHeaderBytes + ownBytes);
    this.buffer.writeUInt32BE(REPLICATION_MAGIC, 0);
    this.buffer.writeUInt16BE(replicationMessageTypes[type], 4);
    this.buffer.writeUInt32BE(bodyBytes, 6);
  }
  u8(value: number): this {
    this.at = this.buffer.writeUInt8(value, this.at);
    return this;
  }
  u16(value: number): this {
    this.at = this.buffer.writeUInt16BE(value, this.at);
    return this;
  }
  u32(value: number): this {
    this.at = this.buffer.writeUInt32BE(value, this.at);
    return this;
  }
  u64(value: bigint | number): this {
    this.at = this.buffer.writeBigUInt64BE(BigInt(value), this.at);
    return this;
  }
  bytes(value: Buffer): this {
    this.at += value.copy(this.buffer, this.at);
    return this;
  }
}

export interface EncodeOptions {
  /** Largest frame the peer takes (its decoder's messageBytesMax). */
  readonly messageBytesMax?: number;
}

/**
 * The frame of one message, as parts to write in order: a write's data is its own part, never
 * copied. Throws CONTINUUM_ERR_BAD_REQUEST for a value the format cannot carry.
 */
export function encode(message: ReplicationMessage, options: EncodeOptions = {}): Buffer[] {
  switch (message.type) {
    case 'REPL_HELLO':
      return [encodeHello(message)];
    case 'REPL_WRITE':
      return encodeWrite(message, options.messageBytesMax ?? replicationMessageBytesMax);
    case 'REPL_TRIM':
    case 'REPL_WRITE_ZEROES':
      return [encodeRange(message)];
    case 'REPL_FLUSH':
      return [
        fixed(message)
          .u64(seqOf(message))
          .u64(safe(message, 'epoch', message.epoch)).buffer,
      ];
    case 'REPL_ACK':
      return [fixed(message).u64(seqOf(message)).u8(ackKindCodes[message.kind]).buffer];
    case 'REPL_FENCED':
      return [encodeFenced(message)];
    case 'REPL_ACCEPT_EPOCH':
    case 'REPL_EPOCH_ACCEPTED':
      return [fixed(message).u64(safe(message, 'epoch', message.epoch)).buffer];
  }
}

function encodeHello(message: ReplHello): Buffer {
  const volume = nameBytes(message, 'volume name', message.volume);
  const node = nameBytes(message, 'replica node name', message.replicaNode);
  if (!generationPattern.test(message.generation)) {
    throw cannotEncode(
      message,
      `generation ${JSON.stringify(message.generation)} is not 16 hex digits`,
    );
  }
  const variableBytes = volume.length + node.length;
  return new FieldWriter('REPL_HELLO', 26 + variableBytes, 26 + variableBytes)
    .u64(safe(message, 'accepted epoch', message.acceptedEpoch))
    .u64(BigInt(`0x${message.generation}`))
    .u64(safe(message, 'data generation counter', message.dataGenerationCounter))
    .u8(volume.length)
    .u8(node.length)
    .bytes(volume)
    .bytes(node).buffer;
}

function encodeWrite(message: ReplWrite, messageBytesMax: number): Buffer[] {
  const bodyBytes = writeFixedBytes + message.data.length;
  if (replicationHeaderBytes + bodyBytes > messageBytesMax) {
    const what = `${message.data.length} bytes of data exceed messageBytesMax ${messageBytesMax}`;
    throw cannotEncode(message, what);
  }
  const head = new FieldWriter('REPL_WRITE', writeFixedBytes, bodyBytes)
    .u64(seqOf(message))
    .u64(safe(message, 'epoch', message.epoch))
    .u64(safe(message, 'offset', message.offset))
    .u16(message.fua ? REPL_FLAG_FUA : 0).buffer;
  return message.data.length === 0 ? [head] : [head, message.data];
}

function encodeRange(message: ReplRangeMutation): Buffer {
  if (!Number.isInteger(message.length) || message.length < 0 || message.length > 0xffffffff) {
    throw cannotEncode(message, `length ${message.length} is not a u32`);
  }
  return fixed(message)
    .u64(seqOf(message))
    .u64(safe(message, 'epoch', message.epoch))
    .u64(safe(message, 'offset', message.offset))
    .u32(message.length)
    .u16(message.fua ? REPL_FLAG_FUA : 0).buffer;
}

function encodeFenced(message: ReplFenced): Buffer {
  const text = cutText(message.message);
  return new FieldWriter('REPL_FENCED', 10 + text.length, 10 + text.length)
    .u64(safe(message, 'accepted epoch', message.acceptedEpoch))
    .u16(text.length)
    .bytes(text).buffer;
}

function fixed(message: ReplicationMessage): FieldWriter {
  const bodyBytes = bodyShapes[message.type].fixed;
  return new FieldWriter(message.type, bodyBytes, bodyBytes);
}

function cannotEncode(message: ReplicationMessage, what: string): ContinuumError {
  return new ContinuumError('CONTINUUM_ERR_BAD_REQUEST', `cannot encode ${message.type}: ${what}`);
}

function seqOf(message: ReplicationMessage & { readonly seq: bigint }): bigint {
  if (message.seq < 0n || message.seq > uint64Max) {
    throw cannotEncode(message, `seq ${message.seq} is not a u64`);
  }
  return message.seq;
}

function safe(message: ReplicationMessage, what: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw cannotEncode(message, `${what} ${value} is not a whole number from 0 to 2^53-1`);
  }
  return value;
}

function nameBytes(message: ReplicationMessage, what: string, name: string): Buffer {
  const bytes = Buffer.from(name, 'utf8');
  if (bytes.length === 0 || bytes.length > replicationNameBytesMax) {
    const expected = `expected 1 to ${replicationNameBytesMax}`;
    throw cannotEncode(message, `${what} is ${bytes.length} bytes, ${expected}`);
  }
  // A lone surrogate would arrive as U+FFFD: refuse a name that cannot come back unchanged.
  if (utf8.decode(bytes) !== name) throw cannotEncode(message, `${what} is not valid Unicode`);
  return bytes;
}

/** UTF-8 bytes of a human message, cut at replicationTextBytesMax on a character boundary. */
function cutText(text: string): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= replicationTextBytesMax) return bytes;
  let end = replicationTextBytesMax;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end -= 1;
  return bytes.subarray(0, end);
}

// ---------------------------------------------------------------------------------------------
// Decoding

/** What is wrong with a frame; the decoder adds where, making it a ContinuumError. */
class FrameViolation extends Error {}

/** Reads fields in order from a complete body whose length the header check already bounded. */
class FieldReader {
  private at = 0;
  constructor(
    readonly body: Buffer,
    private readonly type: ReplicationMessageType,
  ) {}
  u8(): number {
    return this.body.readUInt8(this.at++);
  }
  u16(): number {
    const value = this.body.readUInt16BE(this.at);
    this.at += 2;
    return value;
  }
  u32(): number {
    const value = this.body.readUInt32BE(this.at);
    this.at += 4;
    return value;
  }
  u64(): bigint {
    const value = this.body.readBigUInt64BE(this.at);
    this.at += 8;
    return value;
  }
  safe(what: string): number {
    const value = this.u64();
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new FrameViolation(`${this.type} ${what} ${value} is above 2^53-1`);
    }
    return Number(value);
  }
  flags(): boolean {
    const flags = this.u16();
    if ((flags & ~knownFlags) !== 0) {
      const shown = `0x${flags.toString(16).padStart(4, '0')}`;
      throw new FrameViolation(`${this.type} flags ${shown} have unknown bits (known: 0x0001 FUA)`);
    }
    return (flags & REPL_FLAG_FUA) !== 0;
  }
  text(what: string, bytes: number): string {
    const slice = this.body.subarray(this.at, this.at + bytes);
    this.at += bytes;
    try {
      return utf8.decode(slice);
    } catch {
      throw new FrameViolation(`${this.type} ${what} is not valid UTF-8`);
    }
  }
  rest(): Buffer {
    return this.body.subarray(this.at);
  }
}

function decodeHello(fields: FieldReader): ReplHello {
  const acceptedEpoch = fields.safe('accepted epoch');
  const generation = fields.u64().toString(16).padStart(16, '0');
  const dataGenerationCounter = fields.safe('data generation counter');
  const volumeBytes = fields.u8();
  const nodeBytes = fields.u8();
  const needed = 26 + volumeBytes + nodeBytes;
  if (fields.body.length !== needed) {
    const lengths = `name lengths (${volumeBytes} and ${nodeBytes})`;
    throw new FrameViolation(
      `body of REPL_HELLO is ${fields.body.length} bytes, but its ${lengths} need ${needed}`,
    );
  }
  if (volumeBytes === 0) throw new FrameViolation('REPL_HELLO volume name is empty');
  if (nodeBytes === 0) throw new FrameViolation('REPL_HELLO replica node name is empty');
  const volume = fields.text('volume name', volumeBytes);
  const replicaNode = fields.text('replica node name', nodeBytes);
  const type = 'REPL_HELLO';
  return { type, volume, replicaNode, acceptedEpoch, generation, dataGenerationCounter };
}

function decodeMutation(type: 'REPL_WRITE', fields: FieldReader): ReplWrite;
function decodeMutation(type: ReplRangeMutation['type'], fields: FieldReader): ReplRangeMutation;
function decodeMutation(
  type: 'REPL_WRITE' | ReplRangeMutation['type'],
  fields: FieldReader,
): ReplWrite | ReplRangeMutation {
  const seq = fields.u64();
  const epoch = fields.safe('epoch');
  const offset = fields.safe('offset');
  if (type === 'REPL_WRITE')
    return { type, seq, epoch, offset, fua: fields.flags(), data: fields.rest() };
  const length = fields.u32();
  return { type, seq, epoch, offset, length, fua: fields.flags() };
}

function decodeAck(fields: FieldReader): ReplAck {
  const seq = fields.u64();
  const code = fields.u8();
  const kind = ackKindOfCode.get(code);
  if (kind === undefined) {
    throw new FrameViolation(`REPL_ACK kind ${code} is unknown (1 written, 2 durable)`);
  }
  return { type: 'REPL_ACK', seq, kind };
}

function decodeFenced(fields: FieldReader): ReplFenced {
  const acceptedEpoch = fields.safe('accepted epoch');
  const textBytes = fields.u16();
  if (fields.body.length !== 10 + textBytes) {
    const needs = `its message length ${textBytes} needs ${10 + textBytes}`;
    throw new FrameViolation(`body of REPL_FENCED is ${fields.body.length} bytes, but ${needs}`);
  }
  return { type: 'REPL_FENCED', acceptedEpoch, message: fields.text('message', textBytes) };
}

function decodeBody(type: ReplicationMessageType, body: Buffer): ReplicationMessage {
  const fields = new FieldReader(body, type);
  switch (type) {
    case 'REPL_HELLO':
      return decodeHello(fields);
    case 'REPL_WRITE':
      return decodeMutation(type, fields);
    case 'REPL_TRIM':
    case 'REPL_WRITE_ZEROES':
      return decodeMutation(type, fields);
    case 'REPL_FLUSH':
      return { type, seq: fields.u64(), epoch: fields.safe('epoch') };
    case 'REPL_ACK':
      return decodeAck(fields);
    case 'REPL_FENCED':
      return decodeFenced(fields);
    case 'REPL_ACCEPT_EPOCH':
    case 'REPL_EPOCH_ACCEPTED':
      return { type, epoch: fields.safe('epoch') };
  }
}

/** Checks a header's announced body before a byte of the body is held. */
function checkBodyBytes(type: ReplicationMessageType, bodyBytes: number, frameBytesMax: number) {
  const shape = bodyShapes[type];
  if (bodyBytes < shape.fixed || bodyBytes > shape.fixed + shape.variableMax) {
    const expected =
      shape.variableMax === 0
        ? `${shape.fixed}`
        : shape.variableMax === Infinity
          ? `at least ${shape.fixed}`
          : `${shape.fixed} to ${shape.fixed + shape.variableMax}`;
    throw new FrameViolation(`body of ${type} is ${bodyBytes} bytes, expected ${expected}`);
  }
  const frameBytes = replicationHeaderBytes + bodyBytes;
  if (frameBytes > frameBytesMax) {
    throw new FrameViolation(
      `${type} of ${frameBytes} bytes exceeds replicationMessageBytesMax ${frameBytesMax}`,
    );
  }
}

export interface FrameDecoderOptions {
  /** Largest frame, header included (default replicationMessageBytesMax). */
  readonly messageBytesMax?: number;
}

/**
 * Turns a byte stream, cut anywhere, into messages. A header split across chunks is completed in a
 * 10-byte scratch buffer; a body that arrives whole is decoded in place (a write's data is a slice
 * of the chunk), one that spans chunks is gathered into a buffer of its announced size, which the
 * header check has bounded by messageBytesMax. The first bad frame fails the decoder for good:
 * push() and end() throw that error again, because the connection is closed over it. Messages
 * decoded earlier in the same chunk are dropped with it, which is safe: a lost ack only keeps a
 * write unacknowledged, and a lost mutation is never acked.
 */
export class FrameDecoder {
  readonly messageBytesMax: number;
  private readonly header = Buffer.allocUnsafe(replicationHeaderBytes);
  private headerFill = 0;
  /** Set once a header is accepted, until its body is decoded. */
  private frameType: ReplicationMessageType | undefined;
  private bodyBytes = 0;
  private body: Buffer | undefined;
  private bodyFill = 0;
  /** Frames begun; the current one is number `frames`, counted from 1. */
  private frames = 0;
  private frameStartByte = 0;
  /** Bytes of the stream in chunks before the current one. */
  private streamBytes = 0;
  private failure: Error | undefined;

  constructor(options: FrameDecoderOptions = {}) {
    const max = options.messageBytesMax ?? replicationMessageBytesMax;
    const [low, high] = messageBytesMaxBounds;
    if (!Number.isInteger(max) || max < low || max > high) {
      const expected = `expected a whole number from ${low} to ${high}`;
      throw new RangeError(`replication messageBytesMax: ${expected}, got ${String(max)}`);
    }
    this.messageBytesMax = max;
  }

  /** The error that failed the decoder, if one did. */
  get failed(): Error | undefined {
    return this.failure;
  }

  /** Bytes of an incomplete frame held (0 between frames: the stream may end cleanly here). */
  get bufferedBytes(): number {
    if (this.frameType === undefined) return this.headerFill;
    return replicationHeaderBytes + (this.body === undefined ? 0 : this.bodyFill);
  }

  /** The messages a chunk completes, in order; a bad frame throws CONTINUUM_ERR_BAD_REQUEST. */
  push(chunk: Buffer): ReplicationMessage[] {
    if (this.failure !== undefined) throw this.failure;
    const messages: ReplicationMessage[] = [];
    try {
      let at = 0;
      while (at < chunk.length) {
        at =
          this.frameType === undefined
            ? this.takeHeader(chunk, at)
            : this.takeBody(this.frameType, chunk, at, messages);
      }
    } catch (error) {
      // A FrameViolation is the peer's fault; anything else is a bug here, kept as it is.
      if (error instanceof FrameViolation) this.failure = this.located(error.message);
      else this.failure = error instanceof Error ? error : new Error(String(error));
      throw this.failure;
    }
    this.streamBytes += chunk.length;
    return messages;
  }

  /** The peer closed the stream: fails if it stopped inside a frame. */
  end(): void {
    if (this.failure !== undefined) throw this.failure;
    if (this.bufferedBytes === 0) return;
    const what =
      this.frameType === undefined
        ? `${this.headerFill} bytes of its ${replicationHeaderBytes}-byte header`
        : `${this.bufferedBytes} of its ${replicationHeaderBytes + this.bodyBytes} bytes`;
    this.failure = this.located(`the stream ended after ${what}`);
    throw this.failure;
  }

  private takeHeader(chunk: Buffer, at: number): number {
    if (this.headerFill === 0) {
      this.frames += 1;
      this.frameStartByte = this.streamBytes + at;
      if (chunk.length - at >= replicationHeaderBytes) {
        this.acceptHeader(chunk, at);
        return at + replicationHeaderBytes;
      }
    }
    const take = Math.min(replicationHeaderBytes - this.headerFill, chunk.length - at);
    chunk.copy(this.header, this.headerFill, at, at + take);
    this.headerFill += take;
    if (this.headerFill === replicationHeaderBytes) {
      this.headerFill = 0;
      this.acceptHeader(this.header, 0);
    }
    return at + take;
  }

  private acceptHeader(source: Buffer, base: number): void {
    const magic = source.readUInt32BE(base);
    if (magic !== REPLICATION_MAGIC) {
      throw new FrameViolation(`magic is ${hex32(magic)}, expected ${hex32(REPLICATION_MAGIC)}`);
    }
    const code = source.readUInt16BE(base + 4);
    const type = typeOfCode.get(code);
    if (type === undefined) throw new FrameViolation(`unknown message type ${code}`);
    const bodyBytes = source.readUInt32BE(base + 6);
    checkBodyBytes(type, bodyBytes, this.messageBytesMax);
    this.frameType = type;
    this.bodyBytes = bodyBytes;
  }

  private takeBody(
    type: ReplicationMessageType,
    chunk: Buffer,
    at: number,
    messages: ReplicationMessage[],
  ): number {
    const available = chunk.length - at;
    if (this.body === undefined && available >= this.bodyBytes) {
      this.frameType = undefined;
      messages.push(decodeBody(type, chunk.subarray(at, at + this.bodyBytes)));
      return at + this.bodyBytes;
    }
    this.body ??= Buffer.allocUnsafe(this.bodyBytes);
    const take = Math.min(this.bodyBytes - this.bodyFill, available);
    chunk.copy(this.body, this.bodyFill, at, at + take);
    this.bodyFill += take;
    if (this.bodyFill === this.bodyBytes) {
      const body = this.body;
      this.frameType = undefined;
      this.body = undefined;
      this.bodyFill = 0;
      messages.push(decodeBody(type, body));
    }
    return at + take;
  }

  private located(what: string): ContinuumError {
    const where = `replication frame ${this.frames} (stream byte ${this.frameStartByte})`;
    return new ContinuumError('CONTINUUM_ERR_BAD_REQUEST', `${where}: ${what}`, {
      details: { frame: this.frames, streamByte: this.frameStartByte },
    });
  }
}

function hex32(value: number): string {
  return `0x${value.toString(16).padStart(8, '0')}`;
}
