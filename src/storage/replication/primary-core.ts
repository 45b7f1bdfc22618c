// The state and rules of a primary (primary.ts has the device face and the opening): who must ack
// (the ISR, plus replicas it reported caught-up), the sequence stream, the dirty bitmaps of the
// replicas outside it, the waits of client operations, fencing, and the watchdog that reports an
// in-sync replica that stopped answering (primary-watchdog.ts). Membership changes and resync
// completion live in primary-membership.ts.
import type { Logger } from '../../core/ports.js';
import { SlotSet } from '../../platform/slot-set.js';
import { StopLatch } from '../../platform/stop-latch.js';
import { BlockDeviceError } from '../block-device.js';
import { DirtyBitmap } from './dirty-bitmap.js';
import { MembershipRules } from './primary-membership.js';
import { PrimaryPeer, type InFlight, type PeerHost } from './primary-peer.js';
import { RangeLock } from './range-lock.js';
import { SeqMap } from './seq-map.js';
import { noGeneration, type ReplicaMeta } from './replica-meta.js';
import { ReadLease } from './primary-lease.js';
import { sentFirst, waitingFor, type MutationRequest, type Waiting } from './primary-waiting.js';
import { primaryStatus, Watchdog } from './primary-watchdog.js';
import { type ResyncHost, type ResyncProgress } from './resync.js';
import type {
  PrimaryOptions,
  PrimaryReport,
  PrimaryStatus,
  ReplicationContext,
  VolumeMembership,
} from './types.js';
import type { ReplicationMessage } from './wire.js';

export class PrimaryCore implements PeerHost, ResyncHost {
  readonly context: ReplicationContext;
  readonly lock = new RangeLock();
  readonly peers = new Map<string, PrimaryPeer>();
  /** Must ack every mutation: the ISR without us, and replicas reported caught-up. */
  readonly required = new Set<string>();
  /** Dropped from the ISR, bitmap not yet persisted: their waiting replies are still held. */
  readonly dropping = new Set<string>();
  /** Replicas made required after 'caught-up', with the isrVersion of that report. */
  readonly caughtUp = new Map<string, number>();
  readonly progressOf = new Map<string, ResyncProgress>();
  readonly logger: Logger;
  readonly membershipRules: MembershipRules;
  meta: ReplicaMeta;
  membership: VolumeMembership;
  private seq = 0n;
  private readonly mutations = new SeqMap<Waiting>();
  private readonly flushes = new Set<Waiting>();
  private readonly bitmapsChanged = new Set<string>();
  /** Client waits end when the primary stops (fenced, closed), with the stop's error. */
  private readonly latch = new StopLatch();
  private gate: Waiting | undefined;
  readonly watchdog: Watchdog;
  private readonly sleeps = new Map<object, () => void>();
  private saves: Promise<void> = Promise.resolve();
  /** Local mutations not yet settled: a clean close waits for them before its flush. */
  private readonly localWrites = new SlotSet<Promise<void>>();
  private closing: Promise<void> | undefined;
  readonly lease: ReadLease;
  /** Resolves once this primary may serve client operations (the promotion wait). */
  private serveFrom: Promise<void> = Promise.resolve();
  /** serveFrom has resolved: any earlier primary's lease is over. */
  private heldOver = true;

  constructor(
    readonly options: PrimaryOptions,
    meta: ReplicaMeta,
    readonly bitmaps: Map<string, DirtyBitmap>,
    /** On our clock: client operations wait until then (primary.ts, the promotion wait). */
    private readonly holdUntilMs = -Infinity,
  ) {
    this.context = options.context;
    this.meta = meta;
    this.membership = options.membership;
    this.logger = options.context.logger.child({ volume: options.volume, role: 'primary' });
    this.watchdog = new Watchdog(this);
    this.lease = new ReadLease(this);
    this.membershipRules = new MembershipRules(this);
  }

  get device() {
    return this.options.device;
  }
  get volume(): string {
    return this.options.volume;
  }
  get epoch(): number {
    return this.options.epoch;
  }
  get connect() {
    return this.options.connect;
  }
  get serving(): boolean {
    return this.stopError === undefined;
  }
  get fenced(): boolean {
    return this.stopError instanceof BlockDeviceError && this.stopError.kind === 'io';
  }
  get generation(): string {
    return this.meta.generations[0]!;
  }

  start(): void {
    for (const node of this.membership.isr) {
      if (node !== this.context.node) this.required.add(node);
    }
    for (const { node, address } of this.membership.replicas) {
      if (node !== this.context.node) this.addPeer(node, address);
    }
    this.watchdog.arm();
    const holdMs = this.holdUntilMs - this.context.clock.now();
    if (holdMs > 0) {
      this.logger.log('info', 'serving once an earlier primary lease has expired', { holdMs });
      this.heldOver = false;
      this.serveFrom = this.sleep(holdMs).then(() => {
        this.heldOver = true;
      });
    }
    this.lease.arm();
  }

  addPeer(node: string, address: string): void {
    const peer = new PrimaryPeer(this, node, address);
    this.peers.set(node, peer);
    peer.start();
  }

  report(report: PrimaryReport): void {
    try {
      this.options.report(report);
    } catch (error) {
      this.logger.log('error', 'report callback failed', { error: String(error) });
    }
  }

  /** Whether client operations wait for this replica. */
  awaited(node: string): boolean {
    return this.required.has(node) || this.dropping.has(node);
  }

  // --- client operations -----------------------------------------------------------------------

  /** A read (or anything else that shows the local copy): answered only under the lease. */
  async local<T>(operation: () => Promise<T>): Promise<T> {
    if (this.stopError !== undefined) throw this.stopError;
    await this.guard(this.serveFrom);
    while (!this.lease.valid()) await this.guard(this.lease.renewed());
    return this.guard(operation());
  }

  async mutate(request: MutationRequest): Promise<void> {
    if (this.stopError !== undefined) throw this.stopError;
    const { offsetBytes, lengthBytes } = request;
    if (offsetBytes < 0 || lengthBytes < 0 || offsetBytes + lengthBytes > this.device.sizeBytes) {
      throw new BlockDeviceError(
        'range',
        `${request.kind} at ${offsetBytes} for ${lengthBytes} bytes`,
      );
    }
    if (this.device.readOnly)
      throw new BlockDeviceError('read-only', `${request.kind} on a read-only volume`);
    // Each wait is skipped when there is nothing to wait for (the usual case): a guarded await
    // costs a promise and two reactions, and a write used to pay five of them.
    if (!this.heldOver) await this.guard(this.serveFrom);
    if (!this.gateOpen()) await this.guard(this.epochGate());
    let release = this.lock.tryAcquire(offsetBytes, lengthBytes);
    if (release === undefined) {
      const acquired = this.lock.acquire(offsetBytes, lengthBytes);
      release = await this.guard(acquired).catch((error: unknown) => {
        void acquired.then((late) => late());
        throw error;
      });
    }
    let waiting: Waiting | undefined;
    try {
      // Checked again after every wait, in the same turn as the dispatch that follows.
      for (let full = this.fullTarget(); full !== undefined; full = this.fullTarget()) {
        await this.guard(full.windowOpen());
      }
      waiting = this.dispatch(request);
      const local = sentFirst.then(() => this.applyLocal(request));
      const slot = this.localWrites.add(local);
      const settled = () => this.localWrites.delete(slot, local);
      void local.then(settled, settled);
      await this.guard(local);
      waiting.localDone = true;
    } catch (error) {
      if (waiting !== undefined) this.mutations.delete(waiting.seq);
      throw error;
    } finally {
      release();
    }
    if (this.options.unsafeAckBeforeIsr === true) this.mutations.delete(waiting.seq);
    else {
      this.recheck(waiting);
      await this.guard(waiting.promise);
    }
    if (request.fua) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.stopError !== undefined) throw this.stopError;
    await this.guard(this.serveFrom);
    await this.guard(this.epochGate());
    const seq = this.seq;
    const nowMs = this.context.clock.now();
    const waiting = waitingFor(seq, []);
    for (const node of this.required) {
      const peer = this.peers.get(node);
      if (peer === undefined) continue;
      // Asked even when it acked everything durable already: its answer also shows it still
      // takes our epoch, so a primary that a newer one replaced answers no flush.
      waiting.waitingOn.add(node);
      peer.requestFlush(seq, nowMs);
    }
    this.flushes.add(waiting);
    try {
      await this.guard(this.device.flush());
      // "Persist, then acknowledge": what the bitmaps marked is on disk before the reply.
      await this.guard(this.saveChangedBitmaps());
    } catch (error) {
      this.flushes.delete(waiting);
      throw error;
    }
    waiting.localDone = true;
    if (this.options.unsafeAckBeforeIsr === true) {
      this.flushes.delete(waiting);
      return;
    }
    this.recheck(waiting);
    await this.guard(waiting.promise);
  }

  private applyLocal(request: MutationRequest): Promise<void> {
    const { offsetBytes, lengthBytes, fua } = request;
    if (request.kind === 'write') return this.device.write(offsetBytes, request.data!, { fua });
    if (request.kind === 'trim') return this.device.trim(offsetBytes, lengthBytes, { fua });
    const mayTrim = request.mayTrim;
    return this.device.writeZeroes(offsetBytes, lengthBytes, { fua, mayTrim });
  }

  /** A replica the next mutation goes to whose window is full, if any. */
  private fullTarget(): PrimaryPeer | undefined {
    const max = this.context.limits.inFlightMax;
    return this.streamTargets().find((peer) => peer.unacked.size >= max);
  }

  /** Replicas each mutation goes to: required ones (up or not), and those being resynced. */
  private streamTargets(): PrimaryPeer[] {
    return [...this.peers.values()].filter(
      (peer) => this.required.has(peer.node) || (peer.streaming && peer.ready),
    );
  }

  /** Takes a sequence number, marks the bitmaps of those it skips, sends to the others. */
  private dispatch(request: MutationRequest): Waiting {
    const seq = ++this.seq;
    const { offsetBytes, lengthBytes, fua } = request;
    const epoch = this.epoch;
    let message: InFlight['message'];
    if (request.kind === 'write') {
      // The broken build answers before the replicas have the data: keep our own copy of it.
      const unsafe = this.options.unsafeAckBeforeIsr === true;
      const data = unsafe ? Buffer.from(request.data!) : request.data!;
      message = { type: 'REPL_WRITE', seq, epoch, offset: offsetBytes, fua, data };
    } else {
      const type = request.kind === 'trim' ? 'REPL_TRIM' : 'REPL_WRITE_ZEROES';
      message = { type, seq, epoch, offset: offsetBytes, length: lengthBytes, fua };
    }
    const targets = this.streamTargets();
    for (const peer of this.peers.values()) {
      if (!targets.includes(peer)) this.markBitmap(peer.node, offsetBytes, lengthBytes);
    }
    const waiting = waitingFor(
      seq,
      targets.map((peer) => peer.node),
    );
    this.mutations.set(seq, waiting);
    const sinceMs = this.context.clock.now();
    for (const peer of targets) peer.enqueue({ seq, offsetBytes, lengthBytes, message, sinceMs });
    return waiting;
  }

  // --- acks, bitmaps, persistence ----------------------------------------------------------------

  markBitmap(node: string, offsetBytes: number, lengthBytes: number): void {
    let bitmap = this.bitmaps.get(node);
    if (bitmap === undefined) {
      // No bitmap we can trust for it: one that starts nowhere forces a full resync.
      bitmap = this.newBitmap(noGeneration);
      this.bitmaps.set(node, bitmap);
    }
    bitmap.markRange(offsetBytes, lengthBytes);
    this.bitmapsChanged.add(node);
  }

  newBitmap(startGeneration: string): DirtyBitmap {
    return DirtyBitmap.create({
      regionSizeBytes: this.context.limits.bitmapRegionBytes,
      volumeSizeBytes: this.device.sizeBytes,
      startGeneration,
    });
  }

  bitmapChanged(node: string): void {
    this.bitmapsChanged.add(node);
  }

  /** Runs state saves one after another, in call order. */
  persist(save: () => Promise<void>): Promise<void> {
    const done = this.saves.then(save);
    this.saves = done.catch(() => undefined);
    return done;
  }

  private saveChangedBitmaps(): Promise<void> {
    const nodes = [...this.bitmapsChanged];
    this.bitmapsChanged.clear();
    const saves = nodes.map((node) =>
      this.persist(async () => {
        const bitmap = this.bitmaps.get(node);
        if (bitmap !== undefined) await this.options.state.saveBitmap(node, bitmap);
      }).catch((error: unknown) => {
        this.bitmapsChanged.add(node);
        throw error;
      }),
    );
    // The empty save waits for saves begun earlier by others, which hold our marks too.
    return Promise.all([...saves, this.persist(() => Promise.resolve())]).then(() => undefined);
  }

  peerAcked(peer: PrimaryPeer, seq: bigint): void {
    const waiting = this.mutations.get(seq);
    if (waiting === undefined) return;
    waiting.waitingOn.delete(peer.node);
    this.recheck(waiting);
  }

  peerDurable(peer: PrimaryPeer): void {
    for (const waiting of this.flushes) {
      if (peer.durableSeq < waiting.seq) continue;
      waiting.waitingOn.delete(peer.node);
      this.recheck(waiting);
    }
  }

  peerRenewed(): void {
    this.lease.check();
  }

  peerReady(peer: PrimaryPeer): void {
    this.checkGate();
    this.membershipRules.startPass(peer);
  }

  peerDown(peer: PrimaryPeer, reason: string): void {
    if (this.required.has(peer.node)) return; // Its unacked mutations go again on reconnection.
    for (const inFlight of peer.takeUnacked()) {
      this.markBitmap(peer.node, inFlight.offsetBytes, inFlight.lengthBytes);
    }
    this.logger.log('info', 'replica outside the ISR disconnected', { node: peer.node, reason });
  }

  /** A copy of a resync, to one replica, in the sequence stream. */
  sendCopy(peer: PrimaryPeer, offsetBytes: number, lengthBytes: number, data?: Buffer): void {
    const seq = ++this.seq;
    const epoch = this.epoch;
    const message: InFlight['message'] =
      data === undefined
        ? {
            type: 'REPL_WRITE_ZEROES',
            seq,
            epoch,
            offset: offsetBytes,
            length: lengthBytes,
            fua: false,
          }
        : { type: 'REPL_WRITE', seq, epoch, offset: offsetBytes, fua: false, data };
    peer.enqueue({ seq, offsetBytes, lengthBytes, message, sinceMs: this.context.clock.now() });
  }

  send(peer: PrimaryPeer, message: ReplicationMessage): void {
    peer.send(message);
  }

  /** The newest sequence number given out (a flush asked now covers everything up to it). */
  get currentSeq(): bigint {
    return this.seq;
  }

  nextSeq(): bigint {
    return this.seq;
  }

  recheck(waiting: Waiting): void {
    if (!waiting.localDone) return;
    for (const node of waiting.waitingOn) if (this.awaited(node)) return;
    this.mutations.delete(waiting.seq);
    this.flushes.delete(waiting);
    waiting.resolve();
  }

  recheckAll(): void {
    for (const waiting of [...this.mutations.values(), ...this.flushes]) this.recheck(waiting);
    this.checkGate();
    this.lease.check();
  }

  // --- the epoch gate, progress, the watchdog, stopping ------------------------------------------

  /** Open once every ISR member accepted our epoch (or left the set we wait for). */
  private epochGate(): Promise<void> {
    if (this.gateOpen()) return Promise.resolve();
    this.gate ??= waitingFor(0n, []);
    return this.gate.promise;
  }

  private gateOpen(): boolean {
    for (const node of this.required) {
      if (this.peers.get(node)?.epochAccepted !== true) return false;
    }
    return true;
  }

  private checkGate(): void {
    if (this.gate === undefined || !this.gateOpen()) return;
    this.gate.resolve();
    this.gate = undefined;
  }

  progress(peer: PrimaryPeer, progress: ResyncProgress, done: boolean): void {
    this.progressOf.set(peer.node, { ...progress });
    const { volume, epoch } = this;
    this.report({ kind: 'resync', volume, epoch, node: peer.node, ...progress, done });
  }

  sleep(ms: number): Promise<void> {
    if (!this.serving) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = this.context.clock.setTimeout(() => {
        this.sleeps.delete(timer);
        resolve();
      }, ms);
      this.sleeps.set(timer, resolve);
    });
  }

  private guard<T>(promise: Promise<T>): Promise<T> {
    return this.latch.guard(promise);
  }

  private get stopError(): Error | undefined {
    return this.latch.error;
  }

  fence(reason: string): void {
    if (this.stopError !== undefined) return;
    const message = `volume ${this.volume} is fenced at epoch ${this.epoch}: ${reason}`;
    this.logger.log('error', 'fenced', { reason });
    this.stop(new BlockDeviceError('io', message), `fenced: ${reason}`);
    this.report({ kind: 'fenced', volume: this.volume, epoch: this.epoch, reason });
  }

  close(): Promise<void> {
    this.stop(new BlockDeviceError('closed', `primary of ${this.volume} closed`), 'primary closed');
    this.closing ??= this.markClosedCleanly();
    return this.closing;
  }

  /**
   * Once what was written locally settled and is flushed, the copy holds every write this primary
   * acknowledged: record it as closed cleanly. A flush that fails (power lost) leaves it unclean.
   */
  private async markClosedCleanly(): Promise<void> {
    await Promise.allSettled([...this.localWrites]);
    try {
      await this.device.flush();
      const meta: ReplicaMeta = { ...this.meta, unclean: false };
      await this.persist(() => this.options.state.saveMeta(meta));
      this.meta = meta;
    } catch (error) {
      this.logger.log('warn', 'could not record a clean close', { error: String(error) });
    }
  }

  private stop(error: Error, reason: string): void {
    if (this.stopError !== undefined) return;
    this.latch.stop(error);
    this.watchdog.disarm();
    this.lease.disarm();
    for (const [timer, wake] of this.sleeps) {
      this.context.clock.clearTimeout(timer);
      wake();
    }
    this.sleeps.clear();
    for (const peer of this.peers.values()) peer.remove(reason);
  }

  status(): PrimaryStatus {
    return primaryStatus(this);
  }
}
