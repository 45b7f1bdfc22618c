// The transmission phase's request parser: the hot path's front half. Headers are parsed in place
// in the socket's chunk; a header split across chunks is completed in a 28-byte scratch buffer, so
// nothing is ever concatenated. A write payload that arrives whole is a slice of its chunk; one that
// spans chunks is kept as chunk slices for a device with writev, or gathered into a pooled buffer.
// When the transmission says it must wait (in-flight limits), the unparsed rest is parked.
import { NbdProtocolError } from './errors.js';
import { readUint64 } from './option-codec.js';
import { takePayloadBuffer } from './payload-pool.js';
import * as P from './protocol.js';
import type { ReplyTarget } from './replies.js';

export interface ParsedRequest extends ReplyTarget {
  readonly type: number;
  readonly flags: number;
  readonly offset: number;
  readonly length: number;
  /** Payload bytes counted against inFlightBytesMax while the request runs. */
  readonly reservedBytes: number;
  data: Buffer | undefined;
  /** A write payload left in the socket's chunks, for a device with writev. */
  parts: Buffer[] | undefined;
  /** `data` came from the payload pool and goes back when the request is done. */
  pooled: boolean;
}

export interface ParserHooks {
  readonly requestBytesMax: number;
  /** The device takes payloads as parts (device-capabilities.ts). */
  readonly vectoredWrites: boolean;
  /** Asked before each header; true parks the rest of the bytes until resume(). */
  mustWait(): boolean;
  /** A header was accepted; its payload may still be on its way. */
  onAccepted(request: ParsedRequest): void;
  /** The request and its payload are complete. */
  onRequest(request: ParsedRequest): void;
  onDisconnect(): void;
  onViolation(error: NbdProtocolError): void;
}

/**
 * A spanning payload is kept as chunk slices while it has at most PAYLOAD_PARTS_MAX parts and the
 * chunks they keep alive add up to at most twice the payload plus two whole chunks (the head and
 * tail chunks are shared with neighbouring requests). A slice pins its whole chunk, so without the
 * bound a client could pin far more memory than inFlightBytesMax counts. Past it, the payload is
 * gathered by copying. A chunk counts as the buffer behind it (a receive slab, 256 KiB at most),
 * since a slice keeps all of that alive.
 */
const PAYLOAD_PARTS_MAX = 1024;
const PAYLOAD_SLACK_BYTES = 128 * 1024;

export class RequestParser {
  private readonly hooks: ParserHooks;
  private readonly header = Buffer.allocUnsafe(P.REQUEST_HEADER_BYTES);
  private headerFill = 0;
  /** A write payload that spans socket chunks: its request, and its parts or its gathered copy. */
  private payloadRequest: ParsedRequest | undefined;
  private payloadFill = 0;
  private payloadParts: Buffer[] | undefined;
  /** Bytes of the socket chunks that payloadParts keep alive. */
  private payloadPinned = 0;
  private payload: Buffer | undefined;
  /** Bytes received while parsing waited, parsed by resume(). */
  private parked: Buffer | undefined;
  private stopped = false;
  /** Inside parse(): hooks that finish requests synchronously must not re-enter it. */
  parsing = false;

  constructor(hooks: ParserHooks) {
    this.hooks = hooks;
  }

  /** True while bytes are parked because the transmission had to wait. */
  get waiting(): boolean {
    return this.parked !== undefined;
  }

  /** No more requests after NBD_CMD_DISC or a violation; later bytes are dropped. */
  get isStopped(): boolean {
    return this.stopped;
  }

  feed(chunk: Buffer): void {
    if (this.stopped) return;
    if (this.parked !== undefined) {
      // Only reachable if a chunk was already on its way when parsing parked.
      this.parked = Buffer.concat([this.parked, chunk]);
      return;
    }
    this.parse(chunk, 0);
  }

  /** Parses what was parked; returns true if nothing is parked any more. */
  resume(): boolean {
    const parked = this.parked;
    this.parked = undefined;
    if (parked !== undefined) this.parse(parked, 0);
    return this.parked === undefined;
  }

  private parse(chunk: Buffer, start: number): void {
    this.parsing = true;
    try {
      let at = start;
      while (at < chunk.length && !this.stopped) {
        if (this.payloadRequest !== undefined) {
          at = this.fillPayload(chunk, at);
          continue;
        }
        if (this.hooks.mustWait()) {
          this.parked = chunk.subarray(at);
          return;
        }
        let source = chunk;
        let base = at;
        if (this.headerFill === 0 && chunk.length - at >= P.REQUEST_HEADER_BYTES) {
          at += P.REQUEST_HEADER_BYTES;
        } else {
          const take = Math.min(P.REQUEST_HEADER_BYTES - this.headerFill, chunk.length - at);
          chunk.copy(this.header, this.headerFill, at, at + take);
          this.headerFill += take;
          at += take;
          if (this.headerFill < P.REQUEST_HEADER_BYTES) return;
          this.headerFill = 0;
          source = this.header;
          base = 0;
        }
        at = this.onHeader(source, base, chunk, at);
      }
    } finally {
      this.parsing = false;
    }
  }

  /** Handles one complete header; returns where parsing goes on in `chunk`. */
  private onHeader(source: Buffer, base: number, chunk: Buffer, at: number): number {
    if (source.readUInt32BE(base) !== P.NBD_REQUEST_MAGIC) {
      const magic = source.readUInt32BE(base).toString(16);
      return this.violate('CONTINUUM_ERR_NBD_BAD_MAGIC', `request magic 0x${magic}`);
    }
    const type = source.readUInt16BE(base + 6);
    const length = source.readUInt32BE(base + 24);
    if (type === P.NBD_CMD_DISC) {
      this.stopped = true;
      this.hooks.onDisconnect();
      return Infinity;
    }
    const max = this.hooks.requestBytesMax;
    if (type === P.NBD_CMD_WRITE && length > max) {
      const message = `write payload of ${length} bytes exceeds requestBytesMax ${max}`;
      return this.violate('CONTINUUM_ERR_NBD_PAYLOAD_TOO_LARGE', message);
    }
    const carriesData = type === P.NBD_CMD_READ || type === P.NBD_CMD_WRITE;
    const request: ParsedRequest = {
      type,
      flags: source.readUInt16BE(base + 4),
      handleHigh: source.readUInt32BE(base + 8),
      handleLow: source.readUInt32BE(base + 12),
      offset: readUint64(source, base + 16),
      length,
      reservedBytes: carriesData ? Math.min(length, max) : 0,
      data: undefined,
      parts: undefined,
      pooled: false,
    };
    this.hooks.onAccepted(request);
    if (type !== P.NBD_CMD_WRITE) {
      this.hooks.onRequest(request);
      return at;
    }
    if (chunk.length - at >= length) {
      request.data = chunk.subarray(at, at + length);
      this.hooks.onRequest(request);
      return at + length;
    }
    this.payloadRequest = request;
    this.payloadFill = 0;
    this.payloadPinned = 0;
    if (this.hooks.vectoredWrites) this.payloadParts = [];
    else this.payload = takePayloadBuffer(length);
    return at;
  }

  private fillPayload(chunk: Buffer, at: number): number {
    const request = this.payloadRequest!;
    const take = Math.min(request.length - this.payloadFill, chunk.length - at);
    const parts = this.payloadParts;
    // A slice keeps its whole backing buffer alive: a slab of slab-receive.ts, not just the chunk.
    const pinned = this.payloadPinned + chunk.buffer.byteLength;
    const affordable = pinned <= 2 * request.length + PAYLOAD_SLACK_BYTES;
    if (parts !== undefined && parts.length < PAYLOAD_PARTS_MAX && affordable) {
      parts.push(chunk.subarray(at, at + take));
      this.payloadPinned = pinned;
    } else {
      if (this.payload === undefined) {
        // Too many or too small parts: gather what came so far and copy from now on.
        this.payload = takePayloadBuffer(request.length);
        let filled = 0;
        for (const part of parts ?? []) filled += part.copy(this.payload, filled);
        this.payloadParts = undefined;
      }
      chunk.copy(this.payload, this.payloadFill, at, at + take);
    }
    this.payloadFill += take;
    if (this.payloadFill === request.length) {
      if (this.payloadParts !== undefined) request.parts = this.payloadParts;
      else {
        request.data = this.payload;
        request.pooled = true;
      }
      this.payloadRequest = undefined;
      this.payloadParts = undefined;
      this.payload = undefined;
      this.hooks.onRequest(request);
    }
    return at + take;
  }

  private violate(
    code: 'CONTINUUM_ERR_NBD_BAD_MAGIC' | 'CONTINUUM_ERR_NBD_PAYLOAD_TOO_LARGE',
    message: string,
  ): number {
    this.stopped = true;
    this.hooks.onViolation(new NbdProtocolError(code, message));
    return Infinity;
  }
}
