// The handshake's byte queue: whatever the chunking, takes and skips see the stream in order.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ByteQueue } from './byte-queue.js';

describe('ByteQueue', () => {
  it('returns the bytes in order across any chunking, takes and skips', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 50 }), { maxLength: 20 }),
        fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 60 }))),
        (chunks, steps) => {
          const queue = new ByteQueue();
          const stream = Buffer.concat(chunks.map((c) => Buffer.from(c)));
          chunks.forEach((c) => queue.push(Buffer.from(c)));
          let at = 0;
          for (const [skip, count] of steps) {
            if (count > queue.length) continue;
            if (skip) assert.equal(queue.skip(count), count);
            else assert.deepEqual(queue.take(count), stream.subarray(at, at + count));
            at += count;
          }
          assert.deepEqual(queue.takeAll(), stream.subarray(at));
          assert.equal(queue.length, 0);
        },
      ),
    );
  });

  it('refuses to take more than it holds and skips only what it has', () => {
    const queue = new ByteQueue();
    queue.push(Buffer.from('abc'));
    assert.throws(() => queue.take(4), RangeError);
    assert.equal(queue.skip(10), 3);
  });
});
