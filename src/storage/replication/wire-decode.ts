// Decoding the replication wire format (wire.ts has the layout and the encoder): an incremental
// FrameDecoder that takes the byte stream in any chunks, checks every frame against the named
// limits, and stays failed after the first bad one (the connection is then closed).
import { ContinuumError } from '../../core/errors.js';
import {
  ackKindCodes,
  bodyShapes,
  checksumEntryBytes,
  replicationChecksumBlocksMax,
  replicationMessageTypes,
  writeFixedBytes,
  type AckKind,
  REPL_FLAG_FUA,
  REPLICATION_MAGIC,
  replicationHeaderBytes,
  replicationMessageBytesMax,
  utf8,
  type ReplAck,
  type ReplChecksums,
  type ReplOpen,
  type ReplReadChecksums,
  type ReplFenced,
  type ReplHello,
  type ReplicationMessage,
  type ReplicationMessageType,
  type ReplRangeMutation,
  type ReplWrite,
} from './wire.js';

const knownFlags = REPL_FLAG_FUA;
/** What `messageBytesMax` may be set to: above every message but a write, at most a 1 GiB write. */
const messageBytesMaxBounds = [4096, 2 ** 30 + writeFixedBytes + replicationHeaderBytes] as const;
const typeOfCode = new Map<number, ReplicationMessageType>(
  Object.entries(replicationMessageTypes).map(([name, code]) => [
    code,
    name as ReplicationMessageType,
  ]),
);
const ackKindOfCode = new Map<number, AckKind>(
  Object.entries(ackKindCodes).map(([kind, code]) => [code, kind as AckKind]),
);

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

function decodeOpen(fields: FieldReader): ReplOpen {
  const epoch = fields.safe('epoch');
  const volumeBytes = fields.u8();
  const nodeBytes = fields.u8();
  const needed = 10 + volumeBytes + nodeBytes;
  if (fields.body.length !== needed) {
    const lengths = `name lengths (${volumeBytes} and ${nodeBytes})`;
    throw new FrameViolation(
      `body of REPL_OPEN is ${fields.body.length} bytes, but its ${lengths} need ${needed}`,
    );
  }
  if (volumeBytes === 0) throw new FrameViolation('REPL_OPEN volume name is empty');
  if (nodeBytes === 0) throw new FrameViolation('REPL_OPEN primary node name is empty');
  const volume = fields.text('volume name', volumeBytes);
  const primaryNode = fields.text('primary node name', nodeBytes);
  return { type: 'REPL_OPEN', volume, primaryNode, epoch };
}

function checksumCount(type: ReplicationMessageType, count: number): number {
  if (count < 1 || count > replicationChecksumBlocksMax) {
    throw new FrameViolation(
      `${type} block count ${count} is not from 1 to replicationChecksumBlocksMax ` +
        `(${replicationChecksumBlocksMax})`,
    );
  }
  return count;
}

function decodeReadChecksums(fields: FieldReader): ReplReadChecksums {
  const epoch = fields.safe('epoch');
  const startBlock = fields.safe('start block');
  const blockCount = checksumCount('REPL_READ_CHECKSUMS', fields.u32());
  return { type: 'REPL_READ_CHECKSUMS', epoch, startBlock, blockCount };
}

function decodeChecksums(fields: FieldReader): ReplChecksums {
  const startBlock = fields.safe('start block');
  const count = checksumCount('REPL_CHECKSUMS', fields.u32());
  const needed = 12 + checksumEntryBytes * count;
  if (fields.body.length !== needed) {
    throw new FrameViolation(
      `body of REPL_CHECKSUMS is ${fields.body.length} bytes, but its ${count} blocks need ${needed}`,
    );
  }
  const checksums = new Uint32Array(count);
  const allocated = new Uint8Array(count);
  for (let index = 0; index < count; index++) {
    checksums[index] = fields.u32();
    const flag = fields.u8();
    if (flag > 1) {
      throw new FrameViolation(
        `REPL_CHECKSUMS allocated flag ${flag} of block ${index} is not 0 or 1`,
      );
    }
    allocated[index] = flag;
  }
  return { type: 'REPL_CHECKSUMS', startBlock, checksums, allocated };
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
    case 'REPL_OPEN':
      return decodeOpen(fields);
    case 'REPL_GENERATION': {
      const epoch = fields.safe('epoch');
      return { type, epoch, generation: fields.u64().toString(16).padStart(16, '0') };
    }
    case 'REPL_READ_CHECKSUMS':
      return decodeReadChecksums(fields);
    case 'REPL_CHECKSUMS':
      return decodeChecksums(fields);
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
