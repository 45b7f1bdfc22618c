// The replication wire format: the layout byte by byte, a round trip of every message, streams cut
// at every byte and at random, every malformed frame refused with where and what, and a seeded fuzz
// in which the decoder only ever throws ContinuumError and every frame it accepts re-encodes to the
// same bytes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ContinuumError, isContinuumError } from '../../core/errors.js';
import { mulberry32 } from '../../sim/rng.js';
import {
  encode,
  REPLICATION_MAGIC,
  replicationHeaderBytes,
  replicationMessageBytesMax,
  replicationMessageTypes,
  type ReplicationMessage,
  type ReplicationMessageType,
} from './wire.js';
import { FrameDecoder, type FrameDecoderOptions } from './wire-decode.js';

const bytesOf = (message: ReplicationMessage) => Buffer.concat(encode(message));

function decodeAll(chunks: readonly Buffer[], options?: FrameDecoderOptions): ReplicationMessage[] {
  const decoder = new FrameDecoder(options);
  const messages = chunks.flatMap((chunk) => decoder.push(chunk));
  decoder.end();
  return messages;
}

/** A frame with any header and body, for the malformed cases. */
function frame(code: number, body: Buffer, magic = REPLICATION_MAGIC): Buffer {
  const header = Buffer.alloc(replicationHeaderBytes);
  header.writeUInt32BE(magic, 0);
  header.writeUInt16BE(code, 4);
  header.writeUInt32BE(body.length, 6);
  return Buffer.concat([header, body]);
}

const u64 = (value: bigint) => {
  const bytes = Buffer.alloc(8);
  bytes.writeBigUInt64BE(value);
  return bytes;
};
const u16 = (value: number) => Buffer.from([value >> 8, value & 0xff]);
const u32 = (value: number) => {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(value);
  return bytes;
};

const maxSafe = Number.MAX_SAFE_INTEGER;
const samples: ReplicationMessage[] = [
  {
    type: 'REPL_HELLO',
    volume: 'db-1',
    replicaNode: 'node-b',
    acceptedEpoch: 12,
    generation: '0123456789abcdef',
    dataGenerationCounter: 7,
  },
  {
    type: 'REPL_HELLO',
    volume: 'é'.repeat(127) + 'v', // 255 bytes: the longest name
    replicaNode: 'nœud-🦀',
    acceptedEpoch: maxSafe,
    generation: '0000000000000000',
    dataGenerationCounter: 0,
  },
  { type: 'REPL_WRITE', seq: 1n, epoch: 12, offset: 4096, fua: false, data: Buffer.from('abc') },
  {
    type: 'REPL_WRITE',
    seq: 2n ** 64n - 1n,
    epoch: 0,
    offset: maxSafe,
    fua: true,
    data: Buffer.alloc(0),
  },
  { type: 'REPL_TRIM', seq: 3n, epoch: 12, offset: 0, length: 2 ** 32 - 1, fua: true },
  { type: 'REPL_WRITE_ZEROES', seq: 4n, epoch: 12, offset: 2 ** 40, length: 65536, fua: false },
  { type: 'REPL_FLUSH', seq: 5n, epoch: 12 },
  { type: 'REPL_ACK', seq: 4n, kind: 'written' },
  { type: 'REPL_ACK', seq: 5n, kind: 'durable' },
  { type: 'REPL_FENCED', acceptedEpoch: 13, message: 'epoch 12 < accepted 13 — fenced' },
  { type: 'REPL_FENCED', acceptedEpoch: 0, message: '' },
  { type: 'REPL_ACCEPT_EPOCH', epoch: 13 },
  { type: 'REPL_EPOCH_ACCEPTED', epoch: 13 },
  { type: 'REPL_OPEN', volume: 'db-1', primaryNode: 'node-a', epoch: 13 },
  { type: 'REPL_OPEN', volume: 'v', primaryNode: 'é'.repeat(127) + 'n', epoch: maxSafe },
  { type: 'REPL_GENERATION', epoch: 13, generation: 'fedcba9876543210' },
  { type: 'REPL_READ_CHECKSUMS', epoch: 13, startBlock: maxSafe, blockCount: 512 },
  {
    type: 'REPL_CHECKSUMS',
    startBlock: 7,
    checksums: Uint32Array.from([0, 0xffffffff, 0x12345678]),
    allocated: Uint8Array.from([0, 1, 1]),
  },
];

/** A small seeded source of test values. */
class Draw {
  private readonly next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  int(maxExclusive: number): number {
    return Math.floor(this.next() * maxExclusive);
  }
  chance(probability: number): boolean {
    return this.next() < probability;
  }
  bytes(count: number): Buffer {
    const bytes = Buffer.allocUnsafe(count);
    for (let i = 0; i < count; i++) bytes[i] = this.int(256);
    return bytes;
  }
  u64(): bigint {
    return (BigInt(this.int(2 ** 32)) << 32n) | BigInt(this.int(2 ** 32));
  }
  name(): string {
    const letters = [...'abcxyz-09éü🦀'];
    return Array.from({ length: 1 + this.int(12) }, () => letters[this.int(letters.length)]).join(
      '',
    );
  }
}

function randomMessage(draw: Draw, dataBytesMax: number): ReplicationMessage {
  const seq = draw.u64();
  const epoch = draw.int(2 ** 31);
  const offset = draw.int(2 ** 44);
  const fua = draw.chance(0.3);
  const kind = draw.int(13);
  if (kind === 0) {
    const generation = draw.u64().toString(16).padStart(16, '0');
    const counter = draw.int(1000);
    return {
      type: 'REPL_HELLO',
      volume: draw.name(),
      replicaNode: draw.name(),
      acceptedEpoch: epoch,
      generation,
      dataGenerationCounter: counter,
    };
  }
  if (kind <= 2) {
    return {
      type: 'REPL_WRITE',
      seq,
      epoch,
      offset,
      fua,
      data: draw.bytes(draw.int(dataBytesMax)),
    };
  }
  if (kind === 3) return { type: 'REPL_TRIM', seq, epoch, offset, length: draw.int(2 ** 32), fua };
  if (kind === 4) return { type: 'REPL_WRITE_ZEROES', seq, epoch, offset, length: 512, fua };
  if (kind === 5) return { type: 'REPL_FLUSH', seq, epoch };
  if (kind === 6) return { type: 'REPL_ACK', seq, kind: draw.chance(0.5) ? 'written' : 'durable' };
  if (kind === 7) return { type: 'REPL_FENCED', acceptedEpoch: epoch, message: draw.name() };
  if (kind === 9)
    return { type: 'REPL_OPEN', volume: draw.name(), primaryNode: draw.name(), epoch };
  if (kind === 10) {
    return {
      type: 'REPL_GENERATION',
      epoch,
      generation: draw.u64().toString(16).padStart(16, '0'),
    };
  }
  if (kind === 11) {
    return {
      type: 'REPL_READ_CHECKSUMS',
      epoch,
      startBlock: offset,
      blockCount: 1 + draw.int(512),
    };
  }
  if (kind === 12) {
    const count = 1 + draw.int(8);
    const checksums = Uint32Array.from({ length: count }, () => draw.int(2 ** 32));
    const allocated = Uint8Array.from({ length: count }, () => draw.int(2));
    return { type: 'REPL_CHECKSUMS', startBlock: offset, checksums, allocated };
  }
  return { type: draw.chance(0.5) ? 'REPL_ACCEPT_EPOCH' : 'REPL_EPOCH_ACCEPTED', epoch };
}

/** Pieces of `bytes` with sizes from 1 to `pieceBytesMax`, small ones as likely as large ones. */
function cutRandomly(bytes: Buffer, draw: Draw, pieceBytesMax: number): Buffer[] {
  const pieces: Buffer[] = [];
  for (let at = 0; at < bytes.length;) {
    const size = Math.ceil(Math.exp((Math.log(pieceBytesMax) * draw.int(1001)) / 1000));
    pieces.push(bytes.subarray(at, at + size));
    at += size;
  }
  return pieces;
}

function expectRefused(bytes: Buffer, pattern: RegExp, options?: FrameDecoderOptions): void {
  const decoder = new FrameDecoder(options);
  let error: unknown;
  try {
    decoder.push(bytes);
    decoder.end();
  } catch (caught) {
    error = caught;
  }
  assert.ok(
    isContinuumError(error),
    `expected a ContinuumError for ${pattern}, got ${String(error)}`,
  );
  assert.equal(error.code, 'CONTINUUM_ERR_BAD_REQUEST');
  assert.match(error.message, pattern);
  // The decoder stays failed: the connection is closed over the first bad frame.
  assert.equal(decoder.failed, error);
  assert.throws(
    () => decoder.push(bytesOf(samples[6]!)),
    (again) => again === error,
  );
  assert.throws(
    () => decoder.end(),
    (again) => again === error,
  );
}

describe('replication wire format', () => {
  it('lays out a frame as magic, type, body length and big-endian fields', () => {
    assert.equal(
      bytesOf({ type: 'REPL_ACK', seq: 0x0102030405060708n, kind: 'durable' }).toString('hex'),
      '43525031' + '0006' + '00000009' + '0102030405060708' + '02',
    );
    const write = { type: 'REPL_WRITE', seq: 1n, epoch: 2, offset: 2 ** 33, fua: true } as const;
    assert.equal(
      bytesOf({ ...write, data: Buffer.from('hi') }).toString('hex'),
      '43525031' +
        '0002' +
        '0000001c' +
        '0000000000000001' +
        '0000000000000002' +
        '0000000200000000' +
        '0001' +
        '6869',
    );
  });

  it('round-trips every message type', () => {
    const covered = new Set(samples.map((message) => message.type));
    assert.deepEqual([...covered].sort(), Object.keys(replicationMessageTypes).sort());
    for (const message of samples) assert.deepEqual(decodeAll([bytesOf(message)]), [message]);
  });

  it('carries a 4 MiB write without copying its data, whole or in pieces', () => {
    const data = new Draw(4).bytes(4 * 2 ** 20);
    const message = {
      type: 'REPL_WRITE',
      seq: 9n,
      epoch: 3,
      offset: 2 ** 30,
      fua: false,
      data,
    } as const;
    const parts = encode(message);
    assert.equal(parts.length, 2);
    assert.equal(parts[1], data, 'the data is its own part, not a copy');
    const stream = Buffer.concat(parts);
    const [whole] = decodeAll([stream]);
    assert.ok(whole?.type === 'REPL_WRITE');
    assert.equal(whole.data.buffer, stream.buffer, 'a write that arrives whole is a slice');
    assert.deepEqual(whole, message);
    const pieces = [stream.subarray(0, 7), stream.subarray(7, 2 ** 20), stream.subarray(2 ** 20)];
    assert.deepEqual(decodeAll(pieces), [message]);
  });

  it('refuses empty names, names over 255 bytes, and names that cannot come back unchanged', () => {
    const hello = samples[0] as Extract<ReplicationMessage, { type: 'REPL_HELLO' }>;
    const refusals: [Partial<typeof hello>, RegExp][] = [
      [{ volume: '' }, /cannot encode REPL_HELLO: volume name is 0 bytes, expected 1 to 255/],
      [{ replicaNode: 'é'.repeat(128) }, /replica node name is 256 bytes, expected 1 to 255/],
      [{ volume: 'a\ud800' }, /volume name is not valid Unicode/],
      [{ generation: '0123456789ABCDEF' }, /generation "0123456789ABCDEF" is not 16 hex digits/],
      [{ generation: '123' }, /is not 16 hex digits/],
    ];
    for (const [change, pattern] of refusals) {
      assert.throws(
        () => encode({ ...hello, ...change }),
        (error) => isContinuumError(error) && pattern.test(error.message),
      );
    }
  });

  it('refuses values the format cannot carry when encoding', () => {
    const refusals: [ReplicationMessage, RegExp][] = [
      [{ type: 'REPL_FLUSH', seq: -1n, epoch: 1 }, /REPL_FLUSH: seq -1 is not a u64/],
      [
        { type: 'REPL_ACK', seq: 2n ** 64n, kind: 'written' },
        /seq 18446744073709551616 is not a u64/,
      ],
      [
        { type: 'REPL_ACCEPT_EPOCH', epoch: -1 },
        /epoch -1 is not a whole number from 0 to 2\^53-1/,
      ],
      [{ type: 'REPL_TRIM', seq: 1n, epoch: 1, offset: 0.5, length: 1, fua: false }, /offset 0.5/],
      [
        { type: 'REPL_TRIM', seq: 1n, epoch: 1, offset: 0, length: 2 ** 32, fua: false },
        /not a u32/,
      ],
      [
        { type: 'REPL_FENCED', acceptedEpoch: 2 ** 53, message: '' },
        /accepted epoch 9007199254740992/,
      ],
    ];
    for (const [message, pattern] of refusals) {
      assert.throws(
        () => encode(message),
        (error) => isContinuumError(error) && pattern.test(error.message),
      );
    }
    const data = Buffer.alloc(4096 - replicationHeaderBytes - 25);
    const write = { type: 'REPL_WRITE', seq: 1n, epoch: 1, offset: 0, fua: false, data } as const;
    assert.throws(() => encode(write, { messageBytesMax: 4096 }), /4061 bytes of data exceed/);
    assert.equal(Buffer.concat(encode({ ...write, data: data.subarray(1) })).length, 4096);
  });

  it('cuts a long fenced message on a character boundary', () => {
    const message = {
      type: 'REPL_FENCED',
      acceptedEpoch: 1,
      message: 'a' + 'é'.repeat(600),
    } as const;
    const [decoded] = decodeAll([bytesOf(message)]);
    assert.deepEqual(decoded, { ...message, message: 'a' + 'é'.repeat(511) });
  });

  it('decodes a mixed stream cut at every byte boundary, and fed one byte at a time', () => {
    const stream = Buffer.concat(samples.map(bytesOf));
    for (let cut = 0; cut <= stream.length; cut++) {
      const pieces = [stream.subarray(0, cut), stream.subarray(cut)];
      assert.deepEqual(decodeAll(pieces), samples, `cut at byte ${cut}`);
    }
    const bytes = Array.from({ length: stream.length }, (_, i) => stream.subarray(i, i + 1));
    assert.deepEqual(decodeAll(bytes), samples);
  });

  it('decodes a large stream cut at random boundaries', () => {
    const draw = new Draw(0x5eed);
    const messages = Array.from({ length: 400 }, () => randomMessage(draw, 64 * 1024));
    messages.push({
      type: 'REPL_WRITE',
      seq: 1n,
      epoch: 1,
      offset: 0,
      fua: true,
      data: draw.bytes(2 ** 21),
    });
    const stream = Buffer.concat(messages.map(bytesOf));
    for (const pieceBytesMax of [16, 4096, 256 * 1024]) {
      assert.deepEqual(decodeAll(cutRandomly(stream, draw, pieceBytesMax)), messages);
    }
  });

  describe('refuses malformed frames, naming the frame and what is wrong', () => {
    const good = bytesOf(samples[7]!); // REPL_ACK, 19 bytes: the bad frame is frame 2 at byte 19
    const at = (what: string) => new RegExp(`^replication frame 2 \\(stream byte 19\\): ${what}$`);
    const refuse = (bad: Buffer, what: string, options?: FrameDecoderOptions) =>
      expectRefused(Buffer.concat([good, bad]), at(what), options);
    const seqEpoch = Buffer.concat([u64(1n), u64(1n)]);
    const tooBig = u64(2n ** 53n);

    it('a wrong magic or an unknown type', () => {
      refuse(frame(6, u64(1n), 0x4e42444d), 'magic is 0x4e42444d, expected 0x43525031');
      refuse(frame(0, Buffer.alloc(8)), 'unknown message type 0');
      refuse(frame(14, Buffer.alloc(8)), 'unknown message type 14');
    });

    it('a body length that does not fit its type', () => {
      const fixed: [ReplicationMessageType, number][] = [
        ['REPL_TRIM', 30],
        ['REPL_WRITE_ZEROES', 30],
        ['REPL_FLUSH', 16],
        ['REPL_ACK', 9],
        ['REPL_ACCEPT_EPOCH', 8],
        ['REPL_EPOCH_ACCEPTED', 8],
        ['REPL_GENERATION', 16],
        ['REPL_READ_CHECKSUMS', 20],
      ];
      for (const [type, bytes] of fixed) {
        for (const wrong of [bytes - 1, bytes + 1, 0]) {
          const code = replicationMessageTypes[type];
          refuse(
            frame(code, Buffer.alloc(wrong)),
            `body of ${type} is ${wrong} bytes, expected ${bytes}`,
          );
        }
      }
      refuse(frame(1, Buffer.alloc(25)), 'body of REPL_HELLO is 25 bytes, expected 26 to 536');
      refuse(frame(1, Buffer.alloc(537)), 'body of REPL_HELLO is 537 bytes, expected 26 to 536');
      refuse(frame(2, Buffer.alloc(25)), 'body of REPL_WRITE is 25 bytes, expected at least 26');
      refuse(frame(10, Buffer.alloc(9)), 'body of REPL_OPEN is 9 bytes, expected 10 to 520');
      refuse(
        frame(13, Buffer.alloc(11)),
        'body of REPL_CHECKSUMS is 11 bytes, expected 12 to 2572',
      );
      refuse(
        frame(7, Buffer.alloc(1035)),
        'body of REPL_FENCED is 1035 bytes, expected 10 to 1034',
      );
    });

    it('a frame over replicationMessageBytesMax, refused from its header alone', () => {
      const header = frame(2, Buffer.alloc(0));
      header.writeUInt32BE(replicationMessageBytesMax - replicationHeaderBytes + 1, 6);
      const size = replicationMessageBytesMax + 1;
      refuse(header, `REPL_WRITE of ${size} bytes exceeds replicationMessageBytesMax ${size - 1}`);
      header.writeUInt32BE(2 ** 32 - 1, 6);
      refuse(header, `REPL_WRITE of ${2 ** 32 + 9} bytes exceeds replicationMessageBytesMax \\d+`);
      header.writeUInt32BE(4096 - replicationHeaderBytes + 1, 6);
      refuse(header, 'REPL_WRITE of 4097 bytes exceeds replicationMessageBytesMax 4096', {
        messageBytesMax: 4096,
      });
    });

    it('names whose lengths disagree with the body, empty names, bad UTF-8', () => {
      const fields = Buffer.concat([u64(1n), u64(2n), u64(3n)]);
      const hello = (lengths: number[], names: string) =>
        frame(1, Buffer.concat([fields, Buffer.from(lengths), Buffer.from(names, 'latin1')]));
      refuse(
        hello([2, 2], 'abc'),
        'body of REPL_HELLO is 29 bytes, but its name lengths \\(2 and 2\\) need 30',
      );
      refuse(hello([0, 2], 'ab'), 'REPL_HELLO volume name is empty');
      refuse(hello([2, 0], 'ab'), 'REPL_HELLO replica node name is empty');
      refuse(hello([1, 1], 'a\xff'), 'REPL_HELLO replica node name is not valid UTF-8');
      refuse(hello([2, 1], '\xc3\x28a'), 'REPL_HELLO volume name is not valid UTF-8');
    });

    it('open names that disagree with the body, or are empty', () => {
      const open = (lengths: number[], names: string) =>
        frame(10, Buffer.concat([u64(1n), Buffer.from(lengths), Buffer.from(names, 'latin1')]));
      refuse(
        open([1, 2], 'ab'),
        'body of REPL_OPEN is 12 bytes, but its name lengths \\(1 and 2\\) need 13',
      );
      refuse(open([0, 1], 'a'), 'REPL_OPEN volume name is empty');
      refuse(open([1, 0], 'a'), 'REPL_OPEN primary node name is empty');
      refuse(open([1, 1], 'a\xff'), 'REPL_OPEN primary node name is not valid UTF-8');
    });

    it('checksum counts out of bounds, lengths that disagree, flags other than 0 and 1', () => {
      const ask = (count: number) => frame(12, Buffer.concat([u64(1n), u64(0n), u32(count)]));
      refuse(ask(0), 'REPL_READ_CHECKSUMS block count 0 is not from 1 to .*\\(512\\)');
      refuse(ask(513), 'REPL_READ_CHECKSUMS block count 513 is not from 1 to .*');
      const answer = (count: number, entries: Buffer) =>
        frame(13, Buffer.concat([u64(0n), u32(count), entries]));
      refuse(
        answer(2, Buffer.alloc(5)),
        'body of REPL_CHECKSUMS is 17 bytes, but its 2 blocks need 22',
      );
      refuse(answer(0, Buffer.alloc(0)), 'REPL_CHECKSUMS block count 0 is not from 1 to .*');
      refuse(
        answer(1, Buffer.from([0, 0, 0, 0, 2])),
        'REPL_CHECKSUMS allocated flag 2 of block 0 is not 0 or 1',
      );
      assert.throws(
        () =>
          encode({
            type: 'REPL_CHECKSUMS',
            startBlock: 0,
            checksums: new Uint32Array(2),
            allocated: new Uint8Array(1),
          }),
        /1 allocated flags for 2 checksums/,
      );
      assert.throws(
        () => encode({ type: 'REPL_READ_CHECKSUMS', epoch: 1, startBlock: 0, blockCount: 513 }),
        /block count 513: expected 1 to replicationChecksumBlocksMax \(512\)/,
      );
      assert.throws(
        () => encode({ type: 'REPL_GENERATION', epoch: 1, generation: 'xyz' }),
        /generation "xyz" is not 16 hex digits/,
      );
    });

    it('unknown ack kinds and flags', () => {
      refuse(
        frame(6, Buffer.concat([u64(1n), Buffer.from([0])])),
        'REPL_ACK kind 0 is unknown \\(1 written, 2 durable\\)',
      );
      refuse(frame(6, Buffer.concat([u64(1n), Buffer.from([3])])), 'REPL_ACK kind 3 is unknown .*');
      refuse(
        frame(2, Buffer.concat([seqEpoch, u64(0n), u16(2)])),
        'REPL_WRITE flags 0x0002 have unknown bits \\(known: 0x0001 FUA\\)',
      );
      refuse(
        frame(3, Buffer.concat([seqEpoch, u64(0n), u32(1), u16(0x8001)])),
        'REPL_TRIM flags 0x8001 have unknown bits .*',
      );
    });

    it('epochs, offsets and counters above 2^53-1', () => {
      refuse(
        frame(5, Buffer.concat([u64(1n), tooBig])),
        'REPL_FLUSH epoch 9007199254740992 is above 2\\^53-1',
      );
      refuse(
        frame(4, Buffer.concat([seqEpoch, tooBig, u32(1), u16(0)])),
        'REPL_WRITE_ZEROES offset 9007199254740992 is above 2\\^53-1',
      );
      refuse(
        frame(8, u64(2n ** 64n - 1n)),
        'REPL_ACCEPT_EPOCH epoch 18446744073709551615 is above 2\\^53-1',
      );
      const hello = Buffer.concat([
        u64(1n),
        u64(0n),
        tooBig,
        Buffer.from([1, 1]),
        Buffer.from('ab'),
      ]);
      refuse(
        frame(1, hello),
        'REPL_HELLO data generation counter 9007199254740992 is above 2\\^53-1',
      );
    });

    it('a fenced message whose length disagrees with the body, or is not UTF-8', () => {
      refuse(
        frame(7, Buffer.concat([u64(1n), u16(3), Buffer.from('ab')])),
        'body of REPL_FENCED is 12 bytes, but its message length 3 needs 13',
      );
      refuse(
        frame(7, Buffer.concat([u64(1n), u16(1), Buffer.from([0x80])])),
        'REPL_FENCED message is not valid UTF-8',
      );
    });

    it('a stream that ends inside a frame', () => {
      const flush = bytesOf(samples[6]!);
      refuse(flush.subarray(0, 4), 'the stream ended after 4 bytes of its 10-byte header');
      refuse(flush.subarray(0, 10), 'the stream ended after 10 of its 26 bytes');
      refuse(flush.subarray(0, 25), 'the stream ended after 25 of its 26 bytes');
    });
  });

  it('checks messageBytesMax when a decoder is made', () => {
    for (const messageBytesMax of [100, 4095.5, 2 ** 31, Number.NaN]) {
      assert.throws(
        () => new FrameDecoder({ messageBytesMax }),
        (error) => error instanceof RangeError && error.message.includes(`got ${messageBytesMax}`),
      );
    }
    assert.equal(new FrameDecoder().messageBytesMax, 32 * 2 ** 20 + 36);
  });

  it(
    'fuzz: 2000 random and mutated streams only ever fail with ContinuumError',
    { timeout: 5000 },
    () => {
      const draw = new Draw(0xc0ffee);
      let refused = 0;
      for (let round = 0; round < 2000; round++) {
        const stream = fuzzStream(draw, round);
        const decoder = new FrameDecoder({ messageBytesMax: 64 * 1024 });
        const decoded: ReplicationMessage[] = [];
        try {
          for (const piece of cutRandomly(stream, draw, 64)) decoded.push(...decoder.push(piece));
          decoder.end();
        } catch (error) {
          if (!(error instanceof ContinuumError))
            throw new Error(`round ${round}: ${String(error)}`);
          assert.equal(error.code, 'CONTINUUM_ERR_BAD_REQUEST');
          assert.match(error.message, /^replication frame \d+ \(stream byte \d+\): /);
          refused += 1;
        }
        // Whatever was accepted is the stream's own prefix, re-encoded byte for byte.
        const again = Buffer.concat(decoded.map(bytesOf));
        assert.ok(again.equals(stream.subarray(0, again.length)), `round ${round}: not canonical`);
        if (decoder.failed === undefined) assert.equal(again.length, stream.length);
      }
      // Both outcomes must be exercised for the oracle above to mean anything.
      assert.ok(refused > 500 && refused < 1900, `refused ${refused} of 2000`);
    },
  );
});

/** Garbage, plausible headers over garbage, or valid frames with a few mutations. */
function fuzzStream(draw: Draw, round: number): Buffer {
  if (round % 4 === 0) return draw.bytes(draw.int(300));
  if (round % 4 === 1) {
    const body = draw.bytes(draw.int(64));
    const bad = frame(draw.int(15), body);
    if (draw.chance(0.3)) bad.writeUInt32BE(draw.int(80), 6);
    return bad;
  }
  const frames = Array.from({ length: 1 + draw.int(4) }, () => bytesOf(randomMessage(draw, 64)));
  let stream: Buffer = Buffer.concat(frames);
  for (let mutations = draw.int(4); mutations > 0; mutations--) stream = mutate(draw, stream);
  return stream;
}

function mutate(draw: Draw, stream: Buffer): Buffer {
  const at = draw.int(stream.length + 1);
  switch (draw.int(5)) {
    case 0:
      return stream.subarray(0, at);
    case 1:
      return Buffer.concat([
        stream.subarray(0, at),
        draw.bytes(1 + draw.int(8)),
        stream.subarray(at),
      ]);
    case 2:
      return Buffer.concat([stream.subarray(0, at), stream.subarray(at + 1 + draw.int(8))]);
    case 3: {
      const copy = Buffer.from(stream);
      if (at < copy.length) copy[at] = draw.int(256);
      return copy;
    }
    default: {
      // Lie in the first frame's body length, by a little or by a lot.
      const copy = Buffer.from(stream);
      if (copy.length >= 10)
        copy.writeUInt32BE(draw.chance(0.5) ? draw.int(2 ** 32) : draw.int(600), 6);
      return copy;
    }
  }
}
