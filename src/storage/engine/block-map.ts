// The allocation map of one layer, in memory: for every block of the volume's address space, where
// its data is in the layer's data file and the CRC-32 of that data. It is chunked so that memory
// follows what was written, not the size of the volume: a chunk of 4096 blocks (16 MiB of address
// space at 4 KiB blocks) costs 32 KiB and exists only once one of its blocks has an entry.
//
// An entry is a 32-bit number:
//   0        absent: this layer holds nothing here, reads fall through to the layer below
//   1        zero:   the block reads as zeroes (a trim or write-zeroes that hides lower layers)
//   n >= 2   data:   the block is in slot n - 2 of the data file, at byte (n - 2) * blockSize
export const entryAbsent = 0;
export const entryZero = 1;
const slotBase = 2;
/** Slots are 32-bit in the journal; two values are taken by "absent" and "zero". */
export const slotCountMax = 2 ** 32 - slotBase;

const chunkShift = 12;
const chunkBlocks = 1 << chunkShift;
const chunkMask = chunkBlocks - 1;

export function dataEntry(slot: number): number {
  return slot + slotBase;
}

export function isDataEntry(entry: number): boolean {
  return entry >= slotBase;
}

export function slotOf(entry: number): number {
  return entry - slotBase;
}

export class BlockMap {
  private readonly entryChunks: (Uint32Array | undefined)[] = [];
  private readonly checksumChunks: (Uint32Array | undefined)[] = [];
  /** Blocks whose entry is a data slot: the layer's share of the volume's allocated space. */
  dataBlocks = 0;

  entry(block: number): number {
    const chunk = this.entryChunks[block >>> chunkShift];
    return chunk === undefined ? entryAbsent : chunk[block & chunkMask]!;
  }

  checksum(block: number): number {
    const chunk = this.checksumChunks[block >>> chunkShift];
    return chunk === undefined ? 0 : chunk[block & chunkMask]!;
  }

  set(block: number, entry: number, checksum: number): void {
    const index = block >>> chunkShift;
    let entries = this.entryChunks[index];
    let checksums = this.checksumChunks[index];
    if (entries === undefined || checksums === undefined) {
      if (entry === entryAbsent) return;
      entries = new Uint32Array(chunkBlocks);
      checksums = new Uint32Array(chunkBlocks);
      this.entryChunks[index] = entries;
      this.checksumChunks[index] = checksums;
    }
    const offset = block & chunkMask;
    if (isDataEntry(entries[offset]!)) this.dataBlocks -= 1;
    if (isDataEntry(entry)) this.dataBlocks += 1;
    entries[offset] = entry;
    checksums[offset] = entry === entryAbsent ? 0 : checksum;
  }

  /** Whether no block in [start, start + chunk size) has an entry; lets scans skip empty space. */
  chunkIsEmpty(block: number): boolean {
    return this.entryChunks[block >>> chunkShift] === undefined;
  }

  /** The first block of the chunk after the one holding `block`. */
  static nextChunkStart(block: number): number {
    return ((block >>> chunkShift) + 1) * chunkBlocks;
  }

  /** Calls `visit` for every block with an entry other than absent, in block order. */
  forEachEntry(visit: (block: number, entry: number, checksum: number) => void): void {
    for (let index = 0; index < this.entryChunks.length; index++) {
      const entries = this.entryChunks[index];
      const checksums = this.checksumChunks[index];
      if (entries === undefined || checksums === undefined) continue;
      const base = index * chunkBlocks;
      for (let offset = 0; offset < chunkBlocks; offset++) {
        const entry = entries[offset]!;
        if (entry !== entryAbsent) visit(base + offset, entry, checksums[offset]!);
      }
    }
  }

  /** Number of blocks with an entry other than absent (one pass; used for checkpoints). */
  countEntries(): number {
    let count = 0;
    this.forEachEntry(() => {
      count += 1;
    });
    return count;
  }
}
