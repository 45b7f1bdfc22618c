// Reply layouts byte by byte, and the block status encoder's clipping, merging and limits.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  encodeBlockStatusChunk,
  encodeDoneChunk,
  encodeErrorChunk,
  encodeReadChunkHeader,
  encodeSimpleReply,
} from './replies.js';

const target = { handleHigh: 0x01020304, handleLow: 0x05060708 };

describe('replies', () => {
  it('lays out a simple reply as magic, error, handle', () => {
    assert.equal(
      encodeSimpleReply(target, 22).toString('hex'),
      '67446698' + '00000016' + '0102030405060708',
    );
  });

  it('lays out structured chunks with the DONE flag', () => {
    assert.equal(
      encodeDoneChunk(target).toString('hex'),
      '668e33ef' + '0001' + '0000' + '0102030405060708' + '00000000',
    );
    const read = encodeReadChunkHeader(target, 2 ** 33, 512);
    assert.equal(
      read.toString('hex'),
      '668e33ef0001000101020304050607080000020800000002' + '00000000',
    );
    const error = encodeErrorChunk(target, 5, 'bad');
    assert.equal(
      error.toString('hex'),
      '668e33ef00018001010203040506070800000009' + '00000005' + '0003' + '626164',
    );
  });

  it('clips extents to the request, merges equal neighbours and stops at extentsMax', () => {
    const extents = [
      { lengthBytes: 4096, hole: false, zero: false },
      { lengthBytes: 4096, hole: false, zero: false },
      { lengthBytes: 8192, hole: true, zero: true },
      { lengthBytes: 1 << 20, hole: false, zero: true },
    ];
    const decode = (chunk: Buffer | undefined) => {
      assert.ok(chunk !== undefined);
      assert.equal(chunk.readUInt32BE(20), 1, 'context id of base:allocation');
      const out: number[][] = [];
      for (let at = 24; at < chunk.length; at += 8)
        out.push([chunk.readUInt32BE(at), chunk.readUInt32BE(at + 4)]);
      return out;
    };
    assert.deepEqual(
      decode(encodeBlockStatusChunk(target, extents, { lengthBytes: 20000, extentsMax: 10 })),
      [
        [8192, 0],
        [8192, 3],
        [20000 - 16384, 2],
      ],
    );
    assert.deepEqual(
      decode(encodeBlockStatusChunk(target, extents, { lengthBytes: 20000, extentsMax: 1 })),
      [[8192, 0]],
    );
    assert.equal(encodeBlockStatusChunk(target, [], { lengthBytes: 10, extentsMax: 4 }), undefined);
    assert.equal(
      encodeBlockStatusChunk(target, [{ lengthBytes: 0, hole: true, zero: true }], {
        lengthBytes: 10,
        extentsMax: 4,
      }),
      undefined,
    );
  });
});
