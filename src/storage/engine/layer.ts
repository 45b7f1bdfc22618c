// One layer of a volume: a data file of block-sized slots, its allocation map (block-map.ts) and
// its journal (journal.ts). This is where the durability contract is kept.
//
// Redirect-on-write per flush epoch: the first write to a block after a flush goes to a free slot,
// never over the slot a durable journal record points to; later writes to the same block before
// the next flush overwrite that new slot in place. A flush seals the epoch, waits for its data
// writes, appends one record (block, slot, CRC-32 for every block changed) and syncs. So after any
// crash the journal describes a state whose data was all written before the record, and a
// checksum that does not match is damage, not a torn update. Slots freed in an epoch are reused
// only after that epoch's record is durable.
//
// A small epoch (at most `journaledEpochBlocksMax` blocks, the common write+flush case) also puts
// the blocks' data in its record, from copies kept while the epoch is small; then only the
// journal is synced, one fdatasync instead of two. The data file is synced before anything that
// lets the journal forget those copies: a plain batch, a checkpoint, a close record.
import zlib from 'node:zlib';
import { SlotSet } from '../../platform/slot-set.js';
import { BlockDeviceError } from '../block-device.js';
import { BlockMap, dataEntry, isDataEntry, slotOf } from './block-map.js';
import { ioFailure } from './engine-errors.js';
import { journaledEpochBlocksMax } from './limits.js';
import { closeFile, fileSize, readAt, syncData, writeAt } from './file-io.js';
import type { Journal } from './journal.js';
import { closeRecord } from './journal-records.js';
import { BlockSet } from './block-set.js';
import { checkpoint, sealEpoch, type SealedEpoch } from './layer-epoch.js';
import { allocatorForMap, type SlotAllocator } from './slot-allocator.js';
import { isZeroBlock } from './zero-block.js';

export interface LayerOptions {
  readonly epochBlocksMax: number;
  readonly journalBytesMax: number;
}

export class Layer {
  /** Durable data generation: raised by every flush that changed the layer. */
  generation: number;
  frozen: boolean;
  /** What a zeroed block becomes: "zero" hides the layers below, "absent" if there are none. */
  zeroEntry: number;
  private allocator: SlotAllocator | null;
  /** Blocks changed since the last flush, cleared when the flush seals them. */
  private readonly dirty = new BlockSet();
  private pendingFree: number[] = [];
  /**
   * Data writes of the epoch still in flight; each leaves the set when it settles. One that failed
   * has set `failure` before it left, and runFlush checks that first. (Keeping every write of the
   * epoch held a promise per write until the next flush: without end for a client that never
   * flushes.)
   */
  private epochWrites = new SlotSet<Promise<unknown>>();
  private epochHasData = false;
  /** Copies of the data of the epoch's changed blocks while it is small; null once it is not. */
  private copies: Map<number, Buffer> | null = new Map();
  private failure: BlockDeviceError | null = null;
  private flushRunning: Promise<void> | null = null;
  private flushQueued: Promise<void> | null = null;
  private cleanlyClosed: boolean;
  /** Journal size right after its last rewrite (or at open): what a checkpoint costs now. */
  private checkpointBytes: number;
  /** The journal holds data batches: copies of data that a checkpoint would let it drop. */
  private journalHoldsData: boolean;
  private readonly slotScratch: number[] = [];
  private checksumScratch = new Uint32Array(256);
  private kindScratch = new Uint8Array(256);

  constructor(
    readonly id: string,
    readonly blockSizeBytes: number,
    readonly map: BlockMap,
    private readonly dataFd: number,
    private readonly journal: Journal,
    private readonly options: LayerOptions,
    state: {
      generation: number;
      frozen: boolean;
      zeroEntry: number;
      cleanlyClosed: boolean;
      journalHoldsData: boolean;
    },
    allocator: SlotAllocator | null,
  ) {
    this.generation = state.generation;
    this.frozen = state.frozen;
    this.zeroEntry = state.zeroEntry;
    this.cleanlyClosed = state.cleanlyClosed;
    this.journalHoldsData = state.journalHoldsData;
    this.allocator = allocator;
    this.checkpointBytes = journal.sizeBytes;
  }

  get dirtyBlocks(): number {
    return this.dirty.size;
  }

  get journalBytes(): number {
    return this.journal.sizeBytes;
  }

  /** Allows writes again: a merge into a frozen layer, or a rollback persisted at open. */
  async thaw(): Promise<void> {
    if (this.allocator === null) {
      const size = await fileSize(this.dataFd);
      this.allocator = allocatorForMap(this.map, size, this.blockSizeBytes);
    }
    this.frozen = false;
  }

  /** Marks blocks changed without new data (a rollback at open) so the next flush records them. */
  markDirty(block: number): void {
    this.dirty.add(block);
    this.copies = null; // no copy of the rolled-back data: the flush must sync the data file
    this.cleanlyClosed = false;
  }

  /** Writes a slot in place during recovery; `syncDataFile` makes it durable. */
  async restoreSlot(slot: number, data: Buffer): Promise<void> {
    try {
      await writeAt(this.dataFd, data, 0, data.length, slot * this.blockSizeBytes);
    } catch (error) {
      throw ioFailure(`layer ${this.id}: restoring slot ${slot}`, error);
    }
  }

  async syncDataFile(): Promise<void> {
    try {
      await syncData(this.dataFd);
    } catch (error) {
      throw this.fail(error);
    }
  }

  /** Makes everything durable and marks the journal closed; the layer is read-only after. */
  async freeze(): Promise<void> {
    await this.flush();
    await this.compactIfHoldingData();
    await this.markClosed();
    this.frozen = true;
    this.allocator = null;
  }

  /**
   * Applies a write of whole blocks to the map at once and starts the data writes; the promise
   * settles when the data is in the file. Callers keep overlapping requests apart (io-lane.ts).
   */
  stageWrite(startBlock: number, data: Buffer): Promise<unknown> {
    const allocator = this.writableAllocator();
    const blockSize = this.blockSizeBytes;
    const count = data.length / blockSize;
    if (this.checksumScratch.length < count) {
      this.checksumScratch = new Uint32Array(count);
      this.kindScratch = new Uint8Array(count);
    }
    const checksums = this.checksumScratch;
    const kinds = this.kindScratch; // 0: needs a new slot, 1: overwrite in place, 2: zero
    let needed = 0;
    for (let index = 0; index < count; index++) {
      const block = data.subarray(index * blockSize, (index + 1) * blockSize);
      const checksum = zlib.crc32(block);
      checksums[index] = checksum;
      const fresh = this.dirty.has(startBlock + index);
      if (isZeroBlock(block, checksum)) kinds[index] = 2;
      else if (fresh && isDataEntry(this.map.entry(startBlock + index))) kinds[index] = 1;
      else {
        kinds[index] = 0;
        needed += 1;
      }
    }
    const slots = this.slotScratch;
    // Growing the file for contiguity is allowed while it holds at most twice the live data plus
    // the copies this epoch keeps until its flush; past that, scattered free slots are used.
    const budget = 2 * this.map.dataBlocks + this.dirty.size + needed;
    allocator.take(needed, slots, budget);
    const writes: Promise<unknown>[] = [];
    let runSlot = -1;
    let runStart = 0;
    let runLength = 0;
    let taken = 0;
    for (let index = 0; index < count; index++) {
      const block = startBlock + index;
      const old = this.map.entry(block);
      let entry: number;
      if (kinds[index] === 2) {
        entry = this.zeroEntry;
        if (isDataEntry(old)) this.pendingFree.push(slotOf(old));
      } else {
        if (kinds[index] === 1) entry = old;
        else {
          entry = dataEntry(slots[taken++]!);
          if (isDataEntry(old)) this.pendingFree.push(slotOf(old));
        }
        const slot = slotOf(entry);
        if (runLength > 0 && slot === runSlot + runLength && index === runStart + runLength) {
          runLength += 1;
        } else {
          if (runLength > 0) writes.push(this.writeRun(data, runStart, runSlot, runLength));
          runSlot = slot;
          runStart = index;
          runLength = 1;
        }
      }
      this.map.set(block, entry, checksums[index]!);
      this.dirty.add(block);
    }
    if (runLength > 0) writes.push(this.writeRun(data, runStart, runSlot, runLength));
    this.keepCopies(startBlock, data, kinds);
    const done = writes.length === 1 ? writes[0]! : Promise.all(writes);
    const epochWrites = this.epochWrites;
    const slot = epochWrites.add(done);
    const settled = () => epochWrites.delete(slot, done);
    done.then(settled, settled);
    this.afterChange();
    return done;
  }

  /**
   * Sets `count` blocks to what `entryFor` says ("zero" or "absent"); metadata only. Chunks for
   * which `chunkIsVacant` holds (nothing in any layer) are skipped whole, so discarding a large
   * empty device costs nothing.
   */
  stageUnmap(
    startBlock: number,
    count: number,
    entryFor: (block: number) => number,
    chunkIsVacant: (block: number) => boolean,
  ): void {
    this.writableAllocator();
    const endBlock = startBlock + count;
    for (let block = startBlock; block < endBlock; block++) {
      if (chunkIsVacant(block)) {
        block = BlockMap.nextChunkStart(block) - 1;
        continue;
      }
      const old = this.map.entry(block);
      const entry = entryFor(block);
      if (old === entry) continue;
      if (isDataEntry(old)) this.pendingFree.push(slotOf(old));
      this.map.set(block, entry, 0);
      this.dirty.add(block);
      this.copies?.delete(block);
    }
    this.afterChange();
  }

  /** Reads `count` slots into `target`; bytes past the end of the file read as zeroes. */
  async readSlots(slot: number, count: number, target: Buffer, targetOffset: number) {
    const length = count * this.blockSizeBytes;
    let read: number;
    try {
      read = await readAt(this.dataFd, target, targetOffset, length, slot * this.blockSizeBytes);
    } catch (error) {
      throw ioFailure(`layer ${this.id}: reading slot ${slot}`, error);
    }
    if (read < length) target.fill(0, targetOffset + read, targetOffset + length);
  }

  /** Rewrites a damaged block in place with data whose checksum is the recorded one. */
  async repairBlock(block: number, data: Buffer): Promise<void> {
    const entry = this.map.entry(block);
    if (!isDataEntry(entry) || zlib.crc32(data) !== this.map.checksum(block)) {
      throw new BlockDeviceError('corrupt', `layer ${this.id} block ${block}: repair data differs`);
    }
    try {
      await writeAt(this.dataFd, data, 0, data.length, slotOf(entry) * this.blockSizeBytes);
      await syncData(this.dataFd);
    } catch (error) {
      throw ioFailure(`layer ${this.id}: repairing block ${block}`, error);
    }
  }

  /** Group commit: callers that arrive while a flush runs share the next one. */
  flush(): Promise<void> {
    if (this.flushQueued !== null) return this.flushQueued;
    if (this.flushRunning !== null) {
      const next = () => {
        this.flushQueued = null;
        return this.startFlush();
      };
      this.flushQueued = this.flushRunning.then(next, next);
      return this.flushQueued;
    }
    return this.startFlush();
  }

  async close(): Promise<void> {
    if (!this.frozen && this.failure === null) {
      await this.flush();
      await this.compactIfHoldingData();
      await this.markClosed();
    }
    await Promise.allSettled(this.epochWrites);
    await this.journal.close();
    await closeFile(this.dataFd);
  }

  private startFlush(): Promise<void> {
    const running = this.runFlush().finally(() => {
      if (this.flushRunning === running) this.flushRunning = null;
    });
    this.flushRunning = running;
    return running;
  }

  private async runFlush(): Promise<void> {
    if (this.failure !== null) throw this.failure;
    if (this.dirty.size === 0 && this.epochWrites.size === 0) return;
    const sealed = this.seal();
    try {
      await Promise.all(sealed.writes);
      if (sealed.form === 'checkpoint') {
        await syncData(this.dataFd);
        await this.journal.rewrite(sealed.records, sealed.nextSequence);
        this.checkpointBytes = this.journal.sizeBytes;
        this.journalHoldsData = false;
      } else {
        await this.journal.append(sealed.records[0]!);
        if (sealed.form === 'data-batch') this.journalHoldsData = true;
        // A data batch carries its data: the journal alone makes it durable. A plain batch syncs
        // both at once: on a SIGKILL the record is already behind its data in the page cache;
        // after a power cut layer-open.ts checks the last batch against its data.
        const syncDataFile = sealed.form === 'batch' && sealed.hasData;
        await Promise.all([syncDataFile ? syncData(this.dataFd) : null, this.journal.sync()]);
      }
    } catch (error) {
      throw this.fail(error);
    }
    this.cleanlyClosed = false;
    this.generation = sealed.generation;
    this.allocator?.release(sealed.frees);
  }

  private seal(): SealedEpoch & { writes: Promise<unknown>[]; frees: number[]; hasData: boolean } {
    const sealed = sealEpoch(this.map, this.dirty, {
      blockSizeBytes: this.blockSizeBytes,
      generation: this.generation + 1,
      sequence: this.journal.sequence,
      journalBytes: this.journal.sizeBytes,
      // A map so large that its checkpoint alone passes the limit is rewritten only once the
      // journal has doubled, so that flushes do not each rewrite the whole map.
      journalBytesMax: Math.max(this.options.journalBytesMax, 2 * this.checkpointBytes),
      copies: this.copies,
    });
    const result = {
      ...sealed,
      writes: [...this.epochWrites],
      frees: this.pendingFree,
      hasData: this.epochHasData,
    };
    this.dirty.clear();
    this.epochWrites = new SlotSet();
    this.pendingFree = [];
    this.epochHasData = false;
    this.copies = new Map();
    return result;
  }

  /**
   * On close or freeze, rewrites a journal that holds copies of data as a checkpoint, so that a
   * closed layer takes the space of its data once. Nothing is dirty here (just flushed).
   */
  private async compactIfHoldingData(): Promise<void> {
    if (!this.journalHoldsData) return;
    const sealed = checkpoint(this.map, {
      blockSizeBytes: this.blockSizeBytes,
      generation: this.generation,
      sequence: this.journal.sequence,
    });
    try {
      await syncData(this.dataFd);
      await this.journal.rewrite(sealed.records, sealed.nextSequence);
    } catch (error) {
      throw this.fail(error);
    }
    this.checkpointBytes = this.journal.sizeBytes;
    this.journalHoldsData = false;
    this.cleanlyClosed = false;
  }

  private async markClosed(): Promise<void> {
    if (this.cleanlyClosed) return;
    const record = closeRecord(this.journal.sequence, this.generation);
    try {
      // A close record lets recovery forget the data copies in the journal: sync the data first.
      await syncData(this.dataFd);
      await this.journal.append(record);
      await this.journal.sync();
    } catch (error) {
      throw this.fail(error);
    }
    this.cleanlyClosed = true;
  }

  private writeRun(data: Buffer, index: number, slot: number, count: number): Promise<unknown> {
    this.epochHasData = true;
    const size = this.blockSizeBytes;
    return writeAt(this.dataFd, data, index * size, count * size, slot * size).catch(
      (error: unknown) => {
        throw this.fail(error);
      },
    );
  }

  /** An I/O failure stops the layer: nothing after it may be acknowledged as durable. */
  private fail(error: unknown): BlockDeviceError {
    this.failure ??= ioFailure(`layer ${this.id}`, error);
    return this.failure;
  }

  private writableAllocator(): SlotAllocator {
    if (this.failure !== null) throw this.failure;
    if (this.frozen || this.allocator === null) {
      throw new BlockDeviceError('read-only', `layer ${this.id} is frozen`);
    }
    return this.allocator;
  }

  /** Keeps copies of a write's data blocks while the epoch is small enough for a data batch. */
  private keepCopies(startBlock: number, data: Buffer, kinds: Uint8Array): void {
    if (this.copies === null) return;
    if (this.dirty.size > journaledEpochBlocksMax) {
      this.copies = null;
      return;
    }
    const size = this.blockSizeBytes;
    const count = data.length / size;
    for (let index = 0; index < count; index++) {
      const block = startBlock + index;
      if (kinds[index] === 2) {
        this.copies.delete(block);
        continue;
      }
      const existing = this.copies.get(block);
      const from = index * size;
      if (existing !== undefined) data.copy(existing, 0, from, from + size);
      else this.copies.set(block, Buffer.from(data.subarray(from, from + size)));
    }
  }

  private afterChange(): void {
    this.cleanlyClosed = false;
    if (this.dirty.size >= this.options.epochBlocksMax && this.flushQueued === null) {
      // Bounds the memory of one epoch; a failure is kept in `failure` and reported to the next
      // caller, so nothing is lost by not awaiting here.
      this.flush().catch(() => undefined);
    }
  }
}
