// Hostile inputs for the NBD fuzz test, drawn from a seeded generator so that a case number and a
// seed replay one case exactly. Raw cases are byte scripts (garbage, truncation, lies in length
// fields, wrong magics, requests before the handshake, abrupt disconnects); session cases are
// well-framed but otherwise random requests after a real handshake, each of which must be answered.
import { mulberry32 as seededRandom } from '../../src/sim/rng.js';
import { encodeOption } from '../../src/storage/nbd/client.js';
import { writeUint64 } from '../../src/storage/nbd/option-codec.js';
import * as P from '../../src/storage/nbd/protocol.js';

export class Draw {
  constructor(readonly next: () => number) {}
  int(maxExclusive: number): number {
    return Math.floor(this.next() * maxExclusive);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  bytes(count: number): Buffer {
    const out = Buffer.allocUnsafe(count);
    for (let i = 0; i < count; i++) out[i] = this.int(256);
    return out;
  }
}

export type Step = { kind: 'send'; bytes: Buffer } | { kind: 'yield' };

/** A raw case: bytes to send after reading nothing; then end, destroy, or expect the server to close. */
export interface RawCase {
  kind: 'raw';
  label: string;
  steps: Step[];
  finish: 'end' | 'destroy' | 'server-closes';
}

export interface FuzzRequest {
  type: number;
  flags: number;
  handleHigh: number;
  handleLow: number;
  offset: number;
  length: number;
  data?: Buffer;
}

/** A session case: a real handshake, then requests that must each get exactly one reply. */
export interface SessionCase {
  kind: 'session';
  label: string;
  structured: boolean;
  metaContext: boolean;
  requests: FuzzRequest[];
}

export type FuzzCase = RawCase | SessionCase;

export interface FuzzTarget {
  exportName: string;
  sizeBytes: number;
  requestBytesMax: number;
}

const clientFlags = (flags: number) =>
  Buffer.from([flags >>> 24, (flags >>> 16) & 255, (flags >>> 8) & 255, flags & 255]);

function goData(name: string, infos: number[]): Buffer {
  const data = Buffer.alloc(6 + name.length + 2 * infos.length);
  data.writeUInt32BE(name.length, 0);
  data.write(name, 4);
  data.writeUInt16BE(infos.length, 4 + name.length);
  infos.forEach((info, i) => data.writeUInt16BE(info, 6 + name.length + 2 * i));
  return data;
}

function metaData(name: string, queries: string[]): Buffer {
  const parts = [Buffer.alloc(4), Buffer.from(name), Buffer.alloc(4)];
  parts[0]!.writeUInt32BE(name.length, 0);
  parts[2]!.writeUInt32BE(queries.length, 0);
  for (const query of queries) {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(query.length, 0);
    parts.push(length, Buffer.from(query));
  }
  return Buffer.concat(parts);
}

export function encodeFuzzRequest(request: FuzzRequest, magic = P.NBD_REQUEST_MAGIC): Buffer {
  const header = Buffer.alloc(P.REQUEST_HEADER_BYTES);
  header.writeUInt32BE(magic >>> 0, 0);
  header.writeUInt16BE(request.flags, 4);
  header.writeUInt16BE(request.type, 6);
  header.writeUInt32BE(request.handleHigh, 8);
  header.writeUInt32BE(request.handleLow, 12);
  // Offsets past 2^53 are written from two random halves: the server must refuse them.
  if (Number.isFinite(request.offset)) writeUint64(header, request.offset, 16);
  else header.writeUInt32BE(0xffffffff, 16);
  header.writeUInt32BE(request.length >>> 0, 24);
  return request.data === undefined ? header : Buffer.concat([header, request.data]);
}

/** A mutated copy: bit flips, a truncation, or a length field that lies. */
function mutate(draw: Draw, data: Buffer): Buffer {
  const copy = Buffer.from(data);
  const how = draw.int(3);
  if (how === 0 && copy.length > 0) {
    for (let i = 0, n = 1 + draw.int(4); i < n; i++)
      copy[draw.int(copy.length)]! ^= 1 << draw.int(8);
    return copy;
  }
  if (how === 1) return copy.subarray(0, draw.int(copy.length + 1));
  if (copy.length >= 4)
    copy.writeUInt32BE(draw.pick([0, 1, 0xffff, 0x7fffffff, 0xffffffff, copy.length + 1]), 0);
  return copy;
}

function randomOption(draw: Draw, target: FuzzTarget): Buffer {
  const code = draw.chance(0.8) ? draw.int(16) : draw.int(2 ** 32);
  const name = draw.chance(0.7) ? target.exportName : draw.bytes(draw.int(8)).toString('latin1');
  let data: Buffer;
  if (code === P.NBD_OPT_GO || code === P.NBD_OPT_INFO)
    data = goData(name, [draw.int(5), draw.int(5)]);
  else if (code === P.NBD_OPT_LIST_META_CONTEXT || code === P.NBD_OPT_SET_META_CONTEXT) {
    data = metaData(
      name,
      draw.chance(0.5) ? [P.BASE_ALLOCATION] : ['base:', 'x:y', draw.bytes(5).toString('latin1')],
    );
  } else data = draw.bytes(draw.chance(0.6) ? 0 : draw.int(64));
  return encodeOption(code, draw.chance(0.5) ? mutate(draw, data) : data);
}

const INTERESTING_LENGTHS = [0, 1, 511, 512, 4096, 65536, 0x7fffffff, 0xffffffff];

function randomRequest(draw: Draw, target: FuzzTarget, handle: number): FuzzRequest {
  const types = [
    P.NBD_CMD_READ,
    P.NBD_CMD_WRITE,
    P.NBD_CMD_FLUSH,
    P.NBD_CMD_TRIM,
    5,
    P.NBD_CMD_WRITE_ZEROES,
    P.NBD_CMD_BLOCK_STATUS,
    8,
    9,
    0xffff,
  ];
  const type = draw.pick(types);
  const flags = draw.chance(0.7)
    ? draw.pick([
        0,
        0,
        P.NBD_CMD_FLAG_FUA,
        P.NBD_CMD_FLAG_NO_HOLE,
        P.NBD_CMD_FLAG_DF,
        P.NBD_CMD_FLAG_REQ_ONE,
      ])
    : draw.int(65536);
  const size = target.sizeBytes;
  const offset = draw.pick([0, draw.int(size), size - 1, size, size + 4096, 2 ** 40, Infinity]);
  let length = draw.chance(0.6) ? draw.int(16384) : draw.pick(INTERESTING_LENGTHS);
  if (type === P.NBD_CMD_WRITE) length = Math.min(length, target.requestBytesMax);
  const data = type === P.NBD_CMD_WRITE ? draw.bytes(length) : undefined;
  return { type, flags, handleHigh: draw.int(2 ** 32), handleLow: handle, offset, length, data };
}

function validHandshake(target: FuzzTarget): Buffer {
  return Buffer.concat([clientFlags(3), encodeOption(P.NBD_OPT_GO, goData(target.exportName, []))]);
}

/** Case `index` of the run seeded with `seed`. */
export function fuzzCase(seed: number, index: number, target: FuzzTarget): FuzzCase {
  const draw = new Draw(seededRandom(Math.imul(seed, 1_000_003) + index));
  const finish = draw.pick(['end', 'destroy'] as const);
  const send = (bytes: Buffer): Step => ({ kind: 'send', bytes });
  switch (draw.int(10)) {
    case 0:
      return {
        kind: 'raw',
        label: 'garbage after the greeting',
        steps: [send(draw.bytes(1 + draw.int(300)))],
        finish,
      };
    case 1:
      return {
        kind: 'raw',
        label: 'unknown client flags',
        steps: [send(clientFlags(4 + draw.int(2 ** 31)))],
        finish: 'server-closes',
      };
    case 2: {
      const steps = [send(clientFlags(draw.pick([0, 1, 3])))];
      for (let i = 0, n = 1 + draw.int(12); i < n; i++)
        steps.push(send(randomOption(draw, target)), { kind: 'yield' });
      return { kind: 'raw', label: 'random and mutated options', steps, finish };
    }
    case 3: {
      const header = encodeOption(draw.int(12));
      header.writeUInt32BE(9000 + draw.int(2 ** 32 - 9000), 12);
      return {
        kind: 'raw',
        label: 'option longer than optionBytesMax',
        steps: [send(clientFlags(1)), send(header), send(draw.bytes(draw.int(20000)))],
        finish,
      };
    }
    case 4: {
      const option = encodeOption(P.NBD_OPT_GO, goData(target.exportName, []));
      option[draw.int(8)]! ^= 1 + draw.int(255);
      return {
        kind: 'raw',
        label: 'wrong option magic',
        steps: [send(clientFlags(1)), send(option)],
        finish: 'server-closes',
      };
    }
    case 5: {
      const request = encodeFuzzRequest(randomRequest(draw, target, 1));
      return {
        kind: 'raw',
        label: 'request before the handshake ends',
        steps: [send(clientFlags(1)), send(request)],
        finish: 'server-closes',
      };
    }
    case 6: {
      const stream = Buffer.concat([
        validHandshake(target),
        ...Array.from({ length: 1 + draw.int(6) }, (_, i) =>
          encodeFuzzRequest(randomRequest(draw, target, i)),
        ),
      ]);
      return {
        kind: 'raw',
        label: 'session cut at a random byte',
        steps: [send(stream.subarray(0, draw.int(stream.length)))],
        finish,
      };
    }
    case 7: {
      const bad = encodeFuzzRequest(
        randomRequest(draw, target, 1),
        draw.chance(0.5) ? draw.int(2 ** 32) : 0x25609514,
      );
      return {
        kind: 'raw',
        label: 'wrong request magic',
        steps: [send(validHandshake(target)), { kind: 'yield' }, send(bad)],
        finish: 'server-closes',
      };
    }
    case 8: {
      const huge = encodeFuzzRequest({
        type: P.NBD_CMD_WRITE,
        flags: 0,
        handleHigh: 0,
        handleLow: 1,
        offset: 0,
        length: target.requestBytesMax + 1 + draw.int(2 ** 31),
      });
      return {
        kind: 'raw',
        label: 'write payload above requestBytesMax',
        steps: [send(validHandshake(target)), send(huge), send(draw.bytes(draw.int(5000)))],
        finish: 'server-closes',
      };
    }
    default: {
      const requests = Array.from({ length: 1 + draw.int(40) }, (_, i) =>
        randomRequest(draw, target, i + 1),
      );
      return {
        kind: 'session',
        label: 'random well-framed requests',
        structured: draw.chance(0.6),
        metaContext: draw.chance(0.5),
        requests,
      };
    }
  }
}
