// Encoding and decoding of handshake messages: exact layouts, and decoders that reject malformed
// option data with a reason instead of throwing, whatever the bytes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  decodeInfoRequest,
  decodeMetaContextRequest,
  decodeString,
  encodeExportNameReply,
  encodeGreeting,
  encodeOptionReply,
  encodeString,
  readUint64,
  writeUint64,
} from './option-codec.js';
import { NBD_REP_ACK, STRING_BYTES_MAX } from './protocol.js';

function infoData(name: string, infos: number[]): Buffer {
  const nameBytes = Buffer.from(name);
  const data = Buffer.alloc(6 + nameBytes.length + 2 * infos.length);
  data.writeUInt32BE(nameBytes.length, 0);
  nameBytes.copy(data, 4);
  data.writeUInt16BE(infos.length, 4 + nameBytes.length);
  infos.forEach((info, i) => data.writeUInt16BE(info, 6 + nameBytes.length + 2 * i));
  return data;
}

function metaData(name: string, queries: string[]): Buffer {
  const parts = [Buffer.alloc(4), Buffer.from(name), Buffer.alloc(4)];
  parts[0]!.writeUInt32BE(Buffer.byteLength(name), 0);
  parts[2]!.writeUInt32BE(queries.length, 0);
  for (const query of queries) {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(Buffer.byteLength(query), 0);
    parts.push(length, Buffer.from(query));
  }
  return Buffer.concat(parts);
}

describe('option codec', () => {
  it('greets with NBDMAGIC, IHAVEOPT, fixed newstyle and no-zeroes', () => {
    assert.equal(
      encodeGreeting().toString('hex'),
      '4e42444d41474943' + '49484156454f5054' + '0003',
    );
  });

  it('lays out an option reply as magic, option, type, length, payload', () => {
    const reply = encodeOptionReply(7, NBD_REP_ACK, Buffer.from('ab'));
    assert.equal(
      reply.toString('hex'),
      '0003e889045565a9' + '00000007' + '00000001' + '00000002' + '6162',
    );
  });

  it('sends 124 zero bytes after EXPORT_NAME unless the client declined them', () => {
    assert.equal(encodeExportNameReply(4096, 1, false).length, 134);
    const short = encodeExportNameReply(2 ** 40 + 5, 0x10d, true);
    assert.equal(short.length, 10);
    assert.equal(readUint64(short, 0), 2 ** 40 + 5);
    assert.equal(short.readUInt16BE(8), 0x10d);
  });

  it('round-trips 64-bit numbers and reads values past 2^53 as Infinity', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (value) => {
        const buffer = Buffer.alloc(8);
        writeUint64(buffer, value, 0);
        return readUint64(buffer, 0) === value;
      }),
    );
    assert.equal(readUint64(Buffer.from('ffffffffffffffff', 'hex'), 0), Infinity);
  });

  it('cuts long strings at the limit without splitting a character', () => {
    const text = 'é'.repeat(STRING_BYTES_MAX);
    const bytes = encodeString(text);
    assert.ok(bytes.length <= STRING_BYTES_MAX);
    assert.ok(decodeString(bytes, 'x').ok);
  });

  it('rejects NUL, invalid UTF-8 and over-long strings', () => {
    assert.equal(decodeString(Buffer.from([0x61, 0]), 'name').ok, false);
    assert.equal(decodeString(Buffer.from([0xff, 0xfe]), 'name').ok, false);
    assert.equal(decodeString(Buffer.alloc(STRING_BYTES_MAX + 1, 0x61), 'name').ok, false);
  });

  it('decodes INFO/GO data and insists the counts match the length', () => {
    assert.deepEqual(decodeInfoRequest(infoData('disk', [1, 3])), {
      ok: true,
      value: { name: 'disk', infos: [1, 3] },
    });
    const data = infoData('disk', [1]);
    assert.equal(decodeInfoRequest(Buffer.concat([data, Buffer.alloc(1)])).ok, false);
    assert.equal(decodeInfoRequest(data.subarray(0, data.length - 1)).ok, false);
    const lying = Buffer.from(data);
    lying.writeUInt32BE(1000, 0);
    assert.equal(decodeInfoRequest(lying).ok, false);
  });

  it('decodes meta context queries and flags too many as too big', () => {
    const decoded = decodeMetaContextRequest(metaData('d', ['base:allocation', 'qemu:x']), 4);
    assert.deepEqual(decoded, {
      ok: true,
      value: { name: 'd', queries: ['base:allocation', 'qemu:x'] },
    });
    const many = decodeMetaContextRequest(metaData('d', ['a:', 'b:', 'c:']), 2);
    assert.equal(many.ok, false);
    assert.equal(!many.ok && many.tooBig, true);
    const trailing = Buffer.concat([metaData('d', ['base:']), Buffer.alloc(2)]);
    assert.equal(decodeMetaContextRequest(trailing, 4).ok, false);
  });

  it('never throws on arbitrary option data', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const data = Buffer.from(bytes);
        decodeInfoRequest(data);
        decodeMetaContextRequest(data, 8);
        return true;
      }),
      { numRuns: 2000 },
    );
  });
});
