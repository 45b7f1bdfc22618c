import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import zlib from 'node:zlib';
import { crc32 } from './crc32.js';
import { SeededRng } from './rng.js';

describe('crc32', () => {
  it('gives the standard check value', () => {
    assert.equal(crc32(Buffer.from('123456789', 'latin1')), 0xcbf43926);
    assert.equal(crc32(new Uint8Array(0)), 0);
  });

  it('equals zlib.crc32, the engine checksum, on random data and when continued', () => {
    const rng = new SeededRng(7);
    for (let round = 0; round < 50; round++) {
      const bytes = Buffer.alloc(rng.int(5000));
      for (let i = 0; i < bytes.length; i++) bytes[i] = rng.int(256);
      assert.equal(crc32(bytes), zlib.crc32(bytes));
      const cut = rng.int(bytes.length + 1);
      assert.equal(crc32(bytes.subarray(cut), crc32(bytes.subarray(0, cut))), zlib.crc32(bytes));
    }
  });
});
