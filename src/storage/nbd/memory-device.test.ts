// The in-memory test device keeps the BlockDevice contract it is used to test against.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BlockDeviceError } from '../block-device.js';
import { MemoryBlockDevice } from './memory-device.js';

describe('MemoryBlockDevice', () => {
  it('reads back writes across block boundaries and zeroes elsewhere', async () => {
    const device = new MemoryBlockDevice({ sizeBytes: 16384, blockSizeBytes: 4096 });
    await device.write(4000, Buffer.alloc(200, 9));
    const data = await device.read(3990, 220);
    assert.deepEqual(
      data,
      Buffer.concat([Buffer.alloc(10), Buffer.alloc(200, 9), Buffer.alloc(10)]),
    );
    assert.equal(device.allocatedBlocks, 2);
  });

  it('frees whole blocks on trim and zeroes unless NO_HOLE, and reports holes', async () => {
    const device = new MemoryBlockDevice({ sizeBytes: 16384, blockSizeBytes: 4096 });
    await device.write(0, Buffer.alloc(16384, 1));
    await device.trim(4096, 4096);
    await device.writeZeroes(8192, 4096, { mayTrim: false });
    await device.writeZeroes(12288, 100);
    assert.equal(device.allocatedBlocks, 3);
    assert.deepEqual(
      (await device.blockStatus(0, 16384)).map((e) => [e.lengthBytes, e.hole]),
      [
        [4096, false],
        [4096, true],
        [8192, false],
      ],
    );
    assert.deepEqual(
      await device.read(12288, 101),
      Buffer.concat([Buffer.alloc(100), Buffer.alloc(1, 1)]),
    );
  });

  it('raises typed errors for ranges, read-only use, injected failures and use after close', async () => {
    const device = new MemoryBlockDevice({ sizeBytes: 4096, readOnly: true });
    const kind = (kind: string) => (e: unknown) => e instanceof BlockDeviceError && e.kind === kind;
    await assert.rejects(device.read(4000, 100), kind('range'));
    await assert.rejects(device.write(0, Buffer.alloc(1)), kind('read-only'));
    device.failNext('read', 'corrupt');
    await assert.rejects(device.read(0, 1), kind('corrupt'));
    await device.read(0, 1);
    await device.close();
    await assert.rejects(device.flush(), kind('closed'));
  });
});
