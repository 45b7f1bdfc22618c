// RawFileDevice in both I/O modes: data reaches the file at the right place, zeroes are written,
// misuse raises typed errors, and close() waits for operations in flight.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { BlockDeviceError } from './block-device.js';
import { afterBytes, RawFileDevice } from './raw-file-device.js';

const dir = mkdtempSync(join(tmpdir(), 'raw-file-device-'));
let files = 0;
function newFile(size: number, fill = 0): string {
  const path = join(dir, `f${files++}.raw`);
  writeFileSync(path, Buffer.alloc(size, fill));
  return path;
}
const kind = (expected: string) => (e: unknown) =>
  e instanceof BlockDeviceError && e.kind === expected;

describe('RawFileDevice', () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const io of ['auto', 'sync', 'threadpool'] as const) {
    it(`writes and reads at offsets, with FUA and flush (${io})`, async () => {
      const path = newFile(65536);
      const device = RawFileDevice.open(path, { io });
      assert.equal(device.sizeBytes, 65536);
      assert.equal(device.consistentAcrossConnections, true);
      await device.write(1000, Buffer.alloc(3000, 0xab), { fua: true });
      await device.write(60000, Buffer.from('end'));
      await device.flush();
      assert.deepEqual(
        await device.read(999, 3002),
        Buffer.concat([Buffer.alloc(1), Buffer.alloc(3000, 0xab), Buffer.alloc(1)]),
      );
      await device.close();
      const file = readFileSync(path);
      assert.equal(file.subarray(60000, 60003).toString(), 'end');
      assert.equal(file[1000], 0xab);
    });

    it(`writes parts back to back with writev and reads into a caller's buffer (${io})`, async () => {
      const path = newFile(4 << 20);
      const device = RawFileDevice.open(path, { io });
      const parts = [Buffer.alloc(70000, 1), Buffer.alloc(3, 2), Buffer.alloc(1 << 20, 3)];
      await device.writev(5, parts, { fua: true });
      const target = Buffer.alloc(70000 + 3 + (1 << 20) + 10, 9);
      await device.readInto(0, target);
      assert.deepEqual(target, Buffer.concat([Buffer.alloc(5), ...parts, Buffer.alloc(5)]));
      await assert.rejects(device.writev((4 << 20) - 2, parts), kind('range'));
      await device.close();
    });

    it(`writes zeroes over data, in chunks past 1 MiB (${io})`, async () => {
      const path = newFile(3 << 20, 7);
      const device = RawFileDevice.open(path, { io });
      await device.writeZeroes(100, (2 << 20) + 5, { fua: true });
      await device.close();
      const file = readFileSync(path);
      assert.equal(file[99], 7);
      assert.ok(file.subarray(100, 100 + (2 << 20) + 5).every((b) => b === 0));
      assert.equal(file[100 + (2 << 20) + 5], 7);
    });
  }

  it('finds what is left of a vector after a short write', () => {
    const parts = [Buffer.from('abc'), Buffer.from('de'), Buffer.from('f')];
    const text = (rest: readonly Buffer[]) => Buffer.concat(rest).toString();
    assert.equal(text(afterBytes(parts, 0)), 'abcdef');
    assert.equal(text(afterBytes(parts, 2)), 'cdef');
    assert.equal(text(afterBytes(parts, 3)), 'def');
    assert.equal(text(afterBytes(parts, 6)), '');
  });

  it('treats trim as a hint and reports everything as data', async () => {
    const device = RawFileDevice.open(newFile(8192, 1));
    await device.trim(0, 4096);
    assert.deepEqual(await device.read(0, 1), Buffer.from([1]));
    assert.deepEqual(await device.blockStatus(4096, 4096), [
      { lengthBytes: 4096, hole: false, zero: false },
    ]);
    await device.close();
  });

  it('rejects out-of-range, read-only and closed use with typed errors', async () => {
    const path = newFile(8192);
    const device = RawFileDevice.open(path, { readOnly: true });
    await assert.rejects(device.read(8000, 200), kind('range'));
    await assert.rejects(device.read(-1, 1), kind('range'));
    await assert.rejects(device.blockStatus(8192, 1), kind('range'));
    await assert.rejects(device.write(0, Buffer.alloc(1)), kind('read-only'));
    await assert.rejects(device.trim(0, 1), kind('read-only'));
    await device.close();
    await assert.rejects(device.read(0, 1), kind('closed'));
  });

  it('refuses a file whose size is not a multiple of the block size', () => {
    assert.throws(() => RawFileDevice.open(newFile(5000)), /not a multiple of blockSizeBytes 4096/);
    assert.equal(RawFileDevice.open(newFile(5120), { blockSizeBytes: 512 }).sizeBytes, 5120);
  });

  it('waits for operations in flight before closing', async () => {
    const device = RawFileDevice.open(newFile(1 << 20), { io: 'threadpool' });
    const writes = Array.from({ length: 16 }, (_, i) =>
      device.write(i * 65536, Buffer.alloc(65536, i)),
    );
    await device.close();
    await Promise.all(writes);
    const file = readFileSync(device.path);
    assert.equal(file[15 * 65536], 15);
  });
});
