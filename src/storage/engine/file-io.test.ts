// writeAt: small writes are made on the event loop (done when the call returns), larger ones in
// libuv's pool in aligned pieces, two at a time; both write every byte, and a failure is a
// rejection, never a throw.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  closeFile,
  loopWriteBytesMax,
  openFile,
  poolWritePieceBytes,
  poolWritePiecesInFlightMax,
  writeAt,
} from './file-io.js';

describe('writeAt', () => {
  const dir = fs.mkdtempSync(join(tmpdir(), 'continuum-file-io-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const contents = (fd: number, length: number, position: number): Buffer => {
    const out = Buffer.alloc(length);
    fs.readSync(fd, out, 0, length, position);
    return out;
  };

  it('writes up to loopWriteBytesMax on the loop, before it returns, and larger writes in the pool', async (t) => {
    // Counted, not raced: a pool thread may well finish a write before the caller looks at the file.
    const writeSync = t.mock.method(fs, 'writeSync');
    const fd = await openFile(join(dir, 'data'), 'w+');
    const onLoop = () => writeSync.mock.calls.filter((call) => call.arguments[0] === fd).length;
    try {
      const small = Buffer.alloc(loopWriteBytesMax, 0xab);
      const pending = writeAt(fd, small, 0, small.length, 4096);
      assert.equal(onLoop(), 1, 'written by the call itself');
      assert.deepEqual(contents(fd, small.length, 4096), small);
      await pending;
      const large = Buffer.alloc(4096 + loopWriteBytesMax + 1, 0xcd);
      await writeAt(fd, large, 4096, large.length - 4096, 1 << 20);
      assert.equal(onLoop(), 1, 'the large one went to the pool');
      assert.deepEqual(contents(fd, large.length - 4096, 1 << 20), large.subarray(4096));
    } finally {
      await closeFile(fd);
    }
  });

  it('writes a large write in pieces that end on piece boundaries, two at a time', async (t) => {
    // A large write makes the page cache's folios as large as itself (ext4, Linux 6.x), which
    // makes every later small write into them slower: no piece may be longer than a piece or
    // cross a boundary, and one write may not fill the pool with its pieces.
    const original = fs.write.bind(fs) as (...args: unknown[]) => void;
    const pieces: { length: number; position: number }[] = [];
    let running = 0;
    let runningMax = 0;
    t.mock.method(fs, 'write', (...args: unknown[]) => {
      const [, , , length, position] = args as [number, Buffer, number, number, number];
      pieces.push({ length, position });
      runningMax = Math.max(runningMax, ++running);
      const callback = args.pop() as (...result: unknown[]) => void;
      original(...args, (...result: unknown[]) => {
        running--;
        callback(...result);
      });
    });
    const fd = await openFile(join(dir, 'pieces'), 'w+');
    try {
      // Starts 100 bytes before a boundary, ends mid-piece: a short first and a short last piece.
      const position = 3 * poolWritePieceBytes - 100;
      const data = Buffer.alloc(5 * poolWritePieceBytes + 300);
      for (let i = 0; i < data.length; i++) data[i] = (i * 7 + 3) & 0xff;
      await writeAt(fd, data, 0, data.length, position);
      assert.deepEqual(contents(fd, data.length, position), data);
      // In order, each from a boundary (the first excepted) to the next (the last excepted).
      assert.deepEqual(pieces, [
        { length: 100, position },
        ...[3, 4, 5, 6, 7].map((n) => ({
          length: poolWritePieceBytes,
          position: n * poolWritePieceBytes,
        })),
        { length: 200, position: 8 * poolWritePieceBytes },
      ]);
      assert.equal(runningMax, poolWritePiecesInFlightMax);
    } finally {
      await closeFile(fd);
    }
  });

  it('rejects a large write only after its last piece has left the pool', async (t) => {
    // The caller may reuse the buffer once the promise settles: no piece may still be copying it.
    // The first piece fails at once; the second is held back until the failure has been seen.
    const original = fs.write.bind(fs) as (...args: unknown[]) => void;
    let running = 0;
    let calls = 0;
    let releaseOthers!: () => void;
    const failureSeen = new Promise<void>((resolve) => (releaseOthers = resolve));
    t.mock.method(fs, 'write', (...args: unknown[]) => {
      running++;
      const callback = args.pop() as (...result: unknown[]) => void;
      if (++calls === 1) {
        const error = Object.assign(new Error('EIO: injected'), { code: 'EIO' });
        setImmediate(() => {
          running--;
          callback(error, 0);
          setImmediate(releaseOthers);
        });
        return;
      }
      original(...args, (...result: unknown[]) => {
        void failureSeen.then(() => {
          running--;
          callback(...result);
        });
      });
    });
    const fd = await openFile(join(dir, 'failing'), 'w+');
    try {
      const data = Buffer.alloc(8 * poolWritePieceBytes);
      const runningAtRejection = await writeAt(fd, data, 0, data.length, 0).then(
        () => assert.fail('the write resolved'),
        (error: NodeJS.ErrnoException) => {
          assert.equal(error.code, 'EIO');
          return running;
        },
      );
      assert.equal(runningAtRejection, 0, 'a piece was still in the pool when the write rejected');
      assert.equal(calls, poolWritePiecesInFlightMax, 'no piece starts after a failure');
    } finally {
      await closeFile(fd);
    }
  });

  it('rejects on a failure, small or large, rather than throwing', async () => {
    const fd = await openFile(join(dir, 'read-only'), 'w');
    await closeFile(fd);
    const readOnly = await openFile(join(dir, 'read-only'), 'r');
    try {
      for (const length of [512, loopWriteBytesMax + 512]) {
        let call: Promise<void> | undefined;
        assert.doesNotThrow(() => (call = writeAt(readOnly, Buffer.alloc(length), 0, length, 0)));
        await assert.rejects(call!, { code: 'EBADF' });
      }
    } finally {
      await closeFile(readOnly);
    }
  });
});
