// One replication link over one TCP socket (docs/replication.md): a SocketLink carries
// ReplicationMessages both ways, framed by wire.ts and decoded by FrameDecoder. Every way a link
// ends (the peer closes, the socket fails, a malformed frame, a peer that stops reading, a local
// close) goes through one close path that records the first reason and tells the owner once, so a
// broken or hostile peer ends its own connection and nothing else (CONVENTIONS.md item 12). How a
// socket comes to be is tcp-link.ts: connectLink for the primary, ReplicationListener for the
// replica's node.
import type { Socket } from 'node:net';
import { type Logger, silentLogger } from '../../core/ports.js';
import { type LoopPoll, noLoopPoll } from '../../platform/loop-poll.js';
import type { ReplicationLink } from './types.js';
import { encode, replicationMessageBytesMax, type ReplicationMessage } from './wire.js';
import { FrameDecoder } from './wire-decode.js';

const MiB = 2 ** 20;
/**
 * Bytes a link may hold for a peer that does not read, before the link gives up on it. A replica
 * that falls this far behind is unresponsive; closing its link lets the primary report it rather
 * than buffer without end. The primary's own back-pressure (replicationInFlightMax) normally keeps
 * the queue far below this.
 */
export const linkQueuedBytesMax = 256 * MiB;
/** How long a link closed locally lets the peer take its last bytes before cutting the socket. */
export const linkCloseLingerMs = 5_000;
/** Idle time before TCP keep-alive probes start, so a vanished peer is noticed without traffic. */
export const linkKeepAliveDelayMs = 10_000;

export interface SocketLinkOptions {
  readonly logger?: Logger;
  /** Default linkQueuedBytesMax. */
  readonly queuedBytesMax?: number;
  /** Largest frame either way, header included (default replicationMessageBytesMax). */
  readonly messageBytesMax?: number;
  /** For a socket still connecting: how long it may take (default: no limit of its own). */
  readonly connectTimeoutMs?: number;
  /** Who the peer is, for reasons and logs (default: the socket's remote address). */
  readonly peer?: string;
  /**
   * When the frames sent in one turn leave, in one writev: 'check' (the default) in the check
   * phase, after every callback of the poll phase, which gathers the acks of a whole batch of
   * writes; 'microtask' once the code running now and its promise reactions are done, which
   * gathers the frames of one batch of client requests without waiting for the rest of the turn.
   */
  readonly sendBatch?: 'check' | 'microtask';
  /**
   * Kicked after each batch of frames leaves, so that the loop is awake for the peer's answer
   * (platform/loop-poll.ts). Default: none.
   */
  readonly loopPoll?: Pick<LoopPoll, 'kick'>;
  /**
   * The decoder that already read the start of the stream (the listener's, which read REPL_OPEN),
   * with the messages it decoded after that frame: the link continues from exactly there.
   */
  readonly continueFrom?: {
    readonly decoder: FrameDecoder;
    readonly messages: readonly ReplicationMessage[];
  };
}

/**
 * A ReplicationLink over a socket. Messages received before `onMessage` is set are held and the
 * socket is paused meanwhile, so at most one chunk's worth is ever held. `send` writes in order;
 * what the socket could not pass to the kernel yet counts against `queuedBytesMax`. A REPL_WRITE's
 * data is written without a copy, so its buffer must not be reused by the sender afterwards.
 */
export class SocketLink implements ReplicationLink {
  readonly peer: string;
  private readonly logger: Logger;
  private readonly queuedBytesMax: number;
  private readonly messageBytesMax: number;
  private readonly decoder: FrameDecoder;
  private readonly held: ReplicationMessage[] = [];
  private messageHandler: ((message: ReplicationMessage) => void) | undefined;
  private closeHandler: ((reason: string) => void) | undefined;
  private closeReason: string | undefined;
  /**
   * The peer ended the stream cleanly while messages were still held for an owner not yet
   * listening: the close waits behind them, so a REPL_FENCED followed by a close is not lost.
   */
  private endBehindHeld: string | undefined;
  private established: boolean;
  private connectTimer: NodeJS.Timeout | undefined;
  private lingerTimer: NodeJS.Timeout | undefined;
  /** Frames sent in one batch wait behind cork() until the uncork queued by the first runs. */
  private corked = false;
  private readonly sendBatch: 'check' | 'microtask';
  private readonly loopPoll: Pick<LoopPoll, 'kick'>;
  /** Messages in the batch behind the cork: the loop polls after small batches only. */
  private batchMessages = 0;
  private readonly uncork = (): void => {
    this.corked = false;
    this.socket.uncork();
    this.loopPoll.kick(this.batchMessages);
  };

  constructor(
    private readonly socket: Socket,
    options: SocketLinkOptions = {},
  ) {
    this.queuedBytesMax = checkWhole(
      'queuedBytesMax',
      options.queuedBytesMax ?? linkQueuedBytesMax,
      1,
    );
    this.messageBytesMax = options.messageBytesMax ?? replicationMessageBytesMax;
    this.sendBatch = options.sendBatch ?? 'check';
    this.loopPoll = options.loopPoll ?? noLoopPoll;
    this.decoder =
      options.continueFrom?.decoder ?? new FrameDecoder({ messageBytesMax: this.messageBytesMax });
    this.held.push(...(options.continueFrom?.messages ?? []));
    this.peer = options.peer ?? `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    this.logger = (options.logger ?? silentLogger).child({ peer: this.peer });
    this.established = !socket.connecting;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, linkKeepAliveDelayMs);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('error', (error) => this.onError(error));
    socket.on('close', () => this.onSocketClose());
    if (socket.connecting) {
      socket.once('connect', () => this.onConnect());
      if (options.connectTimeoutMs !== undefined) {
        const timeoutMs = checkWhole('connectTimeoutMs', options.connectTimeoutMs, 1);
        this.connectTimer = setTimeout(() => {
          this.finish(`connect to ${this.peer} timed out after ${timeoutMs} ms`, 'abort');
        }, timeoutMs);
      }
    }
    if (this.held.length > 0) socket.pause();
  }

  get closed(): boolean {
    return this.closeReason !== undefined;
  }

  /** Bytes sent and not yet passed to the kernel (counted against queuedBytesMax). */
  get queuedBytes(): number {
    return this.socket.writableLength;
  }

  send(message: ReplicationMessage): void {
    if (this.closeReason !== undefined) return;
    // A message the format cannot carry is the sender's bug: encode throws it back at the caller.
    const parts = encode(message, { messageBytesMax: this.messageBytesMax });
    const frameBytes = parts.reduce((sum, part) => sum + part.length, 0);
    const queued = this.socket.writableLength;
    if (queued + frameBytes > this.queuedBytesMax) {
      const what = `${queued} bytes queued for ${this.peer} and a ${frameBytes}-byte ${message.type}`;
      this.finish(
        `${what} exceed linkQueuedBytesMax ${this.queuedBytesMax}: the peer is not reading`,
        'abort',
      );
      return;
    }
    // Corked until the batch is complete (sendBatch): the frames of one batch of requests, or the
    // acks of every write finished in this turn, leave in one writev. (A nextTick uncork ran
    // after each finished write's callback: one ack each.)
    if (!this.corked) {
      this.corked = true;
      this.batchMessages = 0;
      this.socket.cork();
      if (this.sendBatch === 'check') setImmediate(this.uncork);
      else queueMicrotask(this.uncork);
    }
    this.batchMessages++;
    for (const part of parts) this.socket.write(part);
  }

  onMessage(handler: (message: ReplicationMessage) => void): void {
    if (this.messageHandler !== undefined) throw new Error('SocketLink: onMessage set twice');
    this.messageHandler = handler;
    for (const message of this.held.splice(0)) {
      if (this.closeReason !== undefined) return;
      handler(message);
    }
    if (this.endBehindHeld !== undefined) this.finish(this.endBehindHeld, 'end');
    if (this.closeReason === undefined) this.socket.resume();
  }

  onClose(handler: (reason: string) => void): void {
    if (this.closeHandler !== undefined) throw new Error('SocketLink: onClose set twice');
    this.closeHandler = handler;
    const reason = this.closeReason;
    // Closed already: still told, but not from inside this call, where the owner is mid-setup.
    if (reason !== undefined) queueMicrotask(() => handler(reason));
  }

  /** Drain: what was sent still goes out, then the connection ends; nothing more is delivered. */
  close(reason: string): void {
    this.finish(reason, 'end');
  }

  /** Abort: the connection is cut now and what was queued is dropped. */
  destroy(reason: string): void {
    this.finish(reason, 'abort');
  }

  private onConnect(): void {
    this.established = true;
    clearTimeout(this.connectTimer);
    this.logger.log('debug', 'replication link connected');
  }

  private onData(chunk: Buffer): void {
    if (this.closeReason !== undefined) return;
    let messages: ReplicationMessage[];
    try {
      messages = this.decoder.push(chunk);
    } catch (error) {
      this.finish(`malformed frame: ${(error as Error).message}`, 'abort', 'warn');
      return;
    }
    const handler = this.messageHandler;
    if (handler === undefined) {
      this.held.push(...messages);
      if (this.held.length > 0) this.socket.pause();
      return;
    }
    for (const message of messages) {
      if (this.closeReason !== undefined) return;
      handler(message);
    }
  }

  private onEnd(): void {
    if (this.closeReason !== undefined) return;
    try {
      this.decoder.end();
    } catch (error) {
      const what = (error as Error).message;
      this.finish(`${this.peer} closed the connection inside a frame: ${what}`, 'abort', 'warn');
      return;
    }
    const reason = `${this.peer} closed the connection`;
    if (this.messageHandler === undefined && this.held.length > 0) this.endBehindHeld = reason;
    else this.finish(reason, 'end');
  }

  private onError(error: NodeJS.ErrnoException): void {
    const what = this.established ? 'connection error' : `connect to ${this.peer} failed`;
    this.finish(`${what}: ${error.message}`, 'abort');
  }

  private onSocketClose(): void {
    clearTimeout(this.lingerTimer);
    if (this.endBehindHeld !== undefined) return;
    this.finish(`connection to ${this.peer} closed`, 'abort');
  }

  /** The one way a link ends: the first reason wins, and the owner hears it once. */
  private finish(reason: string, how: 'end' | 'abort', level: 'info' | 'warn' = 'info'): void {
    if (this.closeReason !== undefined) return;
    this.closeReason = reason;
    this.held.length = 0;
    clearTimeout(this.connectTimer);
    if (how === 'abort' || this.socket.connecting || this.socket.destroyed) {
      this.socket.destroy();
    } else {
      this.socket.end();
      this.socket.resume();
      this.lingerTimer = setTimeout(() => this.socket.destroy(), linkCloseLingerMs);
      this.lingerTimer.unref();
    }
    this.logger.log(level, 'replication link closed', { reason });
    this.closeHandler?.(reason);
  }
}

/** Options are checked as they enter (CONVENTIONS.md item 9); the message names the value. */
export function checkWhole(name: string, value: number, min: number): number {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new RangeError(
      `replication link ${name}: expected a whole number of at least ${min}, got ${String(value)}`,
    );
  }
  return value;
}
