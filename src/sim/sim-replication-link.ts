// Replication links over the simulated network (types.ts ReplicationLink): what a TCP connection
// promises and no more. The SimNetwork draws each message's delay, loss and duplication; this
// file turns that into a stream: messages are delivered in the order sent (a reorder buffer per
// direction, as TCP's sequence numbers do), a duplicate is dropped, and a message the network
// loses, or a partition that swallows one, breaks the connection: both ends hear of it after a
// short delay with a reason, as a reset connection. Nothing after a gap is ever delivered.
//
// SimLinkFabric is the world's LinkConnector: it opens a link to a node, reads the primary's first
// message (REPL_OPEN) there, and hands the rest of the link to the acceptor that node registered,
// the way the TCP listener (storage/replication/tcp-link.ts) routes by its first frame.
import type { LinkConnector, ReplicationLink, ReplOpenInfo } from '../storage/replication/types.js';
import type { ReplicationMessage } from '../storage/replication/wire.js';
import type { FakeClock } from './fake-clock.js';
import type { SimNetwork } from './network.js';

export interface SimLinkOptions {
  readonly network: SimNetwork;
  readonly clock: FakeClock;
  /** How long after a break each end hears of it; default 5 ms. */
  readonly closeNoticeMs?: number;
  /**
   * Runs a callback on a node, e.g. through its NodeClock.run so that a hung node hears late;
   * by default at once.
   */
  readonly runOn?: (node: string, callback: () => void) => void;
}

export interface SimLinkPairOptions extends SimLinkOptions {
  readonly from: string;
  readonly to: string;
}

export interface SimLinkPair {
  /** The end on `from` (the primary's, for the fabric). */
  readonly fromEnd: ReplicationLink;
  /** The end on `to`. */
  readonly toEnd: ReplicationLink;
  /** Breaks the connection as the transport would: both ends hear `reason` after the notice delay. */
  breakLink(reason: string): void;
  /**
   * The node died: its ends close at once and silently (its processes are gone, nobody there
   * hears anything); the other end hears `reason` after the notice delay.
   */
  dropNode(node: string, reason: string): void;
  readonly broken: boolean;
  /** Duplicates the network made and the receiver dropped (for tests). */
  readonly duplicatesDropped: number;
}

/** One end: delivers what arrives to its handler (queued until there is one) and notes the close. */
class SimLinkEnd implements ReplicationLink {
  private isClosed = false;
  private messageHandler: ((message: ReplicationMessage) => void) | undefined;
  private closeHandler: ((reason: string) => void) | undefined;
  private closeReason: string | undefined;
  private closeHeard = false;
  private drainScheduled = false;
  private firstMessageHook: ((message: ReplicationMessage) => void) | undefined;
  private readonly queue: ReplicationMessage[] = [];

  constructor(
    readonly node: string,
    private readonly connection: Connection,
  ) {}

  get closed(): boolean {
    return this.isClosed;
  }

  send(message: ReplicationMessage): void {
    if (!this.isClosed) this.connection.transmit(this, message);
  }

  onMessage(handler: (message: ReplicationMessage) => void): void {
    if (this.messageHandler !== undefined) throw new Error('onMessage set twice on a link');
    this.messageHandler = handler;
    if (this.queue.length === 0) return;
    // Not from inside this call: the owner finishes setting up before the backlog arrives.
    this.drainScheduled = true;
    this.connection.later(this.node, 0, () => this.drain());
  }

  onClose(handler: (reason: string) => void): void {
    if (this.closeHandler !== undefined) throw new Error('onClose set twice on a link');
    this.closeHandler = handler;
    if (this.closeReason !== undefined) this.connection.later(this.node, 0, () => this.hearClose());
  }

  close(reason: string): void {
    if (this.isClosed) return;
    this.shut(reason, true);
    this.connection.peerClosed(this, reason);
  }

  /** The next message goes to `hook` alone (the fabric reads REPL_OPEN this way). */
  interceptFirst(hook: (message: ReplicationMessage) => void): void {
    this.firstMessageHook = hook;
  }

  /** A message in order from the peer. */
  receive(message: ReplicationMessage): void {
    if (this.isClosed) return;
    const hook = this.firstMessageHook;
    if (hook !== undefined) {
      this.firstMessageHook = undefined;
      return hook(message);
    }
    this.queue.push(message);
    if (this.messageHandler !== undefined && !this.drainScheduled) this.drain();
  }

  /** Closes this end; `notify`: its owner hears it (not when its node crashed). */
  shut(reason: string, notify: boolean): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.queue.length = 0;
    if (!notify) {
      this.closeHeard = true;
      return;
    }
    this.closeReason = reason;
    if (this.closeHandler !== undefined)
      this.connection.later(this.node, 0, () => this.hearClose());
  }

  private drain(): void {
    this.drainScheduled = false;
    while (this.queue.length > 0 && !this.isClosed && this.messageHandler !== undefined) {
      this.messageHandler(this.queue.shift()!);
    }
  }

  private hearClose(): void {
    if (this.closeHeard || this.closeReason === undefined) return;
    this.closeHeard = true;
    this.closeHandler?.(this.closeReason);
  }
}

/** One direction of the stream: sequence numbers, and a reorder buffer at the receiver. */
interface Direction {
  readonly sender: SimLinkEnd;
  readonly receiver: SimLinkEnd;
  nextSend: number;
  nextDeliver: number;
  readonly arrived: Map<number, ReplicationMessage>;
}

class Connection implements SimLinkPair {
  readonly fromEnd: SimLinkEnd;
  readonly toEnd: SimLinkEnd;
  broken = false;
  duplicatesDropped = 0;
  private readonly forward: Direction;
  private readonly backward: Direction;
  private readonly closeNoticeMs: number;

  constructor(
    private readonly options: SimLinkPairOptions,
    private readonly onFinished: () => void,
  ) {
    this.closeNoticeMs = options.closeNoticeMs ?? 5;
    if (!(this.closeNoticeMs >= 0 && Number.isFinite(this.closeNoticeMs))) {
      throw new RangeError(`closeNoticeMs ${this.closeNoticeMs} is not a finite number >= 0`);
    }
    this.fromEnd = new SimLinkEnd(options.from, this);
    this.toEnd = new SimLinkEnd(options.to, this);
    const direction = (sender: SimLinkEnd, receiver: SimLinkEnd): Direction => ({
      sender,
      receiver,
      nextSend: 0,
      nextDeliver: 0,
      arrived: new Map(),
    });
    this.forward = direction(this.fromEnd, this.toEnd);
    this.backward = direction(this.toEnd, this.fromEnd);
  }

  /** Runs `callback` on `node` after `delayMs` of simulated time. */
  later(node: string, delayMs: number, callback: () => void): void {
    const runOn = this.options.runOn ?? ((_node, run) => run());
    this.options.clock.setTimeout(() => runOn(node, callback), delayMs);
  }

  transmit(sender: SimLinkEnd, message: ReplicationMessage): void {
    if (this.broken) return; // The connection is gone; the sender hears so shortly.
    const { network, clock } = this.options;
    const direction = sender === this.fromEnd ? this.forward : this.backward;
    const from = sender.node;
    const to = direction.receiver.node;
    const seq = direction.nextSend++;
    // The kernel copies what is sent: the sender may reuse a write's buffer at once.
    const copy = 'data' in message ? { ...message, data: Buffer.from(message.data) } : message;
    if (!network.reachable(from, to)) {
      this.breakLink(`connection to ${to} broke: partitioned`);
      return;
    }
    const delayMsMax = network.faults.delayMsMax;
    if (!network.send(from, to, () => this.arrive(direction, seq, copy))) {
      this.breakLink(`connection to ${to} broke: a message was lost`);
      return;
    }
    // The network delivers nothing across a partition that began meanwhile; a message still
    // missing after the longest delay was swallowed by one.
    clock.setTimeout(() => {
      if (direction.nextDeliver <= seq && !direction.arrived.has(seq)) {
        this.breakLink(`connection to ${to} broke: partitioned`);
      }
    }, delayMsMax + 1);
  }

  private arrive(direction: Direction, seq: number, message: ReplicationMessage): void {
    if (seq < direction.nextDeliver || direction.arrived.has(seq)) {
      this.duplicatesDropped++;
      return;
    }
    direction.arrived.set(seq, message);
    for (let next = direction.arrived.get(direction.nextDeliver); next !== undefined;) {
      direction.arrived.delete(direction.nextDeliver++);
      const receiver = direction.receiver;
      const delivered = next;
      (this.options.runOn ?? ((_node, run) => run()))(receiver.node, () =>
        receiver.receive(delivered),
      );
      next = direction.arrived.get(direction.nextDeliver);
    }
  }

  breakLink(reason: string): void {
    if (this.broken) return;
    this.broken = true;
    for (const end of [this.fromEnd, this.toEnd])
      this.later(end.node, this.closeNoticeMs, () => this.shutEnd(end, reason, true));
  }

  peerClosed(closer: SimLinkEnd, reason: string): void {
    this.finishIfShut();
    if (this.broken) return;
    this.broken = true;
    const other = closer === this.fromEnd ? this.toEnd : this.fromEnd;
    this.later(other.node, this.closeNoticeMs, () =>
      this.shutEnd(other, `closed by ${closer.node}: ${reason}`, true),
    );
  }

  dropNode(node: string, reason: string): void {
    const others: SimLinkEnd[] = [];
    for (const end of [this.fromEnd, this.toEnd]) {
      if (end.node === node) this.shutEnd(end, reason, false);
      else others.push(end);
    }
    if (others.length === 2) return; // Not a link of this node.
    this.broken = true;
    for (const end of others)
      this.later(end.node, this.closeNoticeMs, () => this.shutEnd(end, reason, true));
  }

  private shutEnd(end: SimLinkEnd, reason: string, notify: boolean): void {
    end.shut(reason, notify);
    this.finishIfShut();
  }

  private finishIfShut(): void {
    if (this.fromEnd.closed && this.toEnd.closed) this.onFinished();
  }
}

/** A connection between two nodes over the simulated network, as two ReplicationLink ends. */
export function simLinkPair(options: SimLinkPairOptions): SimLinkPair {
  return new Connection(options, () => undefined);
}

/**
 * What a node's replica server does with a link whose REPL_OPEN arrived: take it (the link then
 * delivers what follows REPL_OPEN), or refuse it with a reason, which closes it.
 */
export type SimLinkAcceptor = (open: ReplOpenInfo, link: ReplicationLink) => void | string;

/** The world's links between nodes, routed by REPL_OPEN to the acceptor each node registered. */
export class SimLinkFabric {
  private readonly acceptors = new Map<string, SimLinkAcceptor>();
  private readonly connections = new Set<Connection>();

  constructor(private readonly options: SimLinkOptions) {}

  /** Links not yet closed at both ends. */
  get openLinks(): number {
    return this.connections.size;
  }

  /** The replica server of `node` takes links from now on (again after a crash). */
  registerAcceptor(node: string, acceptor: SimLinkAcceptor): void {
    this.acceptors.set(node, acceptor);
  }

  unregisterAcceptor(node: string): void {
    this.acceptors.delete(node);
  }

  /** The LinkConnector a primary on `fromNode` uses. The target's address is not used: nodes route by name. */
  connect(fromNode: string): LinkConnector {
    return (target) => {
      const connection = new Connection({ ...this.options, from: fromNode, to: target.node }, () =>
        this.connections.delete(connection),
      );
      this.connections.add(connection);
      this.route(connection.toEnd, target);
      return connection.fromEnd;
    };
  }

  /**
   * The node crashed: its acceptor is gone and every link touching it breaks; its own ends close
   * silently, the far ends hear of it after the notice delay.
   */
  dropNode(node: string): void {
    this.acceptors.delete(node);
    for (const connection of [...this.connections]) {
      if (connection.fromEnd.node === node || connection.toEnd.node === node) {
        connection.dropNode(node, `${node} is down`);
      }
    }
  }

  /** Reads the first message on the replica's end and hands the end to the node's acceptor. */
  private route(end: SimLinkEnd, target: { volume: string; node: string }): void {
    end.interceptFirst((message) => {
      const open = openOf(message);
      if (typeof open === 'string') return end.close(open);
      if (open.volume !== target.volume) {
        return end.close(
          `REPL_OPEN names volume ${open.volume}, the link was opened for ${target.volume}`,
        );
      }
      const acceptor = this.acceptors.get(target.node);
      if (acceptor === undefined) return end.close(`no replica server on ${target.node}`);
      const refusal = acceptor(open, end);
      if (typeof refusal === 'string') end.close(refusal);
    });
  }
}

/**
 * The open request in a first message, or why it is not one; matched by type name, as in
 * tcp-link.ts, so that a message shaped like REPL_OPEN is taken whatever the union holds.
 */
function openOf(message: ReplicationMessage): ReplOpenInfo | string {
  const frame = message as { readonly type: string } & Partial<Record<keyof ReplOpenInfo, unknown>>;
  if (frame.type !== 'REPL_OPEN') return `the first message is ${frame.type}, expected REPL_OPEN`;
  const { volume, primaryNode, epoch } = frame;
  if (
    typeof volume !== 'string' ||
    typeof primaryNode !== 'string' ||
    !Number.isSafeInteger(epoch)
  ) {
    return 'REPL_OPEN without a volume, a primary node and an epoch';
  }
  return { volume, primaryNode, epoch: epoch as number };
}
