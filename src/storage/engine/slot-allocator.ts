// Hands out slots of a layer's data file. A write never overwrites a slot that a durable journal
// record points to (redirect-on-write, see layer.ts), so the allocator must know which slots are
// free: those no entry refers to, once the journal record that stopped referring to them is
// durable. Freed slots are reused before the file grows, so a volume that is overwritten again and
// again settles at about its written size plus what changes between two flushes.
import { isDataEntry, slotCountMax, slotOf, type BlockMap } from './block-map.js';
import { assert } from '../../core/errors.js';

export class SlotAllocator {
  /** Slots the data file spans; the next slot past the end of the file is `slotCount`. */
  slotCount: number;
  /**
   * Free slots, used as a stack. Slots freed by a sequential overwrite are pushed in ascending
   * order, so taking n of them and sorting gives back a contiguous run: one write, not n.
   */
  private readonly free: number[];

  constructor(slotCount: number, free: number[]) {
    this.slotCount = slotCount;
    this.free = free;
  }

  /** Builds the free list at open: every slot of the file that no entry refers to. */
  static fromReferenced(slotCount: number, isReferenced: Uint8Array): SlotAllocator {
    const free: number[] = [];
    for (let slot = slotCount - 1; slot >= 0; slot--) if (isReferenced[slot] === 0) free.push(slot);
    return new SlotAllocator(slotCount, free);
  }

  get freeCount(): number {
    return this.free.length;
  }

  /**
   * Fills `out` with `count` slots in ascending order. A multi-block write wants one contiguous
   * run (one write call now, one read call later): it takes the top of the free stack if that is
   * a run, else grows the file, unless the file is already past `slotBudget`, in which case it
   * takes scattered free slots rather than grow further.
   */
  take(count: number, out: number[], slotBudget: number): void {
    out.length = 0;
    if (count > 1 && !this.topIsRun(count) && this.slotCount + count <= slotBudget) {
      this.grow(count, out);
      return;
    }
    while (out.length < count && this.free.length > 0) out.push(this.free.pop()!);
    this.grow(count - out.length, out);
    if (count > 1) out.sort((a, b) => a - b);
  }

  private grow(count: number, out: number[]): void {
    assert(this.slotCount + count <= slotCountMax, 'data file slot count exceeds the 32-bit limit');
    for (let index = 0; index < count; index++) out.push(this.slotCount + index);
    this.slotCount += count;
  }

  /** Whether the top `count` free slots are `count` consecutive numbers. */
  private topIsRun(count: number): boolean {
    if (this.free.length < count) return false;
    let low = Infinity;
    let high = -Infinity;
    for (let index = this.free.length - count; index < this.free.length; index++) {
      const slot = this.free[index]!;
      if (slot < low) low = slot;
      if (slot > high) high = slot;
    }
    // Free slots are distinct, so count of them spanning exactly count numbers are a run.
    return high - low === count - 1;
  }

  /** Returns slots once no durable record points to them. */
  release(slots: readonly number[]): void {
    for (const slot of slots) this.free.push(slot);
  }
}

/** The allocator of a layer whose map is `map` and whose data file is `dataFileBytes` long. */
export function allocatorForMap(
  map: BlockMap,
  dataFileBytes: number,
  blockSizeBytes: number,
): SlotAllocator {
  let slotCount = Math.ceil(dataFileBytes / blockSizeBytes);
  // A record may point past the end of the file if the file's new length was lost with power;
  // those slots stay taken (reads of them fail their checksum and are reported).
  map.forEachEntry((_block, entry) => {
    if (isDataEntry(entry)) slotCount = Math.max(slotCount, slotOf(entry) + 1);
  });
  const referenced = new Uint8Array(slotCount);
  map.forEachEntry((_block, entry) => {
    if (isDataEntry(entry)) referenced[slotOf(entry)] = 1;
  });
  return SlotAllocator.fromReferenced(slotCount, referenced);
}
