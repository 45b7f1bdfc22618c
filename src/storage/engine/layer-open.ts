// Creating a layer's files and opening a layer: replay the journal (journal-replay.ts), then
// bring the data file in line with it after an unclean stop.
//
// Redo: blocks flushed in data batches since the data file was last known synced are compared
// with the copy in the journal and rewritten from it if they differ (a power cut lost the page).
//
// Rollback: if the journal ends with a plain batch, its flush synced data and journal at once, so
// a power cut may have kept the record but not all of its data. A block of that batch whose data
// fails its checksum is rolled back to its previous entry if that one verifies (or can be redone
// from the journal); its slot cannot have been reused, because slots freed by a batch are reused
// only after it is durable. Every batch but the last was followed by another flush, which starts
// only after the previous one was answered, so a mismatch there is damage. After a SIGKILL the
// page cache holds everything and neither step changes anything; when one does, it is logged.
import { entryAbsent, entryZero, isDataEntry, slotOf } from './block-map.js';
import { closeFile, openFile } from './file-io.js';
import { Journal } from './journal.js';
import { replayJournal, type JournaledData, type PreviousEntry } from './journal-replay.js';
import { Layer, type LayerOptions } from './layer.js';
import { volumeError } from './engine-errors.js';
import zlib from 'node:zlib';

export interface LayerPaths {
  readonly dataPath: string;
  readonly journalPath: string;
}

export interface RecoveryReport {
  /** The journal did not end with a close record: the layer was not shut down cleanly. */
  readonly unclean: boolean;
  /** Blocks whose data was rewritten from the copy in the journal. */
  readonly redoneBlocks: number;
  /** Blocks of the last batch whose data was missing, rolled back to their previous contents. */
  readonly rolledBackBlocks: readonly number[];
}

export interface OpenLayerOptions extends LayerOptions {
  readonly blockSizeBytes: number;
  readonly frozen: boolean;
  /** Whether the layer has layers below it (zeroed blocks must hide them). */
  readonly hasParent: boolean;
}

export async function createLayerFiles(
  paths: LayerPaths,
  options: { blockSizeBytes: number; generation: number },
): Promise<void> {
  await closeFile(await openFile(paths.dataPath, 'w'));
  const journal = await Journal.create(paths.journalPath, options);
  await journal.close();
}

export async function openLayer(
  id: string,
  paths: LayerPaths,
  options: OpenLayerOptions,
): Promise<{ layer: Layer; recovery: RecoveryReport }> {
  const { journal, state } = await Journal.open(paths.journalPath);
  let dataFd: number | null = null;
  try {
    if (state.blockSizeBytes !== options.blockSizeBytes) {
      throw volumeError(
        'CONTINUUM_ERR_VOLUME_CORRUPT',
        `layer ${id}: journal block size ${state.blockSizeBytes} differs from the store's ` +
          `${options.blockSizeBytes}`,
      );
    }
    dataFd = await openFile(paths.dataPath, 'r+');
    const replay = replayJournal(state.records, options.blockSizeBytes);
    const layer = new Layer(
      id,
      options.blockSizeBytes,
      replay.map,
      dataFd,
      journal,
      options,
      {
        generation: replay.generation,
        frozen: options.frozen,
        zeroEntry: options.hasParent ? entryZero : entryAbsent,
        cleanlyClosed: replay.clean,
        journalHoldsData: replay.holdsData,
      },
      null,
    );
    const redoneBlocks = await redoJournaled(layer, replay.redo);
    const rolledBackBlocks = await verifyLastBatch(layer, replay.lastBatchPrevious);
    if (redoneBlocks > 0 || rolledBackBlocks.length > 0) await layer.syncDataFile();
    // The free list is built only now, from the map after any rollback, so a slot a rolled-back
    // entry points to again is never handed out.
    if (!options.frozen || rolledBackBlocks.length > 0) await layer.thaw();
    if (rolledBackBlocks.length > 0) {
      // Persist the rollback at once so that a later record cannot make the bad entry look durable.
      for (const block of rolledBackBlocks) layer.markDirty(block);
      if (options.frozen) await layer.freeze();
      else await layer.flush();
    }
    return { layer, recovery: { unclean: !replay.clean, redoneBlocks, rolledBackBlocks } };
  } catch (error) {
    await journal.close();
    if (dataFd !== null) await closeFile(dataFd);
    throw error;
  }
}

/** Rewrites from the journal every journaled block whose slot does not hold its data. */
async function redoJournaled(layer: Layer, redo: Map<number, JournaledData>): Promise<number> {
  let redone = 0;
  const block = Buffer.alloc(layer.blockSizeBytes);
  for (const [index, journaled] of redo) {
    if (layer.map.entry(index) !== journaled.entry) continue;
    await layer.readSlots(slotOf(journaled.entry), 1, block, 0);
    if (zlib.crc32(block) === journaled.checksum) continue;
    if (zlib.crc32(journaled.data) !== journaled.checksum) continue; // damaged: reads will say so
    await layer.restoreSlot(slotOf(journaled.entry), journaled.data);
    redone += 1;
  }
  return redone;
}

/** Checks the data of the last batch; returns the blocks rolled back to their previous entry. */
async function verifyLastBatch(layer: Layer, previous: PreviousEntry[]): Promise<number[]> {
  const rolledBack: number[] = [];
  const block = Buffer.alloc(layer.blockSizeBytes);
  for (const before of previous) {
    const entry = layer.map.entry(before.block);
    if (!isDataEntry(entry)) continue;
    await layer.readSlots(slotOf(entry), 1, block, 0);
    if (zlib.crc32(block) === layer.map.checksum(before.block)) continue;
    if (isDataEntry(before.entry)) {
      await layer.readSlots(slotOf(before.entry), 1, block, 0);
      if (zlib.crc32(block) !== before.checksum) {
        // Neither version verifies: leave the entry, so reads report the damage, unless the
        // previous version is still in the journal.
        if (before.data === null || zlib.crc32(before.data) !== before.checksum) continue;
        await layer.restoreSlot(slotOf(before.entry), before.data);
      }
    }
    layer.map.set(before.block, before.entry, before.checksum);
    rolledBack.push(before.block);
  }
  return rolledBack;
}
