// The primary's side of one replica (primary.ts): the link to it, reopened with a bounded backoff
// for as long as the primary serves; the handshake (REPL_OPEN, REPL_HELLO, REPL_ACCEPT_EPOCH,
// REPL_EPOCH_ACCEPTED); the mutations sent and not yet acked, in sequence order, which a
// reconnection sends again while the primary still waits for them; the flush it waits on; the
// in-flight window; and checksum questions for a resync. What the replica is to the primary (in
// the ISR, being resynced, outside) is decided by the primary, not here.
import type { ReplicationContext, LinkConnector, ReplicationLink } from './types.js';
import { SeqMap } from './seq-map.js';
import type {
  ReplChecksums,
  ReplHello,
  ReplicationMessage,
  ReplRangeMutation,
  ReplWrite,
} from './wire.js';

export const reconnectDelayMsMin = 100;
export const reconnectDelayMsMax = 2000;

/** A mutation in the replication stream (a client's, or a resync copy). */
export interface InFlight {
  readonly seq: bigint;
  readonly offsetBytes: number;
  readonly lengthBytes: number;
  readonly message: ReplWrite | ReplRangeMutation;
  /** When it was queued for this replica: the ack timeout counts from here. */
  readonly sinceMs: number;
}

export interface PeerHost {
  readonly context: ReplicationContext;
  readonly volume: string;
  readonly epoch: number;
  readonly connect: LinkConnector;
  /** False once the primary is fenced or closed: no more reconnections. */
  readonly serving: boolean;
  peerReady(peer: PrimaryPeer): void;
  peerDown(peer: PrimaryPeer, reason: string): void;
  peerAcked(peer: PrimaryPeer, seq: bigint): void;
  peerDurable(peer: PrimaryPeer): void;
  /** It acknowledged something sent later than anything it had acknowledged before (the lease). */
  peerRenewed(peer: PrimaryPeer): void;
  fence(reason: string): void;
}

interface ChecksumWaiter {
  readonly startBlock: number;
  readonly blockCount: number;
  resolve(answer: ReplChecksums): void;
  reject(error: Error): void;
}

export class PrimaryPeer {
  phase: 'down' | 'handshake' | 'ready' = 'down';
  /** Counts connections, so a task can tell it still runs on the one it began on. */
  connection = 0;
  hello: ReplHello | undefined;
  /** Accepted this primary's epoch at least once. */
  epochAccepted = false;
  /** Being resynced: live mutations go to it too. */
  streaming = false;
  /** A verify or resync pass completed on the current connection. */
  verified = false;
  /** A verify or resync pass is running (primary-membership.ts). */
  passRunning = false;
  readonly unacked = new SeqMap<InFlight>();
  durableSeq = -1n;
  /** The flush it owes an answer to, and since when. */
  flushSeq: bigint | undefined;
  flushSinceMs = 0;
  /**
   * The read lease (primary-core.ts): when we sent the newest message it has since acknowledged,
   * on our clock (a mutation's queueing time, a REPL_FLUSH's or REPL_ACCEPT_EPOCH's sending time:
   * never later than the message was sent, so never later than the replica took our epoch).
   */
  ackedSentMs = -Infinity;
  /** REPL_FLUSH frames sent on the current link and not yet answered, in sending order. */
  private flushSends: { seq: bigint; sentMs: number }[] = [];
  /** When REPL_ACCEPT_EPOCH went on the current link. */
  private acceptSentMs = -Infinity;
  /** When the current link began, and when anything last arrived on it. */
  private linkSinceMs = 0;
  private heardMs = 0;
  private link: ReplicationLink | undefined;
  private retryDelayMs = reconnectDelayMsMin;
  private retryTimer: object | undefined;
  private removed = false;
  private checksumWaiters: ChecksumWaiter[] = [];
  private windowWaiters: (() => void)[] = [];
  private drainWaiters: (() => void)[] = [];
  private durableWaiters: { seq: bigint; wake: () => void }[] = [];

  constructor(
    private readonly host: PeerHost,
    readonly node: string,
    private address: string,
  ) {}

  /**
   * The replica's volume server moved (it restarted on another port, or its node got another
   * address): the next connection goes there; a link still open to the old address is closed.
   */
  readdress(address: string): void {
    if (address === this.address || this.removed) return;
    this.host.context.logger.log('info', 'replica address changed', {
      node: this.node,
      from: this.address,
      to: address,
    });
    this.address = address;
    if (this.link !== undefined) this.restart(`its address changed to ${address}`);
    else if (this.retryTimer !== undefined) {
      this.host.context.clock.clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
      this.start();
    }
  }

  get ready(): boolean {
    return this.phase === 'ready';
  }

  start(): void {
    if (this.removed || !this.host.serving || this.link !== undefined) return;
    this.connection += 1;
    const target = { volume: this.host.volume, node: this.node, address: this.address };
    let link: ReplicationLink;
    try {
      link = this.host.connect(target);
    } catch (error) {
      this.host.context.logger.log('warn', 'connect failed', {
        node: this.node,
        error: String(error),
      });
      this.scheduleRetry();
      return;
    }
    this.link = link;
    this.phase = 'handshake';
    this.hello = undefined;
    this.linkSinceMs = this.host.context.clock.now();
    link.onMessage((message) => {
      if (this.link !== link) return;
      this.heardMs = this.host.context.clock.now();
      this.receive(message);
    });
    link.onClose((reason) => this.link === link && this.closed(reason));
    const { node } = this.host.context;
    link.send({
      type: 'REPL_OPEN',
      volume: this.host.volume,
      primaryNode: node,
      epoch: this.host.epoch,
    });
  }

  send(message: ReplicationMessage): void {
    if (this.ready) this.link!.send(message);
  }

  /** Queues a mutation for this replica, and sends it now if the link is up. */
  enqueue(inFlight: InFlight): void {
    this.unacked.set(inFlight.seq, inFlight);
    this.send(inFlight.message);
  }

  /**
   * Asks for everything up to `seq` to be made durable (again after a reconnection), even when it
   * said so already: a flush waits for a durable ack that arrives after it began, not an old one.
   */
  requestFlush(seq: bigint, nowMs: number): void {
    if (this.flushSeq === undefined) this.flushSinceMs = nowMs;
    if (this.flushSeq === undefined || seq > this.flushSeq) this.flushSeq = seq;
    this.sendFlush(seq);
  }

  /** Sends REPL_FLUSH now if the link is up, remembering when (its durable ack renews the lease). */
  private sendFlush(seq: bigint): void {
    if (!this.ready) return;
    this.flushSends.push({ seq, sentMs: this.host.context.clock.now() });
    this.link!.send({ type: 'REPL_FLUSH', seq, epoch: this.host.epoch });
  }

  /** Records that it acknowledged a message we sent at `sentMs`. */
  private renewed(sentMs: number): void {
    if (sentMs <= this.ackedSentMs) return;
    this.ackedSentMs = sentMs;
    this.host.peerRenewed(this);
  }

  /** Forgets the flush it owed (it left the set the primary waits for). */
  forgetFlush(): void {
    this.flushSeq = undefined;
  }

  /** Takes every unacked mutation out (they go into a dirty bitmap instead). */
  takeUnacked(): InFlight[] {
    const taken = [...this.unacked.values()];
    this.unacked.clear();
    this.wakeWindow();
    return taken;
  }

  /** When the oldest thing it owes an answer to was asked, or undefined. */
  oldestOutstandingMs(): number | undefined {
    const oldest = this.unacked.first()?.sinceMs;
    if (this.flushSeq === undefined) return oldest;
    return oldest === undefined ? this.flushSinceMs : Math.min(oldest, this.flushSinceMs);
  }

  /**
   * Whether the link owes answers (a handshake, acks, a flush, checksums) and nothing has arrived
   * on it for `silentMs`: a link that broke without a word (a peer that hangs, a partition that
   * drops everything silently) is then restarted by the watchdog, which a resync would otherwise
   * wait on forever.
   */
  silentFor(nowMs: number, silentMs: number): boolean {
    if (this.link === undefined || this.phase === 'down') return false;
    const owes =
      this.phase === 'handshake' ||
      this.unacked.size > 0 ||
      this.flushSeq !== undefined ||
      this.checksumWaiters.length > 0;
    return owes && nowMs - Math.max(this.linkSinceMs, this.heardMs) >= silentMs;
  }

  /** Resolves once fewer than `inFlightMax` mutations wait for its ack. */
  windowOpen(): Promise<void> {
    if (this.unacked.size < this.host.context.limits.inFlightMax) return Promise.resolve();
    return new Promise((resolve) => this.windowWaiters.push(resolve));
  }

  /** Resolves once nothing sent to it waits for an ack, or its link closed. */
  drained(): Promise<void> {
    if (this.unacked.size === 0 || !this.ready) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** Resolves once it acked everything up to `seq` durable, or its link closed. */
  durableAt(seq: bigint): Promise<void> {
    if (this.durableSeq >= seq || !this.ready) return Promise.resolve();
    return new Promise((wake) => this.durableWaiters.push({ seq, wake }));
  }

  /** Checksums of blocks on the replica; rejects if the link closes first. */
  readChecksums(startBlock: number, blockCount: number): Promise<ReplChecksums> {
    if (!this.ready) return Promise.reject(new Error(`link to ${this.node} is down`));
    return new Promise((resolve, reject) => {
      this.checksumWaiters.push({ startBlock, blockCount, resolve, reject });
      this.send({ type: 'REPL_READ_CHECKSUMS', epoch: this.host.epoch, startBlock, blockCount });
    });
  }

  /** Closes the current link; a new one follows after the backoff. */
  restart(reason: string): void {
    this.link?.close(reason);
  }

  /** For good: the replica left the membership, or the primary stopped. */
  remove(reason: string): void {
    this.removed = true;
    if (this.retryTimer !== undefined) this.host.context.clock.clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const link = this.link;
    if (link !== undefined) {
      this.closed(reason);
      link.close(reason);
    }
  }

  private receive(message: ReplicationMessage): void {
    switch (message.type) {
      case 'REPL_HELLO':
        return this.helloReceived(message);
      case 'REPL_EPOCH_ACCEPTED':
        return this.epochAnswered(message.epoch);
      case 'REPL_ACK':
        if (this.phase !== 'ready') return this.protocolError('REPL_ACK before the handshake');
        return message.kind === 'written' ? this.written(message.seq) : this.durable(message.seq);
      case 'REPL_CHECKSUMS':
        return this.checksumsReceived(message);
      case 'REPL_FENCED':
        return this.host.fence(`${this.node} refused epoch ${this.host.epoch}: ${message.message}`);
      default:
        return this.protocolError(`unexpected ${message.type} from a replica`);
    }
  }

  private helloReceived(hello: ReplHello): void {
    if (this.phase !== 'handshake' || this.hello !== undefined) {
      return this.protocolError('REPL_HELLO twice');
    }
    if (hello.volume !== this.host.volume || hello.replicaNode !== this.node) {
      const got = `${hello.volume} on ${hello.replicaNode}`;
      return this.protocolError(`expected ${this.host.volume} on ${this.node}, got ${got}`);
    }
    if (hello.acceptedEpoch > this.host.epoch) {
      return this.host.fence(`${this.node} already accepted epoch ${hello.acceptedEpoch}`);
    }
    this.hello = hello;
    this.acceptSentMs = this.host.context.clock.now();
    this.link!.send({ type: 'REPL_ACCEPT_EPOCH', epoch: this.host.epoch });
  }

  private epochAnswered(epoch: number): void {
    if (this.phase !== 'handshake' || this.hello === undefined) {
      return this.protocolError('REPL_EPOCH_ACCEPTED out of turn');
    }
    if (epoch > this.host.epoch) {
      return this.host.fence(`${this.node} accepted epoch ${epoch}, above ours`);
    }
    if (epoch < this.host.epoch) return this.protocolError(`replica persisted epoch ${epoch} only`);
    this.phase = 'ready';
    this.epochAccepted = true;
    this.retryDelayMs = reconnectDelayMsMin;
    // What it still owes from before the reconnection goes again, in sequence order.
    for (const inFlight of this.unacked.values()) this.link!.send(inFlight.message);
    if (this.flushSeq !== undefined) this.sendFlush(this.flushSeq);
    // It answered at our epoch: it had taken no newer one when it got our question.
    this.renewed(this.acceptSentMs);
    this.host.peerReady(this);
  }

  private written(seq: bigint): void {
    const inFlight = this.unacked.get(seq);
    if (inFlight === undefined) return;
    this.unacked.delete(seq);
    this.wakeWindow();
    this.host.peerAcked(this, seq);
    this.renewed(inFlight.sinceMs);
  }

  private durable(seq: bigint): void {
    // The k-th durable ack of `seq` on a link answers at least the k-th REPL_FLUSH of it sent
    // there (the link is ordered), so the earliest such send is a safe time for the lease.
    const index = this.flushSends.findIndex((sent) => sent.seq === seq);
    const sentMs = index < 0 ? undefined : this.flushSends[index]!.sentMs;
    if (index >= 0) this.flushSends.splice(index, 1);
    if (seq > this.durableSeq) this.durableSeq = seq;
    if (this.flushSeq !== undefined && this.durableSeq >= this.flushSeq) this.flushSeq = undefined;
    const due = this.durableWaiters.filter((waiter) => waiter.seq <= this.durableSeq);
    this.durableWaiters = this.durableWaiters.filter((waiter) => waiter.seq > this.durableSeq);
    for (const waiter of due) waiter.wake();
    this.host.peerDurable(this);
    if (sentMs !== undefined) this.renewed(sentMs);
  }

  private checksumsReceived(answer: ReplChecksums): void {
    const waiter = this.checksumWaiters.shift();
    const count = answer.checksums.length;
    if (
      waiter === undefined ||
      waiter.startBlock !== answer.startBlock ||
      waiter.blockCount !== count
    ) {
      waiter?.reject(new Error(`${this.node} answered checksums it was not asked`));
      return this.protocolError('REPL_CHECKSUMS that answer no question');
    }
    waiter.resolve(answer);
  }

  private wakeWindow(): void {
    const waiters = this.windowWaiters;
    this.windowWaiters = [];
    for (const wake of waiters) wake();
    if (this.unacked.size > 0 && this.ready) return;
    const drained = this.drainWaiters;
    this.drainWaiters = [];
    for (const wake of drained) wake();
  }

  private protocolError(what: string): void {
    this.host.context.logger.log('warn', 'closing a replica link over a bad message', {
      node: this.node,
      what,
    });
    this.link?.close(`protocol error: ${what}`);
  }

  private closed(reason: string): void {
    this.link = undefined;
    this.phase = 'down';
    this.hello = undefined;
    this.streaming = false;
    this.verified = false;
    this.flushSends = [];
    this.acceptSentMs = -Infinity;
    const waiters = this.checksumWaiters;
    this.checksumWaiters = [];
    for (const waiter of waiters)
      waiter.reject(new Error(`link to ${this.node} closed: ${reason}`));
    this.host.context.logger.log('info', 'replica link closed', { node: this.node, reason });
    this.host.peerDown(this, reason);
    this.wakeWindow();
    const durable = this.durableWaiters;
    this.durableWaiters = [];
    for (const waiter of durable) waiter.wake();
    this.scheduleRetry();
  }

  private scheduleRetry(): void {
    if (this.removed || !this.host.serving || this.retryTimer !== undefined) return;
    const delay = this.retryDelayMs;
    this.retryDelayMs = Math.min(this.retryDelayMs * 2, reconnectDelayMsMax);
    this.retryTimer = this.host.context.clock.setTimeout(() => {
      this.retryTimer = undefined;
      this.start();
    }, delay);
  }
}
