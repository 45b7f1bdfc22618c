// Replaying a layer's journal records into an allocation map, without I/O. Besides the map it
// works out what recovery must check against the data file:
//
//   redo   blocks whose current data was flushed in a data batch after the last moment the data
//          file is known to have been synced. Their data is in the journal; after a power cut the
//          slot may not hold it yet, so recovery compares and rewrites (layer-open.ts).
//   last   when the journal ends with a plain batch, the entries it replaced: its flush synced the
//          data file and the journal at once, so after a power cut some of its data may be
//          missing, and recovery rolls such a block back to its previous entry.
//
// When is the data file known synced? A plain batch's flush synced it, and a later record proves
// that flush was answered (a flush starts only after the previous one finished). A close record
// is written only after a sync of the data file. A checkpoint starts a journal file after one.
import { BlockMap, isDataEntry } from './block-map.js';
import {
  entryBytes,
  entryLayout,
  readEntry,
  recordType,
  type JournalRecord,
} from './journal-records.js';

export interface JournaledData {
  /** The map entry the data belongs to; it is redone only if the block still has this entry. */
  readonly entry: number;
  readonly checksum: number;
  readonly data: Buffer;
}

export interface PreviousEntry {
  readonly block: number;
  readonly entry: number;
  readonly checksum: number;
  /** The previous entry's data, if only the journal is sure to hold it. */
  readonly data: Buffer | null;
}

export interface Replay {
  readonly map: BlockMap;
  readonly redo: Map<number, JournaledData>;
  readonly lastBatchPrevious: PreviousEntry[];
  readonly generation: number;
  /** The journal ends with a close record. */
  readonly clean: boolean;
  /** Some record is a data batch (a checkpoint at close would shrink the journal). */
  readonly holdsData: boolean;
}

export function replayJournal(records: readonly JournalRecord[], blockSizeBytes: number): Replay {
  const map = new BlockMap();
  const redo = new Map<number, JournaledData>();
  let lastBatchPrevious: PreviousEntry[] = [];
  const fields = new Uint32Array(3);
  records.forEach((record, index) => {
    const isLast = index === records.length - 1;
    if (record.type === recordType.close) redo.clear();
    if (record.type === recordType.header || record.type === recordType.close) return;
    const { count, start } = entryLayout(record);
    let dataAt = start + count * entryBytes;
    const previous: PreviousEntry[] = [];
    for (let entryIndex = 0; entryIndex < count; entryIndex++) {
      readEntry(record.payload, { at: start + entryIndex * entryBytes, out: fields });
      const [block, entry, checksum] = [fields[0]!, fields[1]!, fields[2]!];
      if (record.type === recordType.batch && isLast) {
        const journaled = redo.get(block);
        const data = journaled !== undefined && journaled.entry === map.entry(block);
        previous.push({
          block,
          entry: map.entry(block),
          checksum: map.checksum(block),
          data: data ? journaled.data : null,
        });
      }
      map.set(block, entry, checksum);
      if (record.type === recordType.dataBatch && isDataEntry(entry)) {
        redo.set(block, {
          entry,
          checksum,
          data: record.payload.subarray(dataAt, dataAt + blockSizeBytes),
        });
        dataAt += blockSizeBytes;
      } else redo.delete(block);
    }
    if (record.type === recordType.batch) {
      if (isLast) lastBatchPrevious = previous;
      else redo.clear();
    }
  });
  const last = records[records.length - 1];
  return {
    map,
    redo,
    lastBatchPrevious,
    generation: last?.generation ?? 0,
    clean: last?.type === recordType.close,
    holdsData: records.some((record) => record.type === recordType.dataBatch),
  };
}
