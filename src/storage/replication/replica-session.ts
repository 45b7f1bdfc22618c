// One primary's link to a replica (replica.ts): checks each message's epoch, applies mutations in
// arrival order under the replica's range lock, answers flushes, generations, epoch questions and
// checksum questions, and closes the link with a logged reason on anything it cannot accept.
import type { Logger } from '../../core/ports.js';
import type { SlotSet } from '../../platform/slot-set.js';
import { BlockDeviceError } from '../block-device.js';
import type { RangeLock, ReleaseRange } from './range-lock.js';
import type { ReplicableDevice, ReplicationLink, ReplOpenInfo } from './types.js';
import type {
  ReplFlush,
  ReplGeneration,
  ReplicationMessage,
  ReplRangeMutation,
  ReplReadChecksums,
  ReplWrite,
} from './wire.js';

/** What a session needs of its replica. */
export interface ReplicaSessionHost {
  readonly node: string;
  readonly volume: string;
  readonly device: ReplicableDevice;
  readonly logger: Logger;
  readonly locks: RangeLock;
  readonly applying: SlotSet<Promise<void>>;
  readonly highestEpoch: number;
  readonly newestGeneration: string;
  readonly dataGeneration: number;
  raiseEpoch(epoch: number): Promise<number>;
  adoptGeneration(id: string): Promise<void>;
  sessionClosed(session: ReplicaSession): void;
}

type Mutation = ReplWrite | ReplRangeMutation;

export class ReplicaSession {
  private closed = false;
  /** Set once this link's epoch is persisted, when it is above what was accepted at open. */
  private epochPersisted: Promise<number> | undefined;

  constructor(
    private readonly host: ReplicaSessionHost,
    private readonly link: ReplicationLink,
    private readonly open: ReplOpenInfo,
  ) {}

  start(): void {
    this.link.onClose((reason) => this.closed || this.ended(reason));
    this.link.onMessage((message) => this.receive(message));
    this.link.send({
      type: 'REPL_HELLO',
      volume: this.host.volume,
      replicaNode: this.host.node,
      acceptedEpoch: this.host.highestEpoch,
      generation: this.host.newestGeneration,
      dataGenerationCounter: this.host.dataGeneration,
    });
  }

  /** Answers REPL_FENCED and closes: this link's primary is older than what we accepted. */
  refuse(what: string): void {
    const highest = this.host.highestEpoch;
    const message =
      `volume ${this.host.volume} on ${this.host.node} accepted epoch ${highest}; ` +
      `${what} from ${this.open.primaryNode} is refused (fenced)`;
    this.host.logger.log('warn', 'refused an older primary', { epoch: this.open.epoch, highest });
    this.link.send({ type: 'REPL_FENCED', acceptedEpoch: highest, message });
    this.close(message);
  }

  refuseIfStale(): void {
    if (!this.closed && this.open.epoch < this.host.highestEpoch) this.refuse('the link');
  }

  close(reason: string): void {
    if (this.closed) return;
    this.ended(reason);
    this.link.close(reason);
  }

  private ended(reason: string): void {
    this.closed = true;
    this.host.logger.log('info', 'primary link closed', { primary: this.open.primaryNode, reason });
    this.host.sessionClosed(this);
  }

  private protocolError(what: string): void {
    this.host.logger.log('warn', 'closing a primary link over a bad message', { what });
    this.close(`protocol error: ${what}`);
  }

  private receive(message: ReplicationMessage): void {
    if (this.closed) return;
    switch (message.type) {
      case 'REPL_WRITE':
      case 'REPL_TRIM':
      case 'REPL_WRITE_ZEROES':
        if (this.epochOk(message) && this.rangeOk(message)) this.apply(message);
        return;
      case 'REPL_FLUSH':
        if (this.epochOk(message)) this.flush(message);
        return;
      case 'REPL_GENERATION':
        if (this.epochOk(message)) this.generation(message);
        return;
      case 'REPL_READ_CHECKSUMS':
        if (this.epochOk(message) && this.blocksOk(message)) this.checksums(message);
        return;
      case 'REPL_ACCEPT_EPOCH':
        this.answerEpoch(message.epoch);
        return;
      default:
        this.protocolError(`unexpected ${message.type} from a primary`);
    }
  }

  private epochOk(message: { type: string; epoch: number }): boolean {
    if (message.epoch !== this.open.epoch) {
      this.protocolError(
        `${message.type} at epoch ${message.epoch} on a link opened at ${this.open.epoch}`,
      );
      return false;
    }
    if (message.epoch < this.host.highestEpoch) {
      this.refuse(`${message.type} at epoch ${message.epoch}`);
      return false;
    }
    return true;
  }

  private rangeOk(message: Mutation): boolean {
    const length = message.type === 'REPL_WRITE' ? message.data.length : message.length;
    if (message.offset + length > this.host.device.sizeBytes) {
      const size = this.host.device.sizeBytes;
      this.protocolError(
        `${message.type} of ${length} bytes at ${message.offset} is past the end (${size})`,
      );
      return false;
    }
    return true;
  }

  private blocksOk(message: ReplReadChecksums): boolean {
    const blocks = this.host.device.sizeBytes / this.host.device.blockSizeBytes;
    if (message.startBlock + message.blockCount > blocks) {
      this.protocolError(
        `checksums of blocks ${message.startBlock}+${message.blockCount} of ${blocks}`,
      );
      return false;
    }
    return true;
  }

  /** Waits until this link's epoch is persisted if it is above the accepted one at arrival. */
  private epochReady(): Promise<number> | undefined {
    if (this.open.epoch <= this.host.highestEpoch && this.epochPersisted === undefined) return;
    this.epochPersisted ??= this.host.raiseEpoch(this.open.epoch);
    return this.epochPersisted;
  }

  /** Runs `work` under a range lock whose place was taken now, on arrival, and tracks it. */
  private ordered(offset: number, length: number, work: () => Promise<void>): Promise<void> {
    // Uncontended (the usual case), the lock is held at once and nothing is awaited before work.
    const held = this.host.locks.tryAcquire(offset, length);
    const acquired = held === undefined ? this.host.locks.acquire(offset, length) : undefined;
    const run = (async () => {
      let release: ReleaseRange | undefined;
      try {
        release = held ?? (await acquired!);
        const epochPersisted = this.epochReady();
        if (epochPersisted !== undefined) await epochPersisted;
        if (this.closed) return;
        if (this.open.epoch < this.host.highestEpoch) return this.refuse('a mutation');
        await work();
      } catch (error) {
        this.host.logger.log('error', 'replica operation failed', { error: String(error) });
        this.close(`replica ${this.host.node} failed: ${(error as Error).message}`);
      } finally {
        release?.();
      }
    })();
    return run;
  }

  private apply(message: Mutation): void {
    const device = this.host.device;
    const length = message.type === 'REPL_WRITE' ? message.data.length : message.length;
    const fua = message.fua;
    const applied = this.ordered(message.offset, length, async () => {
      if (message.type === 'REPL_WRITE') await device.write(message.offset, message.data, { fua });
      else if (message.type === 'REPL_TRIM') await device.trim(message.offset, length, { fua });
      // The wire has no NO_HOLE flag: a replica may always punch, it reads the same.
      else await device.writeZeroes(message.offset, length, { fua, mayTrim: true });
      if (!this.closed) this.link.send({ type: 'REPL_ACK', seq: message.seq, kind: 'written' });
    });
    const slot = this.host.applying.add(applied);
    void applied.finally(() => this.host.applying.delete(slot, applied));
  }

  /** After every mutation that arrived before it (on any link), makes them durable. */
  private afterEarlier(work: () => Promise<void>): void {
    const earlier = [...this.host.applying];
    void (async () => {
      try {
        await Promise.all(earlier);
        await this.epochReady();
        if (this.closed) return;
        if (this.open.epoch < this.host.highestEpoch) return this.refuse('a flush');
        await work();
      } catch (error) {
        this.host.logger.log('error', 'replica operation failed', { error: String(error) });
        this.close(`replica ${this.host.node} failed: ${(error as Error).message}`);
      }
    })();
  }

  private flush(message: ReplFlush): void {
    this.afterEarlier(async () => {
      await this.host.device.flush();
      if (!this.closed) this.link.send({ type: 'REPL_ACK', seq: message.seq, kind: 'durable' });
    });
  }

  private generation(message: ReplGeneration): void {
    this.afterEarlier(() => this.host.adoptGeneration(message.generation));
  }

  private checksums(message: ReplReadChecksums): void {
    const blockSize = this.host.device.blockSizeBytes;
    const offset = message.startBlock * blockSize;
    void this.ordered(offset, message.blockCount * blockSize, async () => {
      const { startBlock, blockCount } = message;
      const { checksums, allocated } = await this.host.device.readChecksums(startBlock, blockCount);
      await this.markDamaged(startBlock, checksums, allocated);
      if (!this.closed)
        this.link.send({ type: 'REPL_CHECKSUMS', startBlock, checksums, allocated });
    });
  }

  /**
   * The recorded checksums say what each block should hold; the data on disk may have rotted since
   * (the engine's read checks it and fails with 'corrupt'). A verify pass must see
   * that, so the stored blocks are read, and a damaged one answers a checksum that cannot match
   * the primary's: the primary copies it again, which repairs it.
   */
  private async markDamaged(
    startBlock: number,
    checksums: Uint32Array,
    allocated: Uint8Array,
  ): Promise<void> {
    const device = this.host.device;
    const blockSize = device.blockSizeBytes;
    if (!allocated.includes(1)) return;
    try {
      await device.read(startBlock * blockSize, allocated.length * blockSize);
      return;
    } catch (error) {
      if (!(error instanceof BlockDeviceError) || error.kind !== 'corrupt') throw error;
    }
    for (let index = 0; index < allocated.length; index++) {
      if (allocated[index] !== 1) continue;
      try {
        await device.read((startBlock + index) * blockSize, blockSize);
      } catch (error) {
        if (!(error instanceof BlockDeviceError) || error.kind !== 'corrupt') throw error;
        checksums[index] = ~checksums[index]! >>> 0;
        this.host.logger.log('warn', 'damaged block found by a verify pass: asking for it', {
          block: startBlock + index,
          error: error.message,
        });
      }
    }
  }

  private answerEpoch(epoch: number): void {
    void this.host.raiseEpoch(epoch).then(
      (highest) => {
        if (!this.closed) this.link.send({ type: 'REPL_EPOCH_ACCEPTED', epoch: highest });
      },
      (error: unknown) => this.close(`could not persist epoch ${epoch}: ${String(error)}`),
    );
  }
}
