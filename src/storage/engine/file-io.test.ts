// writeAt: small writes are made on the event loop (done when the call returns), larger ones in
// libuv's pool; both write every byte, and a failure is a rejection, never a throw.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loopWriteBytesMax, openFile, closeFile, writeAt } from './file-io.js';

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
