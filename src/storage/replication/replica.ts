// The replica core of synchronous replication (docs/replication.md, "The write path" and the
// replica's state table): it applies what its primary sends over the link the volume server hands
// it, in arrival order (overlapping mutations one after another, others side by side), acks each
// mutation once it is in the data file, makes everything earlier durable for REPL_FLUSH, and
// refuses with REPL_FENCED anything from a primary whose epoch is below the highest it accepted,
// which it persists before it answers (CONVENTIONS.md item 2). It serves one primary link per
// volume at a time: a newer link (higher epoch, or the same primary reconnecting) replaces the
// older one. A message that makes no sense closes that link with a logged reason, never more.
import { ContinuumError } from '../../core/errors.js';
import type { Logger } from '../../core/ports.js';
import { SlotSet } from '../../platform/slot-set.js';
import { RangeLock } from './range-lock.js';
import {
  acceptEpoch,
  emptyReplicaMeta,
  generationIdPattern,
  isUnclean,
  noGeneration,
  startGeneration,
  type ReplicaMeta,
} from './replica-meta.js';
import { ReplicaSession, type ReplicaSessionHost } from './replica-session.js';
import type { ReplicaHandle, ReplicaOptions, ReplicationLink, ReplOpenInfo } from './types.js';

export async function openReplica(options: ReplicaOptions): Promise<ReplicaHandle> {
  const loaded = await options.state.loadMeta();
  if (loaded !== null && loaded.volume !== options.volume) {
    throw new ContinuumError(
      'CONTINUUM_ERR_VOLUME_CORRUPT',
      `replication state of ${options.volume} names volume ${loaded.volume}`,
    );
  }
  let meta = loaded ?? emptyReplicaMeta(options.volume);
  const decision = acceptEpoch(meta, options.epoch);
  const logger = options.context.logger.child({ volume: options.volume, role: 'replica' });
  if (decision.kind === 'refused') {
    // The controller's duty is older than what a primary already made us accept: keep the higher.
    logger.log('warn', 'assigned epoch is below the accepted one; keeping the accepted', {
      assigned: options.epoch,
      accepted: decision.highestEpoch,
    });
  } else meta = decision.meta;
  // Set while open, so a crash leaves it set (replica-meta.ts). A copy that was not closed
  // cleanly needs nothing more here: its primary verifies every ISR member when it (re)connects,
  // and resyncs the others; until one did, a clean close keeps it unclean.
  const unclean = isUnclean(loaded);
  if (unclean) logger.log('warn', 'copy was not closed cleanly: it waits for a verify pass');
  if (loaded === null || !unclean || (decision.kind === 'accepted' && decision.changed)) {
    meta = { ...meta, unclean: true };
    await options.state.saveMeta(meta);
  }
  return new Replica(options, meta, logger, !unclean);
}

class Replica implements ReplicaHandle, ReplicaSessionHost {
  readonly locks = new RangeLock();
  /** Mutations being applied, on any link: a flush waits for the ones that arrived before it. */
  readonly applying = new SlotSet<Promise<void>>();
  private meta: ReplicaMeta;
  private current: ReplicaSession | undefined;
  private readonly sessions = new Set<ReplicaSession>();
  /** Saves of the meta, one after another, so the file always holds the latest decision. */
  private metaSaves: Promise<void> = Promise.resolve();
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly options: ReplicaOptions,
    meta: ReplicaMeta,
    readonly logger: Logger,
    /** Known to hold every write it acknowledged: opened clean, or verified by a primary since. */
    private complete: boolean,
  ) {
    this.meta = meta;
  }

  get highestEpoch(): number {
    return this.meta.highestEpoch;
  }

  get device() {
    return this.options.device;
  }

  get node(): string {
    return this.options.context.node;
  }

  get volume(): string {
    return this.options.volume;
  }

  get newestGeneration(): string {
    return this.meta.generations[0] ?? noGeneration;
  }

  get dataGeneration(): number {
    return this.meta.dataGeneration;
  }

  async acceptEpoch(epoch: number): Promise<void> {
    await this.raiseEpoch(epoch);
  }

  /** Persists `epoch` as the highest accepted if it is higher; resolves with the highest after. */
  raiseEpoch(epoch: number): Promise<number> {
    const work = this.metaSaves.then(async () => {
      const decision = acceptEpoch(this.meta, epoch);
      if (decision.kind === 'accepted' && decision.changed) {
        await this.options.state.saveMeta(decision.meta);
        this.meta = decision.meta;
        this.logger.log('info', 'accepted epoch', { epoch });
        // Whoever serves an older epoch learns it now, not at its next write.
        for (const session of this.sessions) session.refuseIfStale();
      }
      return this.meta.highestEpoch;
    });
    this.metaSaves = work.then(
      () => undefined,
      () => undefined,
    );
    return work;
  }

  /** Adopts a generation the primary says we share (after every mutation before it landed). */
  adoptGeneration(id: string): Promise<void> {
    const work = this.metaSaves.then(async () => {
      if (!generationIdPattern.test(id) || id === '0000000000000000') {
        throw new RangeError(`generation ${JSON.stringify(id)} is not a generation id`);
      }
      // A primary sends its generation once a verify or resync pass made us equal to it.
      if (this.meta.generations[0] === id) {
        this.verified();
        return;
      }
      if (this.meta.generations.includes(id)) {
        this.logger.log('warn', 'primary sent an older generation of our history; ignored', { id });
        return;
      }
      const next = startGeneration(
        this.meta,
        id,
        deviceDataGeneration(this.options.device, this.meta),
      );
      await this.options.state.saveMeta(next);
      this.meta = next;
      this.verified();
    });
    this.metaSaves = work.catch(() => undefined);
    return work;
  }

  private verified(): void {
    if (this.complete) return;
    this.complete = true;
    this.logger.log('info', 'verified by the primary: the copy is complete again');
  }

  accept(link: ReplicationLink, open: ReplOpenInfo): void {
    if (this.closed) {
      link.close('the replica is closed');
      return;
    }
    if (open.volume !== this.options.volume) {
      this.logger.log('warn', 'link for another volume closed', { volume: open.volume });
      link.close(`this replica serves ${this.options.volume}, not ${open.volume}`);
      return;
    }
    const session = new ReplicaSession(this, link, open);
    if (open.epoch < this.meta.highestEpoch) {
      session.refuse(`open at epoch ${open.epoch}`);
      return;
    }
    const previous = this.current;
    this.current = session;
    this.sessions.add(session);
    if (previous !== undefined) {
      previous.close(`replaced by a link from ${open.primaryNode} at epoch ${open.epoch}`);
    }
    session.start();
  }

  sessionClosed(session: ReplicaSession): void {
    this.sessions.delete(session);
    if (this.current === session) this.current = undefined;
  }

  close(): Promise<void> {
    this.closed = true;
    for (const session of [...this.sessions]) session.close('the replica is closing');
    this.closing ??= this.markClosedCleanly();
    return this.closing;
  }

  /**
   * Once the mutations being applied settled and the device is flushed, a copy known complete is
   * recorded as closed cleanly; a failed flush (power lost) or an unverified copy stays unclean.
   */
  private async markClosedCleanly(): Promise<void> {
    await Promise.allSettled([...this.applying]);
    await this.metaSaves;
    if (!this.complete) return;
    try {
      await this.options.device.flush();
      const next: ReplicaMeta = { ...this.meta, unclean: false };
      const work = this.metaSaves.then(() => this.options.state.saveMeta(next));
      this.metaSaves = work.catch(() => undefined);
      await work;
      this.meta = next;
    } catch (error) {
      this.logger.log('warn', 'could not record a clean close', { error: String(error) });
    }
  }
}

/** The engine's data generation counter when the device has one (the Volume does). */
export function deviceDataGeneration(device: object, meta: ReplicaMeta): number {
  const value = (device as { dataGeneration?: unknown }).dataGeneration;
  return typeof value === 'number' ? value : meta.dataGeneration;
}
