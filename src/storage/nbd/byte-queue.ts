// A queue of received chunks for the handshake phase, where messages are small and rare: bytes are
// taken in exact amounts, and a copy is made only when a message spans chunks. The transmission
// phase has its own in-place parser (transmission.ts) because there every copy counts.

export class ByteQueue {
  private chunks: Buffer[] = [];
  private head = 0;
  private total = 0;

  get length(): number {
    return this.total;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.total += chunk.length;
  }

  /** Removes and returns exactly `count` bytes; the caller checks `length` first. */
  take(count: number): Buffer {
    if (count > this.total) throw new RangeError(`take(${count}) with ${this.total} bytes queued`);
    const first = this.chunks[0];
    if (first !== undefined && first.length - this.head >= count) {
      const bytes = first.subarray(this.head, this.head + count);
      this.advance(count);
      return bytes;
    }
    const bytes = Buffer.allocUnsafe(count);
    let filled = 0;
    while (filled < count) {
      const chunk = this.chunks[0]!;
      const n = Math.min(chunk.length - this.head, count - filled);
      chunk.copy(bytes, filled, this.head, this.head + n);
      filled += n;
      this.advance(n);
    }
    return bytes;
  }

  /** Drops up to `count` bytes without copying them; returns how many were dropped. */
  skip(count: number): number {
    const n = Math.min(count, this.total);
    let left = n;
    while (left > 0) {
      const step = Math.min(this.chunks[0]!.length - this.head, left);
      this.advance(step);
      left -= step;
    }
    return n;
  }

  /** Everything still queued, as one buffer (for handing over to the transmission parser). */
  takeAll(): Buffer {
    return this.take(this.total);
  }

  private advance(count: number): void {
    this.head += count;
    this.total -= count;
    if (this.head === this.chunks[0]!.length) {
      this.chunks.shift();
      this.head = 0;
    }
  }
}
