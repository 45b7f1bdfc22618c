// The transmission phase of one connection: the hot path's back half. Every request the parser
// (request-parser.ts) completes starts at once, up to the in-flight limits, where reading pauses
// until requests finish or the client reads its replies. Replies are corked: everything answered
// in one turn of the event loop leaves in one writev, read data included without a copy.
import type { Socket } from 'node:net';
import type { Logger } from '../../core/ports.js';
import type { LoopPoll } from '../../platform/loop-poll.js';
import type { Extent, WriteOptions, WriteZeroesOptions } from '../block-device.js';
import { countOp, type NbdCounters } from './counters.js';
import { errorReplyFor, type NbdProtocolError } from './errors.js';
import type { Session } from './exports.js';
import type { NbdLimits } from './limits.js';
import * as P from './protocol.js';
import {
  encodeBlockStatusChunk,
  encodeDoneChunk,
  encodeErrorChunk,
  encodeReadChunkHeader,
  encodeSimpleReply,
} from './replies.js';
import { givePayloadBuffer, takePayloadBuffer } from './payload-pool.js';
import { type ParsedRequest, RequestParser } from './request-parser.js';
import { canReadInto, canWritev } from './device-capabilities.js';
import { checkRequest } from './request-checks.js';

/** The socket calls the transmission makes; a test may pass a fake. */
export type TransmissionSocket = Pick<
  Socket,
  'write' | 'cork' | 'uncork' | 'writable' | 'writableLength' | 'pause' | 'resume' | 'on'
>;

export interface TransmissionContext {
  readonly session: Session;
  readonly limits: NbdLimits;
  readonly counters: NbdCounters;
  readonly logger: Logger;
  /**
   * Kicked after each batch of replies leaves: the client's next request is likely near. Held
   * over each device call while few requests are in flight: the call may end in the thread pool.
   */
  readonly loopPoll: Pick<LoopPoll, 'kick' | 'hold' | 'release'>;
  /** The client broke the protocol; the connection logs it and closes at once. */
  onViolation(error: NbdProtocolError): void;
  /** After NBD_CMD_DISC or a drain: every reply is queued, the connection may close. */
  onFinished(): void;
}

type Request = ParsedRequest;

const EMPTY = Buffer.alloc(0);
/** Reads this large go into pooled buffers when the device can read into one. */
const POOLED_READ_BYTES_MIN = 64 * 1024;
const FUA: WriteOptions = { fua: true };
const ZEROES: readonly WriteZeroesOptions[] = [
  { fua: false, mayTrim: true },
  { fua: true, mayTrim: true },
  { fua: false, mayTrim: false },
  { fua: true, mayTrim: false },
];

export class Transmission {
  private readonly socket: TransmissionSocket;
  private readonly context: TransmissionContext;
  private readonly parser: RequestParser;
  private readingPaused = false;
  private inFlight = 0;
  private inFlightBytes = 0;
  /** Requests still parsed are refused with ESHUTDOWN; the connection ends when idle. */
  private draining = false;
  private finished = false;
  /** Replies are being collected behind cork() until the flush queued with nextTick runs. */
  private corked = false;
  /** Replies queued behind the cork: the loop polls after small batches only (loop-poll.ts). */
  private batchReplies = 0;
  private readonly flushReplies = (): void => {
    this.corked = false;
    this.socket.uncork();
    this.context.loopPoll.kick(this.batchReplies);
  };

  constructor(socket: TransmissionSocket, context: TransmissionContext) {
    this.socket = socket;
    this.context = context;
    this.parser = new RequestParser({
      requestBytesMax: context.limits.requestBytesMax,
      vectoredWrites: canWritev(context.session.device),
      mustWait: () => this.mustWait(),
      onAccepted: (request) => {
        this.inFlight++;
        this.inFlightBytes += request.reservedBytes;
      },
      onRequest: (request) => this.start(request),
      onDisconnect: () => this.finishIfIdle(),
      onViolation: (error) => context.onViolation(error),
    });
    socket.on('drain', () => this.resumeReading());
  }

  /** Feeds bytes from the socket (the first call may carry bytes left over from the handshake). */
  consume(chunk: Buffer): void {
    this.parser.feed(chunk);
    if (this.parser.waiting && !this.readingPaused) {
      this.readingPaused = true;
      this.socket.pause();
    }
  }

  /** Server shutdown: finish what runs, refuse what comes, then let the connection close. */
  drain(): void {
    this.draining = true;
    this.finishIfIdle();
  }

  get requestsInFlight(): number {
    return this.inFlight;
  }

  private mustWait(): boolean {
    const { limits } = this.context;
    return (
      this.inFlight >= limits.inFlightRequestsMax ||
      this.inFlightBytes >= limits.inFlightBytesMax ||
      this.socket.writableLength > limits.replyQueueBytesMax
    );
  }

  private start(request: Request): void {
    this.context.counters.requests++;
    void this.execute(request);
  }

  /** Runs one request to its reply. Never rejects: every failure becomes an error reply. */
  private async execute(request: Request): Promise<void> {
    const { session, limits, counters } = this.context;
    const { type, offset, length, flags } = request;
    let held = false;
    try {
      if (this.draining) return this.replyError(request, P.NBD_ESHUTDOWN, 'server shutting down');
      const refusal = checkRequest(session, limits, request);
      if (refusal !== undefined) return this.replyError(request, refusal.errno, refusal.message);
      const device = session.device;
      held = this.context.loopPoll.hold(this.inFlight);
      const fua = (flags & P.NBD_CMD_FLAG_FUA) !== 0;
      switch (type) {
        case P.NBD_CMD_READ: {
          if (length >= POOLED_READ_BYTES_MIN && canReadInto(device)) {
            const buffer = takePayloadBuffer(length);
            await device.readInto(offset, buffer);
            counters.bytesRead += length;
            countOp(counters, session.exportName, 'read', length);
            return this.replyRead(request, buffer, true);
          }
          const data = length === 0 ? EMPTY : await device.read(offset, length);
          if (data.length !== length) {
            throw new Error(`device read ${data.length} of ${length} bytes`);
          }
          counters.bytesRead += length;
          countOp(counters, session.exportName, 'read', length);
          return this.replyRead(request, data, false);
        }
        case P.NBD_CMD_WRITE:
          if (request.parts !== undefined && canWritev(device)) {
            await device.writev(offset, request.parts, fua ? FUA : undefined);
          } else if (length > 0) await device.write(offset, request.data!, fua ? FUA : undefined);
          counters.bytesWritten += length;
          countOp(counters, session.exportName, 'write', length);
          return this.replyDone(request);
        case P.NBD_CMD_FLUSH:
          await device.flush();
          countOp(counters, session.exportName, 'flush');
          return this.replyDone(request);
        case P.NBD_CMD_TRIM:
          if (length > 0) await device.trim(offset, length, fua ? FUA : undefined);
          countOp(counters, session.exportName, 'trim');
          return this.replyDone(request);
        case P.NBD_CMD_WRITE_ZEROES: {
          const noHole = (flags & P.NBD_CMD_FLAG_NO_HOLE) !== 0;
          if (length > 0)
            await device.writeZeroes(offset, length, ZEROES[(noHole ? 2 : 0) + (fua ? 1 : 0)]);
          return this.replyDone(request);
        }
        case P.NBD_CMD_BLOCK_STATUS:
          return this.replyBlockStatus(request, await device.blockStatus(offset, length));
      }
    } catch (error) {
      const isWrite = type === P.NBD_CMD_WRITE || type === P.NBD_CMD_WRITE_ZEROES;
      const reply = errorReplyFor(error, isWrite);
      if (reply.unexpected) {
        this.context.logger.log('error', 'block device failed', {
          command: P.commandName(type),
          offset,
          length,
          error: reply.message,
        });
      }
      this.replyError(request, reply.errno, reply.message);
    } finally {
      this.context.loopPoll.release(held);
      this.finish(request);
    }
  }

  private finish(request: Request): void {
    this.inFlight--;
    this.inFlightBytes -= request.reservedBytes;
    if (request.pooled) givePayloadBuffer(request.data!);
    request.data = undefined;
    request.parts = undefined;
    if (this.parser.isStopped || this.draining) this.finishIfIdle();
    else if (this.readingPaused) this.resumeReading();
  }

  private finishIfIdle(): void {
    if (this.finished || this.inFlight > 0) return;
    this.finished = true;
    this.context.onFinished();
  }

  private resumeReading(): void {
    const { parser } = this;
    if (!this.readingPaused || parser.parsing || parser.isStopped || this.mustWait()) return;
    if (!parser.resume()) return;
    this.readingPaused = false;
    this.socket.resume();
  }

  /**
   * Queues one reply buffer (`startsReply` false: the data after a read's header); the first in a
   * turn corks the socket and schedules the flush.
   */
  private send(bytes: Buffer, sent?: () => void, startsReply = true): void {
    if (!this.corked) {
      this.corked = true;
      this.batchReplies = 0;
      this.socket.cork();
      // After the microtasks of this turn: every reply they produce joins the same writev.
      process.nextTick(this.flushReplies);
    }
    if (startsReply) this.batchReplies++;
    this.socket.write(bytes, sent);
  }

  private replyDone(request: Request): void {
    // A simple reply is allowed for any success without data, structured replies or not.
    if (this.socket.writable) this.send(encodeSimpleReply(request, 0));
  }

  private replyError(request: Request, errno: number, message: string): void {
    this.context.counters.errorReplies++;
    if (!this.socket.writable) return;
    const structured = this.context.session.structuredReplies;
    this.send(
      structured ? encodeErrorChunk(request, errno, message) : encodeSimpleReply(request, errno),
    );
  }

  /** `pooled`: the buffer goes back to the payload pool once the socket has sent it. */
  private replyRead(request: Request, data: Buffer, pooled: boolean): void {
    if (!this.socket.writable) return;
    const structured = this.context.session.structuredReplies;
    if (data.length === 0) {
      this.send(structured ? encodeDoneChunk(request) : encodeSimpleReply(request, 0));
      return;
    }
    this.send(
      structured
        ? encodeReadChunkHeader(request, request.offset, data.length)
        : encodeSimpleReply(request, 0),
    );
    if (!pooled) return this.send(data, undefined, false);
    // The one closure per request on this path: it hands the buffer back after the writev.
    this.send(data, () => givePayloadBuffer(data), false);
  }

  private replyBlockStatus(request: Request, extents: readonly Extent[]): void {
    const { limits } = this.context;
    const extentsMax =
      (request.flags & P.NBD_CMD_FLAG_REQ_ONE) !== 0 ? 1 : limits.blockStatusExtentsMax;
    const chunk = encodeBlockStatusChunk(request, extents, {
      lengthBytes: request.length,
      extentsMax,
    });
    if (chunk === undefined)
      return this.replyError(request, P.NBD_EIO, 'device reported no extents');
    if (this.socket.writable) this.send(chunk);
  }
}
