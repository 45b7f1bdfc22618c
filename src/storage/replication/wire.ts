// The binary wire format of the replication connection between a primary and a replica
// (docs/replication.md): what each message holds and how it is framed, as pure functions over
// Buffers. The connection writes what encode() returns and feeds what it reads to a FrameDecoder
// (wire-decode.ts);
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
// | REPL_OPEN (10)          | primary | epoch u64, volume length u8, node length u8, | 10 + names |
// |                         |         | volume, primary node                         |            |
// | REPL_GENERATION (11)    | primary | epoch u64, generation u64                    | 16         |
// | REPL_READ_CHECKSUMS (12)| primary | epoch u64, start block u64, block count u32  | 20         |
// | REPL_CHECKSUMS (13)     | replica | start block u64, block count u32, then per   | 12 + 5 per |
// |                         |         | block: CRC-32 u32, allocated u8 (0 or 1)     | block      |
//
// REPL_OPEN is the primary's first frame on every link: the transport routes the link by its
// volume, and the replica answers REPL_HELLO. REPL_GENERATION tells an in-sync replica to adopt a
// generation into its history ("you hold my data as of this generation"). REPL_READ_CHECKSUMS
// asks for the checksums of 1 to replicationChecksumBlocksMax blocks, which the replica answers,
// after every mutation that arrived before the question, with REPL_CHECKSUMS for the same blocks;
// a resync compares them with its own to find the blocks to copy.
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
/**
 * Blocks one REPL_READ_CHECKSUMS may ask for (and one REPL_CHECKSUMS carries): 2 MiB of 4 KiB
 * blocks, and a 2,582-byte frame, so it fits the smallest messageBytesMax a decoder takes.
 */
export const replicationChecksumBlocksMax = 512;
/** Bytes each block takes in REPL_CHECKSUMS: its CRC-32 and its allocated flag. */
export const checksumEntryBytes = 5;

export const writeFixedBytes = 26;
/** Largest frame by default: a write of the NBD request limit, its fixed fields and the header. */
export const replicationMessageBytesMax =
  requestBytesMax + writeFixedBytes + replicationHeaderBytes;

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
  REPL_OPEN: 10,
  REPL_GENERATION: 11,
  REPL_READ_CHECKSUMS: 12,
  REPL_CHECKSUMS: 13,
} as const;
export type ReplicationMessageType = keyof typeof replicationMessageTypes;

/** Body sizes a header may announce: the fixed fields, plus at most this much that varies. */
export const bodyShapes: Record<ReplicationMessageType, { fixed: number; variableMax: number }> = {
  REPL_HELLO: { fixed: 26, variableMax: 2 * replicationNameBytesMax },
  REPL_WRITE: { fixed: writeFixedBytes, variableMax: Infinity },
  REPL_TRIM: { fixed: 30, variableMax: 0 },
  REPL_WRITE_ZEROES: { fixed: 30, variableMax: 0 },
  REPL_FLUSH: { fixed: 16, variableMax: 0 },
  REPL_ACK: { fixed: 9, variableMax: 0 },
  REPL_FENCED: { fixed: 10, variableMax: replicationTextBytesMax },
  REPL_ACCEPT_EPOCH: { fixed: 8, variableMax: 0 },
  REPL_EPOCH_ACCEPTED: { fixed: 8, variableMax: 0 },
  REPL_OPEN: { fixed: 10, variableMax: 2 * replicationNameBytesMax },
  REPL_GENERATION: { fixed: 16, variableMax: 0 },
  REPL_READ_CHECKSUMS: { fixed: 20, variableMax: 0 },
  REPL_CHECKSUMS: { fixed: 12, variableMax: checksumEntryBytes * replicationChecksumBlocksMax },
};

export type AckKind = 'written' | 'durable';
export const ackKindCodes: Record<AckKind, number> = { written: 1, durable: 2 };

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
export interface ReplOpen {
  readonly type: 'REPL_OPEN';
  readonly volume: string;
  readonly primaryNode: string;
  readonly epoch: number;
}
export interface ReplGeneration {
  readonly type: 'REPL_GENERATION';
  readonly epoch: number;
  /** 16 lowercase hex digits. */
  readonly generation: string;
}
export interface ReplReadChecksums {
  readonly type: 'REPL_READ_CHECKSUMS';
  readonly epoch: number;
  readonly startBlock: number;
  /** 1 to replicationChecksumBlocksMax. */
  readonly blockCount: number;
}
export interface ReplChecksums {
  readonly type: 'REPL_CHECKSUMS';
  readonly startBlock: number;
  /** CRC-32 of each block as it reads (a hole has the CRC of zeroes). */
  readonly checksums: Uint32Array;
  /** 1 where the block holds stored data, 0 where it reads as zeroes without any. */
  readonly allocated: Uint8Array;
}
export type ReplicationMessage =
  | ReplHello
  | ReplWrite
  | ReplRangeMutation
  | ReplFlush
  | ReplAck
  | ReplFenced
  | ReplEpoch
  | ReplOpen
  | ReplGeneration
  | ReplReadChecksums
  | ReplChecksums;

export const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
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
    case 'REPL_OPEN':
      return [encodeOpen(message)];
    case 'REPL_GENERATION':
      return [
        fixed(message)
          .u64(safe(message, 'epoch', message.epoch))
          .u64(generationOf(message, message.generation)).buffer,
      ];
    case 'REPL_READ_CHECKSUMS':
      return [
        fixed(message)
          .u64(safe(message, 'epoch', message.epoch))
          .u64(safe(message, 'start block', message.startBlock))
          .u32(checksumCountOf(message, message.blockCount)).buffer,
      ];
    case 'REPL_CHECKSUMS':
      return [encodeChecksums(message)];
  }
}

function encodeOpen(message: ReplOpen): Buffer {
  const volume = nameBytes(message, 'volume name', message.volume);
  const node = nameBytes(message, 'primary node name', message.primaryNode);
  const bodyBytes = 10 + volume.length + node.length;
  return new FieldWriter('REPL_OPEN', bodyBytes, bodyBytes)
    .u64(safe(message, 'epoch', message.epoch))
    .u8(volume.length)
    .u8(node.length)
    .bytes(volume)
    .bytes(node).buffer;
}

function encodeChecksums(message: ReplChecksums): Buffer {
  const count = checksumCountOf(message, message.checksums.length);
  if (message.allocated.length !== count) {
    throw cannotEncode(
      message,
      `${message.allocated.length} allocated flags for ${count} checksums`,
    );
  }
  const bodyBytes = 12 + checksumEntryBytes * count;
  const writer = new FieldWriter('REPL_CHECKSUMS', bodyBytes, bodyBytes)
    .u64(safe(message, 'start block', message.startBlock))
    .u32(count);
  for (let index = 0; index < count; index++) {
    const flag = message.allocated[index]!;
    if (flag > 1) throw cannotEncode(message, `allocated flag ${flag} is not 0 or 1`);
    writer.u32(message.checksums[index]!).u8(flag);
  }
  return writer.buffer;
}

function checksumCountOf(message: ReplicationMessage, count: number): number {
  if (!Number.isInteger(count) || count < 1 || count > replicationChecksumBlocksMax) {
    const expected = `expected 1 to replicationChecksumBlocksMax (${replicationChecksumBlocksMax})`;
    throw cannotEncode(message, `block count ${count}: ${expected}`);
  }
  return count;
}

function generationOf(message: ReplicationMessage, generation: string): bigint {
  if (!generationPattern.test(generation)) {
    throw cannotEncode(message, `generation ${JSON.stringify(generation)} is not 16 hex digits`);
  }
  return BigInt(`0x${generation}`);
}

function encodeHello(message: ReplHello): Buffer {
  const volume = nameBytes(message, 'volume name', message.volume);
  const node = nameBytes(message, 'replica node name', message.replicaNode);
  const generation = generationOf(message, message.generation);
  const variableBytes = volume.length + node.length;
  return new FieldWriter('REPL_HELLO', 26 + variableBytes, 26 + variableBytes)
    .u64(safe(message, 'accepted epoch', message.acceptedEpoch))
    .u64(generation)
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
