// Helpers for the replication unit tests: an in-memory link pair (in order, asynchronous, through
// the real codec by default, with hooks to hold or drop messages and to inject raw bytes), a
// ReplicationStateStore in memory whose bitmaps are kept serialized (so a test sees what was
// persisted, not the primary's live object), and a MemoryBlockDevice with readChecksums.
import zlib from 'node:zlib';
import { BlockDeviceError, type WriteOptions, type WriteZeroesOptions } from '../block-device.js';
import type { BlockChecksums } from '../engine/chain-status.js';
import { MemoryBlockDevice } from '../nbd/memory-device.js';
import { DirtyBitmap } from './dirty-bitmap.js';
import type { ReplicaMeta } from './replica-meta.js';
import type { ReplicableDevice, ReplicationLink, ReplicationStateStore } from './types.js';
import { encode, type ReplicationMessage } from './wire.js';
import { FrameDecoder } from './wire-decode.js';

type Item = { readonly message: ReplicationMessage } | { readonly bytes: Buffer };

/** One end of linkPair(): a ReplicationLink with test hooks on what it sends. */
export class TestLinkEnd implements ReplicationLink {
  /** Every message this end sent, delivered or not. */
  readonly sent: ReplicationMessage[] = [];
  /** Messages this end sends that match are lost on the way. */
  dropWhere: ((message: ReplicationMessage) => boolean) | undefined;
  peer!: TestLinkEnd;
  private readonly inbox: Item[] = [];
  private handler: ((message: ReplicationMessage) => void) | undefined;
  private closeHandler: ((reason: string) => void) | undefined;
  private closeReason: string | undefined;
  private closeNotified = false;
  private holding = false;
  private scheduled = false;
  private readonly decoder: FrameDecoder | undefined;

  constructor(encoded: boolean) {
    this.decoder = encoded ? new FrameDecoder() : undefined;
  }

  get closed(): boolean {
    return this.closeReason !== undefined;
  }

  /** Why this end closed, once it did. */
  get reason(): string | undefined {
    return this.closeReason;
  }

  send(message: ReplicationMessage): void {
    if (this.closed) return;
    this.sent.push(message);
    if (this.dropWhere?.(message) === true) return;
    // Encoding copies a write's data, as a socket would, so a reused buffer cannot leak through.
    const item: Item =
      this.decoder === undefined ? { message } : { bytes: Buffer.concat(encode(message)) };
    this.peer.receive(item);
  }

  /** Puts bytes on the wire as they are (only for an encoded pair). */
  sendRaw(bytes: Buffer): void {
    if (!this.closed) this.peer.receive({ bytes });
  }

  /** Messages sent to this end wait until release(). */
  hold(): void {
    this.holding = true;
  }

  release(): void {
    this.holding = false;
    this.schedule();
  }

  /** Messages waiting for delivery to this end. */
  get queued(): number {
    return this.inbox.length;
  }

  onMessage(handler: (message: ReplicationMessage) => void): void {
    this.handler = handler;
    this.schedule();
  }

  onClose(handler: (reason: string) => void): void {
    this.closeHandler = handler;
    this.schedule();
  }

  /** Like a TCP close: what this end sent before still arrives, then the other end closes too. */
  close(reason: string): void {
    if (this.closed) return;
    this.closeReason = reason;
    this.inbox.length = 0;
    this.schedule();
    this.peer.remoteClosed(`peer closed: ${reason}`);
  }

  private remoteClosed(reason: string): void {
    if (this.closed) return;
    this.closeReason = reason;
    // Held messages were still "in the network": they are lost with the connection.
    if (this.holding) this.inbox.length = 0;
    this.schedule();
  }

  private receive(item: Item): void {
    if (this.closed) return;
    this.inbox.push(item);
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.deliver();
    });
  }

  private deliver(): void {
    while (!this.holding && this.handler !== undefined && this.inbox.length > 0) {
      const item = this.inbox.shift()!;
      for (const message of this.decode(item)) this.handler(message);
      if (this.closed && this.closeNotified) return;
    }
    const drained = this.inbox.length === 0 || this.holding;
    if (this.closeReason !== undefined && drained && !this.closeNotified && this.closeHandler) {
      this.closeNotified = true;
      this.inbox.length = 0;
      this.closeHandler(this.closeReason);
    }
  }

  private decode(item: Item): ReplicationMessage[] {
    if ('message' in item) return [item.message];
    try {
      return this.decoder!.push(item.bytes);
    } catch (error) {
      // What a transport does with a malformed frame: close that connection with the reason.
      this.close(`malformed frame: ${(error as Error).message}`);
      return [];
    }
  }
}

/** Two connected ends: [the primary's, the replica's]. `encoded` (default) runs the real codec. */
export function linkPair(options: { encoded?: boolean } = {}): [TestLinkEnd, TestLinkEnd] {
  const encoded = options.encoded ?? true;
  const a = new TestLinkEnd(encoded);
  const b = new TestLinkEnd(encoded);
  a.peer = b;
  b.peer = a;
  return [a, b];
}

/** A bitmap as persisted: its header and its dirty runs as [offset, length] byte pairs. */
export interface SavedBitmap {
  readonly regionSizeBytes: number;
  readonly volumeSizeBytes: number;
  readonly startGeneration: string;
  readonly dirty: readonly (readonly [number, number])[];
}

export class MemoryStateStore implements ReplicationStateStore {
  meta: ReplicaMeta | null = null;
  readonly bitmaps = new Map<string, SavedBitmap>();
  readonly saves = { meta: 0, bitmap: 0, deleteBitmap: 0 };
  private gate: Promise<void> | undefined;
  private openGate: (() => void) | undefined;

  /** Saves wait until releaseSaves() from now on (what was saved only counts once they resolve). */
  holdSaves(): void {
    this.gate ??= new Promise((resolve) => (this.openGate = resolve));
  }

  releaseSaves(): void {
    this.openGate?.();
    this.gate = undefined;
  }

  loadMeta(): Promise<ReplicaMeta | null> {
    return Promise.resolve(this.meta === null ? null : structuredClone(this.meta));
  }

  async saveMeta(meta: ReplicaMeta): Promise<void> {
    const copy = structuredClone(meta);
    await this.gate;
    this.meta = copy;
    this.saves.meta++;
  }

  loadBitmap(peer: string): Promise<DirtyBitmap | null> {
    const saved = this.bitmaps.get(peer);
    if (saved === undefined) return Promise.resolve(null);
    const bitmap = DirtyBitmap.create(saved);
    for (const [offset, length] of saved.dirty) bitmap.markRange(offset, length);
    return Promise.resolve(bitmap);
  }

  async saveBitmap(peer: string, bitmap: DirtyBitmap): Promise<void> {
    const saved: SavedBitmap = {
      regionSizeBytes: bitmap.regionSizeBytes,
      volumeSizeBytes: bitmap.volumeSizeBytes,
      startGeneration: bitmap.startGeneration,
      dirty: [...bitmap.dirtyRuns()].map((run) => [run.offsetBytes, run.lengthBytes] as const),
    };
    await this.gate;
    this.bitmaps.set(peer, saved);
    this.saves.bitmap++;
  }

  async deleteBitmap(peer: string): Promise<void> {
    await this.gate;
    this.bitmaps.delete(peer);
    this.saves.deleteBitmap++;
  }
}

/**
 * A sparse memory device that can report block checksums as the engine's Volume does. `damage`
 * models a block rotten on disk: its recorded checksum stays, reading it fails with 'corrupt' (as
 * the engine's read does), until the block is written again.
 */
export class ChecksumMemoryDevice extends MemoryBlockDevice implements ReplicableDevice {
  private readonly damaged = new Set<number>();

  damage(block: number): void {
    this.damaged.add(block);
  }

  override async read(offsetBytes: number, lengthBytes: number): Promise<Buffer> {
    for (const block of this.damaged) {
      const at = block * this.blockSizeBytes;
      if (at < offsetBytes + lengthBytes && at + this.blockSizeBytes > offsetBytes)
        throw new BlockDeviceError('corrupt', `block ${block}: checksum mismatch`);
    }
    return super.read(offsetBytes, lengthBytes);
  }

  override async write(offsetBytes: number, data: Buffer, options?: WriteOptions): Promise<void> {
    await super.write(offsetBytes, data, options);
    this.repairRange(offsetBytes, data.length);
  }

  override async writeZeroes(
    offsetBytes: number,
    lengthBytes: number,
    options?: WriteZeroesOptions,
  ): Promise<void> {
    await super.writeZeroes(offsetBytes, lengthBytes, options);
    this.repairRange(offsetBytes, lengthBytes);
  }

  override async trim(
    offsetBytes: number,
    lengthBytes: number,
    options?: WriteOptions,
  ): Promise<void> {
    await super.trim(offsetBytes, lengthBytes, options);
    this.repairRange(offsetBytes, lengthBytes);
  }

  private repairRange(offsetBytes: number, lengthBytes: number): void {
    for (const block of [...this.damaged]) {
      const at = block * this.blockSizeBytes;
      if (at >= offsetBytes && at + this.blockSizeBytes <= offsetBytes + lengthBytes)
        this.damaged.delete(block);
    }
  }

  async readChecksums(startBlock: number, blockCount: number): Promise<BlockChecksums> {
    const offset = startBlock * this.blockSizeBytes;
    const length = blockCount * this.blockSizeBytes;
    const data = await super.read(offset, length);
    const extents = await this.blockStatus(offset, length);
    const checksums = new Uint32Array(blockCount);
    const allocated = new Uint8Array(blockCount);
    for (let index = 0; index < blockCount; index++) {
      const start = index * this.blockSizeBytes;
      checksums[index] = zlib.crc32(data.subarray(start, start + this.blockSizeBytes));
    }
    let at = 0;
    for (const extent of extents) {
      if (!extent.hole)
        allocated.fill(
          1,
          at / this.blockSizeBytes,
          (at + extent.lengthBytes) / this.blockSizeBytes,
        );
      at += extent.lengthBytes;
    }
    return { checksums, allocated };
  }

  /** CRC-32 of every block, for comparing two copies in a test. */
  async allChecksums(): Promise<number[]> {
    const blocks = this.sizeBytes / this.blockSizeBytes;
    return [...(await this.readChecksums(0, blocks)).checksums];
  }
}
