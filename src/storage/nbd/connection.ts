// One client connection: the greeting, option haggling under a deadline, then the transmission
// phase. Every way out goes through close paths that log a code and a reason, so a hostile or
// broken client ends its own connection and nothing else (CONVENTIONS.md item 12).
import type { Socket } from 'node:net';
import type { LoopPoll } from '../../platform/loop-poll.js';
import { receiveInSlabs } from '../../platform/slab-receive.js';
import type { Clock, Logger, TimerHandle } from '../../core/ports.js';
import { ByteQueue } from './byte-queue.js';
import { countClose, type NbdCounters } from './counters.js';
import type { NbdCloseCode } from './errors.js';
import type { NbdExportCatalog } from './exports.js';
import {
  answerOption,
  type HandshakeState,
  initialHandshakeState,
  type OptionOutcome,
} from './handshake.js';
import type { NbdLimits } from './limits.js';
import { encodeGreeting } from './option-codec.js';
import * as P from './protocol.js';
import { Transmission } from './transmission.js';

export interface ConnectionContext {
  readonly catalog: NbdExportCatalog;
  readonly limits: NbdLimits;
  readonly counters: NbdCounters;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly loopPoll: LoopPoll;
  onClosed(connection: NbdConnection): void;
}

const KNOWN_CLIENT_FLAGS = P.NBD_FLAG_C_FIXED_NEWSTYLE | P.NBD_FLAG_C_NO_ZEROES;

export class NbdConnection {
  private readonly socket: Socket;
  private readonly context: ConnectionContext;
  private readonly logger: Logger;
  private readonly queue = new ByteQueue();
  private state: HandshakeState | undefined;
  /** The option whose header has arrived and whose data has not (yet) all arrived. */
  private pendingOption: { option: number; lengthBytes: number; skipBytes: number } | undefined;
  private transmission: Transmission | undefined;
  private handshakeTimer: TimerHandle | undefined;
  private closed = false;

  constructor(socket: Socket, context: ConnectionContext, logger: Logger) {
    this.context = context;
    this.logger = logger;
    // The server accepts paused; from here what arrives comes in slab chunks (slab-receive.ts).
    socket = receiveInSlabs(socket);
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      this.logger.log('debug', 'socket error', { code: error.code, error: error.message });
    });
    socket.on('close', () => this.onClose());
    socket.write(encodeGreeting());
    this.handshakeTimer = context.clock.setTimeout(() => {
      const message = `no transmission phase after ${context.limits.handshakeTimeoutMs} ms`;
      this.closeFor('CONTINUUM_ERR_NBD_HANDSHAKE_TIMEOUT', message);
    }, context.limits.handshakeTimeoutMs);
  }

  get inTransmission(): boolean {
    return this.transmission !== undefined;
  }

  /** Server shutdown: handshakes end now; transmissions finish their requests, then end. */
  drain(): void {
    if (this.closed) return;
    if (this.transmission !== undefined) this.transmission.drain();
    else this.closeFor('CONTINUUM_ERR_NBD_SHUTDOWN', 'server shutting down during the handshake');
  }

  /** Cuts the connection now (server destroy, or the drain deadline passed). */
  destroy(message: string): void {
    if (!this.closed) this.closeFor('CONTINUUM_ERR_NBD_SHUTDOWN', message);
  }

  private onData(chunk: Buffer): void {
    // A throw here would be a server bug that this client's bytes reached. It must not take the
    // other connections down with it (the brief's rule for hostile input outranks crash-on-bug),
    // so it ends this connection and is logged with its stack.
    try {
      if (this.transmission !== undefined) return this.transmission.consume(chunk);
      if (this.closed) return;
      this.queue.push(chunk);
      this.haggle();
    } catch (error) {
      const stack = error instanceof Error ? (error.stack ?? error.message) : String(error);
      this.logger.log('error', 'NBD connection handler failed', { stack });
      this.closeFor('CONTINUUM_ERR_NBD_INTERNAL', 'internal error while handling input');
    }
  }

  private haggle(): void {
    while (!this.closed && this.transmission === undefined) {
      if (this.state === undefined) {
        if (this.queue.length < 4) return;
        const flags = this.queue.take(4).readUInt32BE(0);
        if ((flags & ~KNOWN_CLIENT_FLAGS) !== 0) {
          const message = `client flags 0x${flags.toString(16)} include flags not offered`;
          return this.closeFor('CONTINUUM_ERR_NBD_BAD_CLIENT_FLAGS', message);
        }
        this.state = initialHandshakeState((flags & P.NBD_FLAG_C_NO_ZEROES) !== 0);
        continue;
      }
      const pending = this.pendingOption;
      if (pending === undefined) {
        if (this.queue.length < P.OPTION_HEADER_BYTES) return;
        const header = this.queue.take(P.OPTION_HEADER_BYTES);
        if (!header.subarray(0, 8).equals(P.NBD_OPTS_MAGIC)) {
          const magic = header.subarray(0, 8).toString('hex');
          return this.closeFor('CONTINUUM_ERR_NBD_BAD_MAGIC', `option magic 0x${magic}`);
        }
        const lengthBytes = header.readUInt32BE(12);
        const oversized = lengthBytes > this.context.limits.optionBytesMax;
        const skipBytes = oversized ? lengthBytes : 0;
        this.pendingOption = { option: header.readUInt32BE(8), lengthBytes, skipBytes };
        continue;
      }
      let data: Buffer | undefined;
      if (pending.skipBytes > 0) {
        // An oversized option is dropped as it arrives rather than buffered.
        pending.skipBytes -= this.queue.skip(pending.skipBytes);
        if (pending.skipBytes > 0) return;
      } else {
        if (this.queue.length < pending.lengthBytes) return;
        data = this.queue.take(pending.lengthBytes);
      }
      this.pendingOption = undefined;
      const context = { catalog: this.context.catalog, limits: this.context.limits };
      this.apply(answerOption(pending.option, data, this.state, context));
    }
  }

  private apply(outcome: OptionOutcome): void {
    if (outcome.kind === 'close') return this.closeFor(outcome.error.code, outcome.error.message);
    this.writeAll(outcome.replies);
    if (outcome.kind === 'abort') return this.endGracefully();
    if (outcome.kind === 'continue') return;
    this.clearHandshakeTimer();
    const { session } = outcome;
    this.context.counters.handshakesCompleted++;
    this.logger.log('debug', 'transmission phase', {
      export: session.exportName,
      structuredReplies: session.structuredReplies,
      blockStatus: session.blockStatus,
    });
    this.transmission = new Transmission(this.socket, {
      session,
      limits: this.context.limits,
      counters: this.context.counters,
      logger: this.logger,
      loopPoll: this.context.loopPoll,
      onViolation: (error) => this.closeFor(error.code, error.message),
      onFinished: () => this.endGracefully(),
    });
    if (this.queue.length > 0) this.transmission.consume(this.queue.takeAll());
  }

  private writeAll(replies: readonly Buffer[]): void {
    if (!this.socket.writable) return;
    if (replies.length > 1) this.socket.cork();
    for (const reply of replies) this.socket.write(reply);
    if (replies.length > 1) this.socket.uncork();
  }

  /** Flushes what is queued, then closes: after NBD_OPT_ABORT, NBD_CMD_DISC or a drain. */
  private endGracefully(): void {
    this.clearHandshakeTimer();
    this.socket.pause();
    if (this.socket.writable) this.socket.end(() => this.socket.destroy());
    else this.socket.destroy();
  }

  private closeFor(code: NbdCloseCode, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.clearHandshakeTimer();
    countClose(this.context.counters, code);
    const quiet =
      code === 'CONTINUUM_ERR_NBD_SHUTDOWN' || code === 'CONTINUUM_ERR_NBD_HANDSHAKE_TIMEOUT';
    this.logger.log(quiet ? 'info' : 'warn', 'closing NBD connection', { code, reason });
    this.socket.destroy();
  }

  private clearHandshakeTimer(): void {
    if (this.handshakeTimer === undefined) return;
    this.context.clock.clearTimeout(this.handshakeTimer);
    this.handshakeTimer = undefined;
  }

  private onClose(): void {
    this.closed = true;
    this.clearHandshakeTimer();
    this.context.onClosed(this);
  }
}
