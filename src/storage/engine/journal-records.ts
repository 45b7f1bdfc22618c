// The binary records of a layer's journal, encoded and decoded without I/O. All integers are
// little-endian; every record is padded to a multiple of 8 bytes.
//
//   offset  size  field
//   0       4     magic "CJRN"
//   4       2     type: 1 header, 2 batch, 3 checkpoint, 4 close, 5 data batch
//   6       2     zero
//   8       4     payload length in bytes
//   12      4     CRC-32 of bytes 16 .. 32 + payload length
//   16      6     sequence number (each record is the previous one's plus 1)
//   22      2     zero
//   24      6     data generation of the layer after this record
//   30      2     zero
//   32      ...   payload
//
// header payload: format version (u32), block size in bytes (u32).
// batch and checkpoint payload: entries of 12 bytes: block (u32), map entry (u32), CRC-32 (u32).
// data batch payload: entry count (u32), the entries as in a batch, then the data of every entry
//   that points to a slot, one block each, in entry order (a small flush carries its data, so it
//   needs only the journal synced; see layer.ts).
// close payload: none; it marks a clean shutdown.
import zlib from 'node:zlib';

export const recordMagic = 0x4e524a43; // "CJRN" read as a little-endian u32
export const journalFormatVersion = 1;
export const recordHeaderBytes = 32;
export const entryBytes = 12;

export const recordType = { header: 1, batch: 2, checkpoint: 3, close: 4, dataBatch: 5 } as const;
export type RecordType = (typeof recordType)[keyof typeof recordType];

export interface JournalRecord {
  readonly type: RecordType;
  readonly sequence: number;
  readonly generation: number;
  readonly payload: Buffer;
  /** Where the record starts in the journal file. */
  readonly offsetBytes: number;
}

export function paddedLength(payloadBytes: number): number {
  return (recordHeaderBytes + payloadBytes + 7) & ~7;
}

export interface RecordHead {
  readonly type: RecordType;
  readonly sequence: number;
  readonly generation: number;
}

/** Allocates a record with room for `payloadBytes`; fill the payload, then call `sealRecord`. */
export function allocateRecord(head: RecordHead, payloadBytes: number): Buffer {
  const record = Buffer.alloc(paddedLength(payloadBytes));
  record.writeUInt32LE(recordMagic, 0);
  record.writeUInt16LE(head.type, 4);
  record.writeUInt32LE(payloadBytes, 8);
  record.writeUIntLE(head.sequence, 16, 6);
  record.writeUIntLE(head.generation, 24, 6);
  return record;
}

export function sealRecord(record: Buffer): Buffer {
  const payloadBytes = record.readUInt32LE(8);
  record.writeUInt32LE(zlib.crc32(record.subarray(16, recordHeaderBytes + payloadBytes)), 12);
  return record;
}

export function headerRecord(
  position: { sequence: number; generation: number },
  blockSizeBytes: number,
): Buffer {
  const record = allocateRecord({ type: recordType.header, ...position }, 8);
  record.writeUInt32LE(journalFormatVersion, recordHeaderBytes);
  record.writeUInt32LE(blockSizeBytes, recordHeaderBytes + 4);
  return sealRecord(record);
}

export function closeRecord(sequence: number, generation: number): Buffer {
  return sealRecord(allocateRecord({ type: recordType.close, sequence, generation }, 0));
}

export interface EntryFields {
  /** Byte offset of the entry in the payload. */
  readonly at: number;
  readonly block: number;
  readonly entry: number;
  readonly checksum: number;
}

/** Writes one entry into the payload of a record being built. */
export function putEntry(record: Buffer, fields: EntryFields): void {
  const at = recordHeaderBytes + fields.at;
  record.writeUInt32LE(fields.block, at);
  record.writeUInt32LE(fields.entry, at + 4);
  record.writeUInt32LE(fields.checksum, at + 8);
}

/** Where a record's entries start and how many there are (data batches lead with a count). */
export function entryLayout(record: JournalRecord): { count: number; start: number } {
  if (record.type === recordType.dataBatch) {
    return { count: record.payload.readUInt32LE(0), start: 4 };
  }
  return { count: record.payload.length / entryBytes, start: 0 };
}

/** Reads the entry at byte `at` of `payload` into `out`: block, map entry, CRC-32. */
export function readEntry(payload: Buffer, read: { at: number; out: Uint32Array }): void {
  read.out[0] = payload.readUInt32LE(read.at);
  read.out[1] = payload.readUInt32LE(read.at + 4);
  read.out[2] = payload.readUInt32LE(read.at + 8);
}

function recordAt(buffer: Buffer, offset: number): JournalRecord | null {
  if (offset + recordHeaderBytes > buffer.length) return null;
  if (buffer.readUInt32LE(offset) !== recordMagic) return null;
  const type = buffer.readUInt16LE(offset + 4);
  if (type < recordType.header || type > recordType.dataBatch) return null;
  const payloadBytes = buffer.readUInt32LE(offset + 8);
  if (offset + paddedLength(payloadBytes) > buffer.length) return null;
  const end = offset + recordHeaderBytes + payloadBytes;
  if (zlib.crc32(buffer.subarray(offset + 16, end)) !== buffer.readUInt32LE(offset + 12)) {
    return null;
  }
  return {
    type: type as RecordType,
    sequence: buffer.readUIntLE(offset + 16, 6),
    generation: buffer.readUIntLE(offset + 24, 6),
    payload: buffer.subarray(offset + recordHeaderBytes, end),
    offsetBytes: offset,
  };
}

export interface DecodedJournal {
  readonly records: JournalRecord[];
  /** Length of the valid prefix: the next record is appended here. */
  readonly validBytes: number;
  /**
   * Where a valid record was found after an invalid one. A crash can only tear the last record,
   * so a valid record behind a bad one means the journal was damaged after it was written.
   */
  readonly damagedAtBytes: number | null;
}

export function decodeJournal(buffer: Buffer): DecodedJournal {
  const records: JournalRecord[] = [];
  let offset = 0;
  for (;;) {
    const record = recordAt(buffer, offset);
    if (record === null) break;
    records.push(record);
    offset += paddedLength(record.payload.length);
  }
  for (let probe = offset + 8; probe + recordHeaderBytes <= buffer.length; probe += 8) {
    if (buffer.readUInt32LE(probe) !== recordMagic) continue;
    if (recordAt(buffer, probe) !== null) {
      return { records, validBytes: offset, damagedAtBytes: offset };
    }
  }
  return { records, validBytes: offset, damagedAtBytes: null };
}
