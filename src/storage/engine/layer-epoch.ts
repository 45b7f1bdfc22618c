// Turns the blocks changed since the last flush into journal records, in one synchronous step, so
// that they describe exactly the state at the moment the epoch was sealed. Three forms:
//   - a data batch, for a small epoch whose new data the layer still holds copies of: entries and
//     data together, so the flush needs only the journal synced (one fdatasync, not two);
//   - a batch: entries only; the flush syncs the data file and the journal;
//   - a checkpoint, once the journal has grown past its limit: a header and the whole map, as a
//     fresh journal file that replaces the old one (the data file is synced first).
import type { BlockMap } from './block-map.js';
import { isDataEntry } from './block-map.js';
import {
  allocateRecord,
  entryBytes,
  headerRecord,
  paddedLength,
  putEntry,
  recordHeaderBytes,
  recordType,
  sealRecord,
} from './journal-records.js';
import { recordEntriesMax } from './limits.js';
import { assert } from '../../core/errors.js';

export interface SealedEpoch {
  readonly records: Buffer[];
  readonly form: 'data-batch' | 'batch' | 'checkpoint';
  readonly generation: number;
  /** Sequence number after the records. */
  readonly nextSequence: number;
}

export interface SealContext {
  readonly blockSizeBytes: number;
  /** Generation the layer will have once these records are durable. */
  readonly generation: number;
  readonly sequence: number;
  readonly journalBytes: number;
  readonly journalBytesMax: number;
  /** Copies of the data of every changed data block, or null when the epoch is too large. */
  readonly copies: ReadonlyMap<number, Buffer> | null;
}

export function sealEpoch(
  map: BlockMap,
  dirty: Iterable<number> & { readonly size: number },
  context: SealContext,
): SealedEpoch {
  const position = { sequence: context.sequence, generation: context.generation };
  const done = (record: Buffer, form: SealedEpoch['form']): SealedEpoch => ({
    records: [sealRecord(record)],
    form,
    generation: context.generation,
    nextSequence: context.sequence + 1,
  });
  const entriesBytes = dirty.size * entryBytes;
  if (context.copies !== null) {
    const payloadBytes = 4 + entriesBytes + context.copies.size * context.blockSizeBytes;
    if (context.journalBytes + paddedLength(payloadBytes) <= context.journalBytesMax) {
      const record = allocateRecord({ type: recordType.dataBatch, ...position }, payloadBytes);
      record.writeUInt32LE(dirty.size, recordHeaderBytes);
      let at = 4;
      let dataAt = recordHeaderBytes + 4 + entriesBytes;
      for (const block of dirty) {
        const entry = map.entry(block);
        putEntry(record, { at, block, entry, checksum: map.checksum(block) });
        at += entryBytes;
        if (!isDataEntry(entry)) continue;
        const copy = context.copies.get(block);
        assert(copy !== undefined, `a small epoch keeps a copy of changed block ${block}`);
        copy.copy(record, dataAt);
        dataAt += context.blockSizeBytes;
      }
      return done(record, 'data-batch');
    }
  }
  if (context.journalBytes + paddedLength(entriesBytes) <= context.journalBytesMax) {
    const record = allocateRecord({ type: recordType.batch, ...position }, entriesBytes);
    let at = 0;
    for (const block of dirty) {
      putEntry(record, { at, block, entry: map.entry(block), checksum: map.checksum(block) });
      at += entryBytes;
    }
    return done(record, 'batch');
  }
  return checkpoint(map, context);
}

/** A journal that rebuilds `map` as it is now: header, then every entry in bounded records. */
export function checkpoint(
  map: BlockMap,
  context: Pick<SealContext, 'blockSizeBytes' | 'generation' | 'sequence'>,
): SealedEpoch {
  let sequence = context.sequence;
  const generation = context.generation;
  const records = [headerRecord({ sequence, generation }, context.blockSizeBytes)];
  sequence += 1;
  let remaining = map.countEntries();
  let record: Buffer | null = null;
  let at = 0;
  map.forEachEntry((block, entry, checksum) => {
    if (record === null) {
      const count = Math.min(remaining, recordEntriesMax);
      record = allocateRecord(
        { type: recordType.checkpoint, sequence, generation },
        count * entryBytes,
      );
      sequence += 1;
      remaining -= count;
      at = 0;
    }
    putEntry(record, { at, block, entry, checksum });
    at += entryBytes;
    if (at === record.readUInt32LE(8)) {
      records.push(sealRecord(record));
      record = null;
    }
  });
  return { records, form: 'checkpoint', generation, nextSequence: sequence };
}
