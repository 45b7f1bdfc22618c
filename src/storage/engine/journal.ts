// A layer's journal file: an append-only sequence of records (journal-records.ts) that, replayed
// from the start, rebuilds the layer's allocation map. Appends are plain writes; the layer decides
// when to sync (on flush or FUA, never per write). When the file grows past a limit the layer
// replaces it with a checkpoint: a fresh file holding the whole map, swapped in by rename.
import fs from 'node:fs';
import path from 'node:path';
import {
  closeFile,
  fileSize,
  openFile,
  readAt,
  syncData,
  syncDirectory,
  truncateFile,
  writeAt,
} from './file-io.js';
import { decodeJournal, headerRecord, recordType, type JournalRecord } from './journal-records.js';
import { volumeError } from './engine-errors.js';

export interface JournalState {
  readonly blockSizeBytes: number;
  readonly records: JournalRecord[];
  /** Sequence number of the last valid record. */
  readonly lastSequence: number;
}

/**
 * Appends go into space written with zeroes ahead of time, a mebibyte at a time: an fdatasync
 * after an append that grows the file must also commit the new size (an ext4 journal commit),
 * one into space already allocated need not. Replay stops at the zeroes (no record magic).
 */
const preallocationBytes = 2 ** 20;
const zeroes = Buffer.alloc(preallocationBytes);

export class Journal {
  private fd: number;
  private endBytes: number;
  private allocatedBytes: number;
  /** Next record's sequence number. */
  sequence: number;

  private constructor(
    readonly filePath: string,
    fd: number,
    endBytes: number,
    sequence: number,
  ) {
    this.fd = fd;
    this.endBytes = endBytes;
    this.allocatedBytes = endBytes;
    this.sequence = sequence;
  }

  get sizeBytes(): number {
    return this.endBytes;
  }

  /** Creates a journal holding only its header record, durable before it returns. */
  static async create(
    filePath: string,
    options: { blockSizeBytes: number; generation: number },
  ): Promise<Journal> {
    const header = headerRecord(
      { sequence: 1, generation: options.generation },
      options.blockSizeBytes,
    );
    const fd = await openFile(filePath, 'w+');
    try {
      await writeAt(fd, header, 0, header.length, 0);
      await syncData(fd);
    } catch (error) {
      await closeFile(fd);
      throw error;
    }
    await syncDirectory(path.dirname(filePath));
    return new Journal(filePath, fd, header.length, 2);
  }

  /** Opens and decodes a journal; a torn last record is cut off, damage elsewhere is an error. */
  static async open(filePath: string): Promise<{ journal: Journal; state: JournalState }> {
    const fd = await openFile(filePath, 'r+');
    try {
      const size = await fileSize(fd);
      const contents = Buffer.alloc(size);
      await readAt(fd, contents, 0, size, 0);
      const decoded = decodeJournal(contents);
      const where = `journal ${filePath}`;
      if (decoded.damagedAtBytes !== null) {
        throw volumeError(
          'CONTINUUM_ERR_VOLUME_CORRUPT',
          `${where} is damaged at byte ${decoded.damagedAtBytes}: a record there is unreadable ` +
            'but later records are intact',
        );
      }
      const first = decoded.records[0];
      if (first === undefined || first.type !== recordType.header) {
        throw volumeError('CONTINUUM_ERR_VOLUME_CORRUPT', `${where} has no header record`);
      }
      for (let index = 1; index < decoded.records.length; index++) {
        const record = decoded.records[index]!;
        if (record.sequence !== decoded.records[index - 1]!.sequence + 1) {
          throw volumeError(
            'CONTINUUM_ERR_VOLUME_CORRUPT',
            `${where}: record at byte ${record.offsetBytes} has sequence ${record.sequence}, ` +
              `expected ${decoded.records[index - 1]!.sequence + 1}`,
          );
        }
      }
      if (decoded.validBytes < size) await truncateFile(fd, decoded.validBytes);
      const last = decoded.records[decoded.records.length - 1]!;
      const state: JournalState = {
        blockSizeBytes: first.payload.readUInt32LE(4),
        records: decoded.records,
        lastSequence: last.sequence,
      };
      return { journal: new Journal(filePath, fd, decoded.validBytes, last.sequence + 1), state };
    } catch (error) {
      await closeFile(fd);
      throw error;
    }
  }

  /** Appends a record (already holding `this.sequence`); durable only after `sync()`. */
  async append(record: Buffer): Promise<void> {
    const at = this.endBytes;
    this.endBytes += record.length;
    this.sequence += 1;
    if (this.endBytes > this.allocatedBytes) {
      const from = this.allocatedBytes;
      this.allocatedBytes = Math.max(this.endBytes, from + preallocationBytes);
      for (let offset = from; offset < this.allocatedBytes; offset += preallocationBytes) {
        const length = Math.min(preallocationBytes, this.allocatedBytes - offset);
        await writeAt(this.fd, zeroes, 0, length, offset);
      }
    }
    await writeAt(this.fd, record, 0, record.length, at);
  }

  sync(): Promise<void> {
    return syncData(this.fd);
  }

  /**
   * Replaces the journal with `records` (a header, then a checkpoint of the whole map): written
   * to a temporary file and synced, renamed over the journal, directory synced. A crash leaves
   * either the old journal or the new one, both complete.
   */
  async rewrite(records: readonly Buffer[], nextSequence: number): Promise<void> {
    const temporary = `${this.filePath}.tmp`;
    const fd = await openFile(temporary, 'w+');
    let at = 0;
    try {
      for (const record of records) {
        await writeAt(fd, record, 0, record.length, at);
        at += record.length;
      }
      await syncData(fd);
      await fs.promises.rename(temporary, this.filePath);
      await syncDirectory(path.dirname(this.filePath));
    } catch (error) {
      await closeFile(fd);
      throw error;
    }
    const old = this.fd;
    this.fd = fd;
    this.endBytes = at;
    this.allocatedBytes = at;
    this.sequence = nextSequence;
    await closeFile(old);
  }

  /** Gives back the space written ahead, so a closed layer's journal is as long as its records. */
  async close(): Promise<void> {
    try {
      if (this.allocatedBytes > this.endBytes) await truncateFile(this.fd, this.endBytes);
    } finally {
      await closeFile(this.fd);
    }
  }
}
