// The client of a replicated volume in the simulator: the workload's instance writes numbered
// values into a few blocks through the primary of the current epoch, one operation at a time,
// flushing every few writes, and records what was acknowledged. Whenever it first reaches a
// primary at a new epoch (after a failover), and once at the end, it reads every block back and
// checks the rule of ARCHITECTURE.md section 3: no acknowledged write is lost. A value flushed and
// acknowledged must always be there; a value acknowledged but not yet flushed must be there unless
// the node now serving it lost power after the write was sent (a double fault: its copy had the
// write only in its cache, and the old primary, which also had it, is gone or fenced; NBD promises
// only flushed writes across a crash). Such a loss, once read back, is what the block holds from
// then on: a later flush does not make the lost value durable (SEED=488 and SEED=855
// --replicated 1 once failed on that: a flush after the loss counted the lost value as flushed).
import type { PrimaryHandle } from '../storage/replication/types.js';

/** Blocks the writer cycles through; a few, so that values overwrite each other often. */
export const simWriterBlocks = 16;
/** A flush after this many writes. */
export const simWriterWritesPerFlush = 3;

interface Acked {
  readonly value: number;
  /** When the write was sent: a copy that lost power after that may have lost it unflushed. */
  readonly issuedAt: number;
}

export interface SimWriterWorld {
  now(): number;
  note(line: string): void;
  violate(message: string): void;
  /** When the node last lost power (0 if never). */
  lastCrashAt(node: string): number;
}

/** Where the writer can write now: the primary for the workload's current epoch, if it runs. */
export interface SimWriterTarget {
  node: string;
  epoch: number;
  primary: PrimaryHandle;
}

export class SimWriter {
  private busy = false;
  private counter = 0;
  private writesSinceFlush = 0;
  private readonly acked = new Map<number, Acked>();
  private readonly durable = new Map<number, number>();
  /** Values ever sent to each block (any of them may be read back, the newest acked at least). */
  private readonly attempted = new Map<number, Set<number>>();
  private readonly checkedEpochs = new Set<number>();
  /** Per epoch, the node whose primary acknowledged writes at it. */
  private readonly ackers = new Map<number, string>();
  private highestAckedEpoch = 0;
  checks = 0;

  constructor(
    private readonly world: SimWriterWorld,
    readonly workload: string,
    readonly volume: string,
  ) {}

  /** One step: nothing while an operation is in flight or no primary serves the workload. */
  step(target: SimWriterTarget | undefined): void {
    if (this.busy || target === undefined || target.primary.fenced) return;
    this.busy = true;
    void this.operate(target).finally(() => (this.busy = false));
  }

  /** The final read-back, through the primary that serves once the faults have stopped. */
  async finalCheck(target: SimWriterTarget | undefined): Promise<string | undefined> {
    if (target === undefined) return `no primary serves ${this.volume} to check it`;
    await this.readBack(target, 'at the end');
    return undefined;
  }

  private async operate(target: SimWriterTarget): Promise<void> {
    try {
      if (!this.checkedEpochs.has(target.epoch)) {
        await this.readBack(target, `at epoch ${target.epoch}`);
        this.checkedEpochs.add(target.epoch);
        return;
      }
      if (this.writesSinceFlush >= simWriterWritesPerFlush) await this.flush(target);
      else await this.write(target);
    } catch {
      // An I/O error (fenced, closed, crashed) acknowledges nothing: nothing to record.
    }
  }

  private async write(target: SimWriterTarget): Promise<void> {
    const value = ++this.counter;
    const issuedAt = this.world.now();
    const block = value % simWriterBlocks;
    const sent = this.attempted.get(block) ?? new Set<number>();
    sent.add(value);
    this.attempted.set(block, sent);
    await target.primary.write(
      block * target.primary.blockSizeBytes,
      encode(value, block, target.primary.blockSizeBytes),
    );
    this.acknowledgedBy(target);
    this.acked.set(block, { value, issuedAt });
    this.writesSinceFlush++;
  }

  private async flush(target: SimWriterTarget): Promise<void> {
    const covered = new Map([...this.acked].map(([block, a]) => [block, a.value]));
    await target.primary.flush();
    this.acknowledgedBy(target);
    for (const [block, value] of covered)
      if (value > (this.durable.get(block) ?? 0)) this.durable.set(block, value);
    this.writesSinceFlush = 0;
  }

  /** No two primaries acknowledge at one epoch, and none at an epoch older than one that has. */
  private acknowledgedBy(target: SimWriterTarget): void {
    const previous = this.ackers.get(target.epoch);
    if (previous !== undefined && previous !== target.node)
      this.world.violate(
        `${this.volume}: writes acknowledged by two primaries at epoch ${target.epoch} (${previous} and ${target.node})`,
      );
    this.ackers.set(target.epoch, target.node);
    if (target.epoch < this.highestAckedEpoch)
      this.world.violate(
        `${this.volume}: the primary on ${target.node} acknowledged at epoch ${target.epoch} after epoch ${this.highestAckedEpoch} had`,
      );
    this.highestAckedEpoch = Math.max(this.highestAckedEpoch, target.epoch);
  }

  private async readBack(target: SimWriterTarget, when: string): Promise<void> {
    const blockBytes = target.primary.blockSizeBytes;
    const data = await target.primary.read(0, simWriterBlocks * blockBytes);
    this.checks++;
    const crashedAt = this.world.lastCrashAt(target.node);
    for (let block = 0; block < simWriterBlocks; block++) {
      const found = decode(data.subarray(block * blockBytes, (block + 1) * blockBytes), block);
      const where = `${this.volume} block ${block} read ${when} on ${target.node}`;
      if (found === undefined) {
        this.world.violate(`${where}: holds data no write put there`);
        continue;
      }
      if (found !== 0 && !(this.attempted.get(block)?.has(found) ?? false))
        this.world.violate(`${where}: holds value ${found}, never written to it`);
      const durable = this.durable.get(block) ?? 0;
      if (found < durable)
        this.world.violate(`${where}: value ${found}, but ${durable} was flushed and acknowledged`);
      const acked = this.acked.get(block);
      if (acked === undefined || found >= acked.value) continue;
      if (acked.issuedAt > crashedAt)
        this.world.violate(
          `${where}: value ${found}, but ${acked.value} (sent at t=${acked.issuedAt}) was acknowledged and ${target.node} has not lost power since`,
        );
      // Lost by a power loss (allowed: it was never flushed). The block now holds what was read:
      // a later flush covers that, not the lost value, and every later copy descends from this one.
      else if (found === 0) this.acked.delete(block);
      else this.acked.set(block, { value: found, issuedAt: this.world.now() });
    }
    this.world.note(`writer ${this.workload} checked ${this.volume} ${when} on ${target.node}`);
  }
}

/** A block holding `value`: the value, the block number, then a pattern that makes tears visible. */
function encode(value: number, block: number, blockBytes: number): Buffer {
  const data = Buffer.alloc(blockBytes, (value * 31 + block) & 0xff);
  data.writeUInt32BE(0x53494d57, 0); // "SIMW"
  data.writeUInt32BE(block, 4);
  data.writeDoubleBE(value, 8);
  return data;
}

/** The value in a block, 0 for a block never written, undefined for anything else. */
function decode(data: Buffer, block: number): number | undefined {
  if (data.every((byte) => byte === 0)) return 0;
  if (data.readUInt32BE(0) !== 0x53494d57 || data.readUInt32BE(4) !== block) return undefined;
  const value = data.readDoubleBE(8);
  const expected = encode(value, block, data.length);
  return expected.equals(data) ? value : undefined;
}
