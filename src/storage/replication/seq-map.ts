// The primary's mutations in flight by sequence number (those waiting for acks, and each peer's
// unacked ones). A JavaScript Map that every write enters and leaves replaces its hash table
// every few dozen writes, and the table it leaves behind is old-generation garbage that still
// points at the writes that were in flight then: until the next mark-compact, every scavenge keeps
// those writes alive, with their promises and buffers, and promotes them (see SlotSet for the
// sets). Here a sequence number has one slot, its low bits, in arrays that grow only when two
// numbers held at once share a slot, that is when the oldest and the newest are a capacity apart.

export const seqMapCapacityMin = 64;

export class SeqMap<V> {
  private keys: (bigint | undefined)[];
  private values_: (V | undefined)[];
  private count = 0;

  constructor() {
    this.keys = new Array<bigint | undefined>(seqMapCapacityMin).fill(undefined);
    this.values_ = new Array<V | undefined>(seqMapCapacityMin).fill(undefined);
  }

  get size(): number {
    return this.count;
  }

  /** Slots: a power of two, at least seqMapCapacityMin. */
  get capacity(): number {
    return this.keys.length;
  }

  get(seq: bigint): V | undefined {
    const slot = this.slotOf(seq);
    return this.keys[slot] === seq ? this.values_[slot] : undefined;
  }

  has(seq: bigint): boolean {
    return this.keys[this.slotOf(seq)] === seq;
  }

  set(seq: bigint, value: V): void {
    if (seq < 0n || seq > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new RangeError(`SeqMap: sequence number out of range: ${seq}`);
    }
    if (value === undefined) throw new TypeError('SeqMap: undefined cannot be a value');
    for (;;) {
      const slot = this.slotOf(seq);
      const held = this.keys[slot];
      if (held === undefined || held === seq) {
        if (held === undefined) this.count++;
        this.keys[slot] = seq;
        this.values_[slot] = value;
        return;
      }
      this.grow();
    }
  }

  delete(seq: bigint): boolean {
    const slot = this.slotOf(seq);
    if (this.keys[slot] !== seq) return false;
    this.keys[slot] = undefined;
    this.values_[slot] = undefined;
    this.count--;
    return true;
  }

  /** Empties it and gives back the room it grew to. */
  clear(): void {
    this.keys = new Array<bigint | undefined>(seqMapCapacityMin).fill(undefined);
    this.values_ = new Array<V | undefined>(seqMapCapacityMin).fill(undefined);
    this.count = 0;
  }

  /** The values, lowest sequence number first (a new array). */
  values(): V[] {
    return this.entries().map(([, value]) => value);
  }

  /** The value with the lowest sequence number. */
  first(): V | undefined {
    let lowest: bigint | undefined;
    let value: V | undefined;
    for (let slot = 0; slot < this.keys.length; slot++) {
      const seq = this.keys[slot];
      if (seq !== undefined && (lowest === undefined || seq < lowest)) {
        lowest = seq;
        value = this.values_[slot];
      }
    }
    return value;
  }

  private entries(): [bigint, V][] {
    const entries: [bigint, V][] = [];
    for (let slot = 0; slot < this.keys.length; slot++) {
      const seq = this.keys[slot];
      if (seq !== undefined) entries.push([seq, this.values_[slot]!]);
    }
    return entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }

  private slotOf(seq: bigint): number {
    // Exact below 2^53 (set() refuses more); & keeps the low 32 bits, then the capacity's.
    return Number(seq) & (this.keys.length - 1);
  }

  /** Doubles the room until every number held has a slot of its own. */
  private grow(): void {
    const entries = this.entries();
    for (let capacity = this.keys.length * 2; ; capacity *= 2) {
      const keys = new Array<bigint | undefined>(capacity).fill(undefined);
      const values = new Array<V | undefined>(capacity).fill(undefined);
      let fits = true;
      for (const [seq, value] of entries) {
        const slot = Number(seq) & (capacity - 1);
        if (keys[slot] !== undefined) {
          fits = false;
          break;
        }
        keys[slot] = seq;
        values[slot] = value;
      }
      if (fits) {
        this.keys = keys;
        this.values_ = values;
        return;
      }
    }
  }
}
