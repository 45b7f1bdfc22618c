// A set for the short-lived things a long-lived owner tracks (requests in flight, pending waits).
// A JavaScript Set replaces its hash table whenever it grows, shrinks below a quarter of its room,
// or fills with deleted entries, and V8 allocates the new table in the old generation when the Set
// itself is old. A Set that holds 32 requests at a time therefore leaves a table in the old
// generation every few dozen adds, which only a mark-compact frees: ten such Sets turning over two
// million entries made 64 mark-compacts and not one scavenge (measured in Node 20). Worse, the
// discarded table still points at what it held, and a scavenge keeps alive everything an old
// object points at, dead or not: the requests in flight when the table was replaced survive and
// are promoted, with everything they hold. A SlotSet keeps its items in an array that grows only to
// the most it has held at once and reuses freed slots, so once warm it allocates nothing.
// Iteration order is not insertion order. (seq-map.ts does the same for lookups by sequence number.)

export class SlotSet<T> implements Iterable<T> {
  private readonly items: (T | undefined)[] = [];
  /** Freed slots, used as a stack; only its first `freeCount` entries mean anything. */
  private readonly free: number[] = [];
  private freeCount = 0;
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Adds `item` and returns its slot, which delete() needs. An item may be added twice. */
  add(item: T): number {
    if (item === undefined) throw new TypeError('SlotSet: undefined cannot be an item');
    this.count++;
    if (this.freeCount > 0) {
      const slot = this.free[--this.freeCount]!;
      this.items[slot] = item;
      return slot;
    }
    this.items.push(item);
    return this.items.length - 1;
  }

  /**
   * Removes `item` from the slot add() returned for it. A slot that no longer holds it (deleted
   * already, perhaps reused since) is left alone: false.
   */
  delete(slot: number, item: T): boolean {
    if (this.items[slot] !== item || item === undefined) return false;
    this.items[slot] = undefined;
    this.free[this.freeCount++] = slot;
    this.count--;
    return true;
  }

  clear(): void {
    this.items.length = 0;
    this.freeCount = 0;
    this.count = 0;
  }

  *[Symbol.iterator](): Iterator<T> {
    const items = this.items;
    for (let slot = 0; slot < items.length; slot++) {
      const item = items[slot];
      if (item !== undefined) yield item;
    }
  }
}
