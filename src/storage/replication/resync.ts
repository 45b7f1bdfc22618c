// Resync passes (docs/replication.md, "Resync"), run by the primary against one connected replica
// while live mutations stream to it as well:
//
// - delta: copy the regions the replica's dirty bitmap marks (each run cleared before it is read,
//   so a mutation that marks it again makes the copy visit it again), then a verify pass;
// - full and verify: walk the volume in chunks, compare the replica's block checksums
//   (REPL_READ_CHECKSUMS) with the local ones, and copy every block that differs.
//
// Every step holds the primary's range lock over its chunk from the local read to the send, so a
// copy takes its place in the sequence stream exactly where the data it read was current, and the
// replica answers a checksum question only after every earlier mutation of those blocks. The rate
// is bounded by resyncBytesPerSecondMax on the context's clock. A pass ends early (false) when
// the link it began on closes or the primary stops; the next connection starts over.
import type { DirtyBitmap } from './dirty-bitmap.js';
import type { RangeLock } from './range-lock.js';
import type { PrimaryPeer } from './primary-peer.js';
import type { ReplicableDevice, ReplicationContext } from './types.js';
import { replicationChecksumBlocksMax } from './wire.js';

export type ResyncMode = 'delta' | 'full' | 'verify';

export interface ResyncProgress {
  readonly mode: ResyncMode;
  bytesCopied: number;
  bytesToCopy: number;
  blocksCompared: number;
}

export interface ResyncHost {
  readonly context: ReplicationContext;
  readonly device: ReplicableDevice;
  readonly lock: RangeLock;
  readonly serving: boolean;
  /** Sends a copy to this replica alone, in the sequence stream (`data` undefined: zeroes). */
  sendCopy(peer: PrimaryPeer, offsetBytes: number, lengthBytes: number, data?: Buffer): void;
  bitmapChanged(node: string): void;
  sleep(ms: number): Promise<void>;
  progress(peer: PrimaryPeer, progress: ResyncProgress, done: boolean): void;
}

/** Runs one pass; true when it completed on the connection it began on. */
export async function runResync(
  host: ResyncHost,
  peer: PrimaryPeer,
  options: { mode: ResyncMode; bitmap: DirtyBitmap | undefined },
): Promise<boolean> {
  const pass = new Pass(host, peer, options.mode);
  try {
    if (options.mode === 'delta' && options.bitmap !== undefined) {
      if (!(await pass.copyDirty(options.bitmap))) return false;
    }
    if (!(await pass.verify())) return false;
    host.progress(peer, pass.progress, true);
    return true;
  } catch (error) {
    // The link closed under a checksum question, or the local device failed: the pass is over.
    host.context.logger.log('info', 'resync pass interrupted', {
      node: peer.node,
      error: String(error),
    });
    return false;
  }
}

class Pass {
  readonly progress: ResyncProgress;
  private readonly connection: number;
  private readonly startedAtMs: number;

  constructor(
    private readonly host: ResyncHost,
    private readonly peer: PrimaryPeer,
    mode: ResyncMode,
  ) {
    this.progress = { mode, bytesCopied: 0, bytesToCopy: 0, blocksCompared: 0 };
    this.connection = peer.connection;
    this.startedAtMs = host.context.clock.now();
  }

  private get live(): boolean {
    return this.host.serving && this.peer.ready && this.peer.connection === this.connection;
  }

  /** Copies what the bitmap marks, a chunk at a time (a whole number of regions). */
  async copyDirty(bitmap: DirtyBitmap): Promise<boolean> {
    const region = bitmap.regionSizeBytes;
    const stepBytes = Math.max(
      region,
      Math.floor(this.host.context.limits.resyncChunkBytes / region) * region,
    );
    this.progress.bytesToCopy = Math.min(bitmap.countDirty() * region, bitmap.volumeSizeBytes);
    for (const run of bitmap.dirtyRuns()) {
      for (let at = run.offsetBytes; at < run.offsetBytes + run.lengthBytes; at += stepBytes) {
        if (!this.live) return false;
        const length = Math.min(stepBytes, run.offsetBytes + run.lengthBytes - at);
        const release = await this.host.lock.acquire(at, length);
        try {
          if (!this.live) return false;
          const data = await this.host.device.read(at, length);
          await this.peer.windowOpen();
          if (!this.live) return false;
          // Cleared only as the copy goes out: the lock keeps writes to it away meanwhile, and
          // if the link drops, the copy's missing ack marks it again.
          bitmap.clearRange(at, length);
          this.host.bitmapChanged(this.peer.node);
          this.host.sendCopy(this.peer, at, length, data);
        } finally {
          release();
        }
        this.progress.bytesCopied += length;
        this.host.progress(this.peer, this.progress, false);
        await this.throttle();
      }
    }
    return true;
  }

  /** Compares every block with the replica's and copies the ones that differ. */
  async verify(): Promise<boolean> {
    const device = this.host.device;
    const blockSize = device.blockSizeBytes;
    const chunkBlocks = Math.min(
      replicationChecksumBlocksMax,
      Math.max(1, Math.floor(this.host.context.limits.resyncChunkBytes / blockSize)),
    );
    const blocks = device.sizeBytes / blockSize;
    for (let start = 0; start < blocks; start += chunkBlocks) {
      if (!this.live) return false;
      const count = Math.min(chunkBlocks, blocks - start);
      const release = await this.host.lock.acquire(start * blockSize, count * blockSize);
      try {
        if (!this.live) return false;
        await this.compareChunk(start, count);
      } finally {
        release();
      }
      this.progress.blocksCompared += count;
      this.host.progress(this.peer, this.progress, false);
      await this.throttle();
    }
    return true;
  }

  private async compareChunk(startBlock: number, blockCount: number): Promise<void> {
    const blockSize = this.host.device.blockSizeBytes;
    const local = await this.host.device.readChecksums(startBlock, blockCount);
    const remote = await this.peer.readChecksums(startBlock, blockCount);
    // CRCs alone decide: a hole reads as zeroes and has their CRC on both sides.
    let index = 0;
    while (index < blockCount) {
      if (local.checksums[index] === remote.checksums[index]) {
        index++;
        continue;
      }
      const first = index;
      while (index < blockCount && local.checksums[index] !== remote.checksums[index]) index++;
      const offset = (startBlock + first) * blockSize;
      const length = (index - first) * blockSize;
      this.progress.bytesToCopy += length;
      const allHoles = local.allocated.subarray(first, index).every((flag) => flag === 0);
      const data = allHoles ? undefined : await this.host.device.read(offset, length);
      await this.peer.windowOpen();
      if (!this.live) throw new Error(`link to ${this.peer.node} changed during the pass`);
      this.host.sendCopy(this.peer, offset, length, data);
      this.progress.bytesCopied += length;
    }
  }

  /** Waits until the bytes copied so far fit resyncBytesPerSecondMax since the pass began. */
  private async throttle(): Promise<void> {
    const { clock, limits } = this.host.context;
    const dueMs =
      this.startedAtMs + (this.progress.bytesCopied * 1000) / limits.resyncBytesPerSecondMax;
    // Under a millisecond behind is noise, not a reason to arm a timer.
    const waitMs = Math.floor(dueMs - clock.now());
    if (waitMs > 0) await this.host.sleep(waitMs);
  }
}
