// A primary whose local copy was not closed cleanly (replica-meta.ts `unclean`: the process or the
// machine died with the volume open, so the copy may have lost writes it had acknowledged) while
// the ISR has other members, which did not. Such a copy is not authoritative: it serves nothing,
// connects to no replica (a verify pass would copy its stale blocks over theirs), and holds every
// client operation. It reports itself ('unclean') every replicaAckTimeoutMs, and at once when the
// controller sends the membership it has again, while it is in the ISR with others; the controller
// then drops it from the ISR and moves the workload to an in-sync copy, whose primary resyncs this
// one as a returning replica. Should the controller leave it the only ISR member instead, it is
// the best copy there is: it starts serving (primary.ts) and the held operations go through.
// Closing fails the held operations with EIO.
import { BlockDeviceError, type Extent, type WriteOptions } from '../block-device.js';
import type { WriteZeroesOptions } from '../block-device.js';
import type { BlockChecksums } from '../engine/chain-status.js';
import { noGeneration, type ReplicaMeta } from './replica-meta.js';
import type { PrimaryHandle, PrimaryOptions, PrimaryStatus, VolumeMembership } from './types.js';

interface Waiter {
  resolve(primary: PrimaryHandle): void;
  reject(error: Error): void;
}

export class HeldPrimary implements PrimaryHandle {
  readonly sizeBytes: number;
  readonly blockSizeBytes: number;
  readonly readOnly: boolean;
  readonly consistentAcrossConnections: boolean;
  private membership: VolumeMembership;
  private serving: PrimaryHandle | undefined;
  private starting: Promise<void> | undefined;
  private closed = false;
  private waiters: Waiter[] = [];
  private timer: object | undefined;
  /** The isrVersion of the last report and when it went. */
  private lastReport: { isrVersion: number; atMs: number } | undefined;
  /** When it opened (held since): the age its 'unclean' reports carry. */
  private readonly openedAtMs: number;
  /** Why it was fenced before it could serve (self-fencing), if it was. */
  private fencedReason: string | undefined;

  constructor(
    private readonly options: PrimaryOptions,
    private readonly meta: ReplicaMeta,
    /** Opens the serving primary over `membership` (this copy is then the only one in sync). */
    private readonly start: (membership: VolumeMembership) => Promise<PrimaryHandle>,
  ) {
    const device = options.device;
    this.sizeBytes = device.sizeBytes;
    this.blockSizeBytes = device.blockSizeBytes;
    this.readOnly = device.readOnly;
    this.consistentAcrossConnections = device.consistentAcrossConnections;
    this.membership = options.membership;
    this.openedAtMs = options.context.clock.now();
    this.check();
    this.arm();
  }

  get fenced(): boolean {
    return this.serving?.fenced ?? this.fencedReason !== undefined;
  }

  /** Self-fenced while held: the held operations fail, nothing will serve at this epoch. */
  fence(reason: string): void {
    if (this.serving !== undefined) {
      this.serving.fence(reason);
      return;
    }
    if (this.closed) return;
    this.closed = true;
    this.fencedReason = reason;
    this.disarm();
    const { volume, epoch } = this.options;
    const message = `volume ${volume} is fenced at epoch ${epoch}: ${reason}`;
    this.options.context.logger.log('error', 'fenced', { reason });
    const error = new BlockDeviceError('io', message);
    for (const waiter of this.waiters.splice(0)) waiter.reject(error);
    this.options.report({ kind: 'fenced', volume, epoch, reason });
  }

  read(offsetBytes: number, lengthBytes: number): Promise<Buffer> {
    return this.whenServing().then((primary) => primary.read(offsetBytes, lengthBytes));
  }

  blockStatus(offsetBytes: number, lengthBytes: number): Promise<readonly Extent[]> {
    return this.whenServing().then((primary) => primary.blockStatus(offsetBytes, lengthBytes));
  }

  readChecksums(startBlock: number, blockCount: number): Promise<BlockChecksums> {
    return this.whenServing().then((primary) => primary.readChecksums(startBlock, blockCount));
  }

  write(offsetBytes: number, data: Buffer, options?: WriteOptions): Promise<void> {
    return this.whenServing().then((primary) => primary.write(offsetBytes, data, options));
  }

  trim(offsetBytes: number, lengthBytes: number, options?: WriteOptions): Promise<void> {
    return this.whenServing().then((primary) => primary.trim(offsetBytes, lengthBytes, options));
  }

  writeZeroes(
    offsetBytes: number,
    lengthBytes: number,
    options?: WriteZeroesOptions,
  ): Promise<void> {
    return this.whenServing().then((primary) =>
      primary.writeZeroes(offsetBytes, lengthBytes, options),
    );
  }

  flush(): Promise<void> {
    return this.whenServing().then((primary) => primary.flush());
  }

  setMembership(membership: VolumeMembership): void {
    if (this.serving !== undefined) {
      this.serving.setMembership(membership);
      return;
    }
    if (this.closed || this.starting !== undefined) return;
    if (membership.isrVersion < this.membership.isrVersion) return;
    if (membership.isrVersion === this.membership.isrVersion) {
      // The controller sent the record we have again: our report may never have reached it.
      this.lastReport = undefined;
      this.check();
      return;
    }
    this.membership = membership;
    const self = this.options.context.node;
    const listed = membership.replicas.some((replica) => replica.node === self);
    if (listed && membership.isr.length === 1 && membership.isr[0] === self) {
      this.release(membership);
      return;
    }
    this.check();
  }

  status(): PrimaryStatus {
    if (this.serving !== undefined) return this.serving.status();
    const self = this.options.context.node;
    return {
      volume: this.options.volume,
      epoch: this.options.epoch,
      generation: this.meta.generations[0] ?? noGeneration,
      fenced: this.fencedReason !== undefined,
      isrVersion: this.membership.isrVersion,
      replicas: this.membership.replicas
        .filter((replica) => replica.node !== self)
        .map((replica) => ({ node: replica.node, state: 'outdated' as const, unacked: 0 })),
      unclean: true,
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.disarm();
    const error = new BlockDeviceError(
      'io',
      `the primary of ${this.options.volume} on ${this.options.context.node} closed while ` +
        'held (its copy was not closed cleanly)',
    );
    for (const waiter of this.waiters.splice(0)) waiter.reject(error);
    await this.starting;
    await this.serving?.close();
  }

  private whenServing(): Promise<PrimaryHandle> {
    if (this.serving !== undefined) return Promise.resolve(this.serving);
    if (this.closed) {
      return Promise.reject(
        new BlockDeviceError('io', `the primary of ${this.options.volume} is closed`),
      );
    }
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** The only copy in sync now: serve, then let the held operations through. */
  private release(membership: VolumeMembership): void {
    this.disarm();
    const { logger } = this.options.context;
    logger.log('info', 'held primary is the only copy in sync: serving', {
      volume: this.options.volume,
      isrVersion: membership.isrVersion,
    });
    this.starting = this.start(membership).then(
      async (primary) => {
        if (this.closed) {
          await primary.close();
          return;
        }
        this.serving = primary;
        for (const waiter of this.waiters.splice(0)) waiter.resolve(primary);
      },
      (error: unknown) => {
        logger.log('error', 'held primary could not start serving', { error: String(error) });
        const failure = new BlockDeviceError(
          'io',
          `the primary of ${this.options.volume} could not start: ${String(error)}`,
        );
        this.closed = true;
        for (const waiter of this.waiters.splice(0)) waiter.reject(failure);
      },
    );
  }

  private arm(): void {
    const periodMs = Math.max(1, Math.floor(this.options.context.limits.replicaAckTimeoutMs / 4));
    this.timer = this.options.context.clock.setTimeout(() => {
      this.timer = undefined;
      if (this.closed || this.starting !== undefined) return;
      this.check();
      this.arm();
    }, periodMs);
  }

  private disarm(): void {
    if (this.timer !== undefined) this.options.context.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Reports this copy while it is in the ISR with others, at most once per timeout and version. */
  private check(): void {
    const { node, clock, limits, logger } = this.options.context;
    const { isr, isrVersion } = this.membership;
    if (!isr.includes(node) || !isr.some((member) => member !== node)) return;
    const nowMs = clock.now();
    const last = this.lastReport;
    if (last?.isrVersion === isrVersion && nowMs - last.atMs < limits.replicaAckTimeoutMs) return;
    this.lastReport = { isrVersion, atMs: nowMs };
    const { volume, epoch } = this.options;
    logger.log('warn', 'copy not closed cleanly: reporting it', { volume, isrVersion });
    const waitingMs = Math.max(0, Math.round(nowMs - this.openedAtMs));
    try {
      this.options.report({ kind: 'unclean', volume, epoch, node, isrVersion, waitingMs });
    } catch (error) {
      logger.log('error', 'report callback failed', { error: String(error) });
    }
  }
}
