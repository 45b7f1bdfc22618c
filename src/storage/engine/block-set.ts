// The blocks a layer changed since its last flush (layer.ts): every write asks whether each of its
// blocks is already in the set (an overwrite in place) and adds the new ones, so this is on the
// path of every write. A bitmap answers `has` with one load from memory a few kilobytes per GiB
// of volume; a list keeps the members in the order they were first added, for the flush to
// iterate and for `clear` to undo. It replaces a JavaScript Set of numbers, which grows to hold up
// to a whole volume's blocks between flushes: each lookup hashed into a table of megabytes (1.5 to
// 5% of a volume server's CPU at 4 KiB random writes, in `perf`), and each growth rebuilt it.

/** Bytes the bitmap starts with (32,768 blocks); it doubles as higher blocks are added. */
const initialBitmapBytes = 4096;

export class BlockSet implements Iterable<number> {
  private bits = new Uint8Array(initialBitmapBytes);
  private readonly members: number[] = [];

  get size(): number {
    return this.members.length;
  }

  has(block: number): boolean {
    const byte = block >>> 3;
    return byte < this.bits.length && (this.bits[byte]! & (1 << (block & 7))) !== 0;
  }

  /** Adds a block number (a whole number below 2^32); adding a member again changes nothing. */
  add(block: number): void {
    const byte = block >>> 3;
    if (byte >= this.bits.length) this.grow(byte);
    const bit = 1 << (block & 7);
    if ((this.bits[byte]! & bit) !== 0) return;
    this.bits[byte] = this.bits[byte]! | bit;
    this.members.push(block);
  }

  /** Empties the set, keeping its memory for the next epoch. */
  clear(): void {
    // Zeroing member by member costs one store each; past an eighth of the bitmap, one fill is less.
    if (this.members.length > this.bits.length / 8) this.bits.fill(0);
    else for (const block of this.members) this.bits[block >>> 3] = 0;
    this.members.length = 0;
  }

  /** The members in the order they were first added. */
  [Symbol.iterator](): IterableIterator<number> {
    return this.members[Symbol.iterator]();
  }

  private grow(byte: number): void {
    let length = this.bits.length;
    while (length <= byte) length *= 2;
    const bits = new Uint8Array(length);
    bits.set(this.bits);
    this.bits = bits;
  }
}
