// A small NBD client for tests and probes: fixed newstyle handshake with NBD_OPT_GO (or
// EXPORT_NAME), optional structured replies and base:allocation, then pipelined requests matched
// to replies by handle. The integration tests use it as the well-behaved client that must keep
// working while the fuzzer attacks the same server.
import { connect, type Socket } from 'node:net';
import type { Extent } from '../block-device.js';
import { encodeString, readUint64, writeUint64 } from './option-codec.js';
import * as P from './protocol.js';
import type { NbdAddress } from './server.js';
import { SocketReader } from './socket-reader.js';

export interface NbdClientOptions {
  readonly exportName?: string;
  readonly structuredReplies?: boolean;
  readonly blockStatus?: boolean;
  /** Use the old NBD_OPT_EXPORT_NAME instead of NBD_OPT_GO. */
  readonly exportNameOption?: boolean;
}

/** An error reply from the server: `errno` is the NBD error value. */
export class NbdReplyError extends Error {
  readonly errno: number;
  constructor(errno: number, message: string) {
    super(message);
    this.errno = errno;
  }
}

interface Pending {
  readonly type: number;
  readonly length: number;
  resolve(value: { data?: Buffer; extents?: Extent[] }): void;
  reject(error: Error): void;
}

export async function openSocket(address: NbdAddress): Promise<Socket> {
  const socket =
    address.kind === 'unix' ? connect(address.socketPath) : connect(address.port, address.host);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.setNoDelay(true);
  return socket;
}

export function encodeOption(option: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.allocUnsafe(16);
  P.NBD_OPTS_MAGIC.copy(header, 0);
  header.writeUInt32BE(option, 8);
  header.writeUInt32BE(data.length, 12);
  return Buffer.concat([header, data]);
}

/** Reads one option reply: its type and payload. */
export async function readOptionReply(
  reader: SocketReader,
): Promise<{ type: number; data: Buffer }> {
  const header = await reader.read(20);
  const length = header.readUInt32BE(16);
  return {
    type: header.readUInt32BE(12),
    data: length > 0 ? await reader.read(length) : Buffer.alloc(0),
  };
}

export class NbdClient {
  sizeBytes = 0;
  transmissionFlags = 0;
  /** [minimum, preferred, maximum] from NBD_INFO_BLOCK_SIZE, if the server sent it. */
  blockSizes: [number, number, number] | undefined;
  readonly socket: Socket;
  private readonly reader: SocketReader;
  private readonly pending = new Map<number, Pending>();
  private nextHandle = 1;
  private structured = false;
  private failure: Error | undefined;

  private constructor(socket: Socket) {
    this.socket = socket;
    this.reader = new SocketReader(socket);
  }

  static async connect(address: NbdAddress, options: NbdClientOptions = {}): Promise<NbdClient> {
    const client = new NbdClient(await openSocket(address));
    try {
      await client.handshake(options);
    } catch (error) {
      client.socket.destroy();
      throw error;
    }
    void client.readReplies();
    return client;
  }

  private async handshake(options: NbdClientOptions): Promise<void> {
    const greeting = await this.reader.read(18);
    if (!greeting.subarray(0, 8).equals(P.NBD_INIT_MAGIC)) throw new Error('not an NBD server');
    this.socket.write(Buffer.from([0, 0, 0, P.NBD_FLAG_C_FIXED_NEWSTYLE | P.NBD_FLAG_C_NO_ZEROES]));
    const name = encodeString(options.exportName ?? '');
    if (options.structuredReplies === true || options.blockStatus === true) {
      this.socket.write(encodeOption(P.NBD_OPT_STRUCTURED_REPLY));
      if ((await readOptionReply(this.reader)).type !== P.NBD_REP_ACK)
        throw new Error('no structured replies');
      this.structured = true;
    }
    if (options.blockStatus === true) {
      const query = Buffer.from(P.BASE_ALLOCATION);
      const data = Buffer.alloc(12 + name.length + query.length);
      data.writeUInt32BE(name.length, 0);
      name.copy(data, 4);
      data.writeUInt32BE(1, 4 + name.length);
      data.writeUInt32BE(query.length, 8 + name.length);
      query.copy(data, 12 + name.length);
      this.socket.write(encodeOption(P.NBD_OPT_SET_META_CONTEXT, data));
      for (let reply = await readOptionReply(this.reader); reply.type !== P.NBD_REP_ACK;) {
        if (reply.type !== P.NBD_REP_META_CONTEXT)
          throw new Error(`SET_META_CONTEXT: reply ${reply.type}`);
        reply = await readOptionReply(this.reader);
      }
    }
    if (options.exportNameOption === true) {
      this.socket.write(encodeOption(P.NBD_OPT_EXPORT_NAME, name));
      const reply = await this.reader.read(10);
      this.sizeBytes = readUint64(reply, 0);
      this.transmissionFlags = reply.readUInt16BE(8);
      return;
    }
    const data = Buffer.alloc(8 + name.length);
    data.writeUInt32BE(name.length, 0);
    name.copy(data, 4);
    data.writeUInt16BE(1, 4 + name.length);
    data.writeUInt16BE(P.NBD_INFO_BLOCK_SIZE, 6 + name.length);
    this.socket.write(encodeOption(P.NBD_OPT_GO, data));
    for (;;) {
      const reply = await readOptionReply(this.reader);
      if (reply.type === P.NBD_REP_ACK) return;
      if (reply.type !== P.NBD_REP_INFO) {
        throw new NbdReplyError(reply.type, `NBD_OPT_GO refused: ${reply.data.toString()}`);
      }
      const info = reply.data.readUInt16BE(0);
      if (info === P.NBD_INFO_EXPORT) {
        this.sizeBytes = readUint64(reply.data, 2);
        this.transmissionFlags = reply.data.readUInt16BE(10);
      } else if (info === P.NBD_INFO_BLOCK_SIZE) {
        const d = reply.data;
        this.blockSizes = [d.readUInt32BE(2), d.readUInt32BE(6), d.readUInt32BE(10)];
      }
    }
  }

  read(offset: number, length: number, flags = 0): Promise<Buffer> {
    return this.request(P.NBD_CMD_READ, { offset, length, flags }).then((r) => r.data!);
  }

  async write(offset: number, data: Buffer, options: { fua?: boolean } = {}): Promise<void> {
    const flags = options.fua === true ? P.NBD_CMD_FLAG_FUA : 0;
    await this.request(P.NBD_CMD_WRITE, { offset, length: data.length, flags, data });
  }

  async flush(): Promise<void> {
    await this.request(P.NBD_CMD_FLUSH, { offset: 0, length: 0, flags: 0 });
  }

  async trim(offset: number, length: number): Promise<void> {
    await this.request(P.NBD_CMD_TRIM, { offset, length, flags: 0 });
  }

  async writeZeroes(
    offset: number,
    length: number,
    options: { noHole?: boolean } = {},
  ): Promise<void> {
    const flags = options.noHole === true ? P.NBD_CMD_FLAG_NO_HOLE : 0;
    await this.request(P.NBD_CMD_WRITE_ZEROES, { offset, length, flags });
  }

  async blockStatus(
    offset: number,
    length: number,
    options: { reqOne?: boolean } = {},
  ): Promise<Extent[]> {
    const flags = options.reqOne === true ? P.NBD_CMD_FLAG_REQ_ONE : 0;
    return (await this.request(P.NBD_CMD_BLOCK_STATUS, { offset, length, flags })).extents!;
  }

  /** Any request, valid or not, for tests of the server's checks. */
  request(
    type: number,
    fields: { offset: number; length: number; flags: number; data?: Buffer },
  ): Promise<{ data?: Buffer; extents?: Extent[] }> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const handle = this.nextHandle++;
    const header = Buffer.allocUnsafe(P.REQUEST_HEADER_BYTES);
    header.writeUInt32BE(P.NBD_REQUEST_MAGIC, 0);
    header.writeUInt16BE(fields.flags, 4);
    header.writeUInt16BE(type, 6);
    header.writeUInt32BE(0, 8);
    header.writeUInt32BE(handle, 12);
    writeUint64(header, fields.offset, 16);
    header.writeUInt32BE(fields.length, 24);
    const done = new Promise<{ data?: Buffer; extents?: Extent[] }>((resolve, reject) => {
      this.pending.set(handle, { type, length: fields.length, resolve, reject });
    });
    this.socket.write(fields.data === undefined ? header : Buffer.concat([header, fields.data]));
    return done;
  }

  /** NBD_CMD_DISC, then waits for the server to close the connection. */
  async disconnect(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.socket.once('close', () => resolve()));
    const header = Buffer.alloc(P.REQUEST_HEADER_BYTES);
    header.writeUInt32BE(P.NBD_REQUEST_MAGIC, 0);
    header.writeUInt16BE(P.NBD_CMD_DISC, 6);
    if (!this.socket.destroyed) this.socket.write(header);
    await closed;
  }

  private async readReplies(): Promise<void> {
    try {
      for (;;) await this.readReply();
    } catch (error) {
      this.failure = error instanceof Error ? error : new Error(String(error));
      for (const pending of this.pending.values()) pending.reject(this.failure);
      this.pending.clear();
    }
  }

  private async readReply(): Promise<void> {
    const magic = (await this.reader.read(4)).readUInt32BE(0);
    if (magic === P.NBD_SIMPLE_REPLY_MAGIC) {
      const rest = await this.reader.read(12);
      const errno = rest.readUInt32BE(0);
      const pending = this.take(rest.readUInt32BE(8));
      if (errno !== 0) return pending.reject(new NbdReplyError(errno, `error ${errno}`));
      const data =
        pending.type === P.NBD_CMD_READ ? await this.reader.read(pending.length) : undefined;
      return pending.resolve({ data });
    }
    if (magic !== P.NBD_STRUCTURED_REPLY_MAGIC)
      throw new Error(`bad reply magic 0x${magic.toString(16)}`);
    const rest = await this.reader.read(16);
    const flags = rest.readUInt16BE(0);
    const type = rest.readUInt16BE(2);
    const handle = rest.readUInt32BE(8);
    const payload = await this.reader.read(rest.readUInt32BE(12));
    const pending = this.pending.get(handle);
    if (pending === undefined) throw new Error(`reply for unknown handle ${handle}`);
    if ((flags & P.NBD_REPLY_FLAG_DONE) === 0)
      throw new Error('multi-chunk replies are not expected');
    this.pending.delete(handle);
    if (type === P.NBD_REPLY_TYPE_ERROR) {
      const errno = payload.readUInt32BE(0);
      const message = payload.subarray(6, 6 + payload.readUInt16BE(4)).toString();
      return pending.reject(new NbdReplyError(errno, message));
    }
    if (type === P.NBD_REPLY_TYPE_OFFSET_DATA)
      return pending.resolve({ data: payload.subarray(8) });
    if (type === P.NBD_REPLY_TYPE_NONE) return pending.resolve({ data: Buffer.alloc(0) });
    if (type !== P.NBD_REPLY_TYPE_BLOCK_STATUS) throw new Error(`unexpected chunk type ${type}`);
    const extents: Extent[] = [];
    for (let at = 4; at < payload.length; at += 8) {
      const state = payload.readUInt32BE(at + 4);
      const hole = (state & P.NBD_STATE_HOLE) !== 0;
      extents.push({
        lengthBytes: payload.readUInt32BE(at),
        hole,
        zero: (state & P.NBD_STATE_ZERO) !== 0,
      });
    }
    pending.resolve({ extents });
  }

  private take(handle: number): Pending {
    const pending = this.pending.get(handle);
    if (pending === undefined) throw new Error(`reply for unknown handle ${handle}`);
    this.pending.delete(handle);
    return pending;
  }
}
