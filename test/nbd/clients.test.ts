// The server against the real NBD clients of the ecosystem (CONVENTIONS.md item 18): nbdinfo,
// qemu-img, qemu-io, nbdcopy, over a unix socket and over TCP, with several connections at once.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { until } from '../../src/storage/nbd/test-support.js';
import {
  missingTools,
  RAW_EXPORT_BYTES,
  run,
  runOk,
  startTestServer,
  tempDir,
  type TestServer,
} from './harness.js';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe('NBD server with real clients', () => {
  const dir = tempDir('nbd-clients-');
  let t: TestServer;
  before(async () => {
    t = await startTestServer(dir.path);
  });
  after(async () => {
    await t.close();
    dir.remove();
  });

  it(
    'describes exports to nbdinfo, and lists them',
    { skip: missingTools('nbdinfo') },
    async () => {
      const info = JSON.parse(await runOk('nbdinfo', ['--json', t.uri('raw', 'unix')])) as {
        exports: Record<string, unknown>[];
      };
      const raw = info.exports[0]!;
      assert.equal(raw['export-size'], RAW_EXPORT_BYTES);
      assert.equal(raw.description, 'raw test export');
      assert.equal(raw.can_multi_conn, true);
      assert.equal(raw.can_fua, true);
      assert.equal(raw.is_read_only, false);
      assert.deepEqual(raw.contexts, ['base:allocation']);
      assert.equal(raw.block_size_maximum, 32 << 20);
      const frozen = JSON.parse(await runOk('nbdinfo', ['--json', t.uri('frozen', 'tcp')])) as {
        exports: Record<string, unknown>[];
      };
      assert.equal(frozen.exports[0]!.is_read_only, true);
      assert.equal(frozen.exports[0]!.can_trim, false);
      const listed = JSON.parse(await runOk('nbdinfo', ['--list', '--json', t.uri('', 'tcp')])) as {
        exports: { 'export-name': string }[];
      };
      assert.deepEqual(listed.exports.map((e) => e['export-name']).sort(), [
        'frozen',
        'raw',
        'sparse',
      ]);
      const missing = await run('nbdinfo', [t.uri('nope', 'unix')]);
      assert.notEqual(missing.code, 0);
    },
  );

  it('reports the size to qemu-img info', { skip: missingTools('qemu-img') }, async () => {
    const info = JSON.parse(
      await runOk('qemu-img', ['info', '--output=json', t.uri('raw', 'tcp')]),
    ) as Record<string, unknown>;
    assert.equal(info['virtual-size'], RAW_EXPORT_BYTES);
  });

  for (const transport of ['unix', 'tcp'] as const) {
    it(
      `verifies qemu-io pattern writes with pattern reads (${transport})`,
      { skip: missingTools('qemu-io') },
      async () => {
        const uri = t.uri('raw', transport);
        const offset = (transport === 'unix' ? 1 : 2) << 20;
        // -f asks for FUA on the second write.
        await runOk('qemu-io', [
          '-f',
          'raw',
          '-c',
          `write -P 0xab ${offset} 192k`,
          '-c',
          `write -f -P 0x11 ${offset} 4k`,
          uri,
        ]);
        await runOk('qemu-io', [
          '-f',
          'raw',
          '-c',
          `read -P 0x11 ${offset} 4k`,
          '-c',
          `read -P 0xab ${offset + 4096} 188k`,
          uri,
        ]);
        const wrong = await run('qemu-io', ['-f', 'raw', '-c', `read -P 0xcd ${offset} 4k`, uri]);
        assert.notEqual(wrong.code, 0, 'a wrong pattern must fail, or the check proves nothing');
        const zeroes = await runOk('qemu-io', [
          '-f',
          'raw',
          '-c',
          `write -z ${offset} 64k`,
          '-c',
          `read -P 0 ${offset} 64k`,
          uri,
        ]);
        assert.match(zeroes, /read 65536\/65536/);
        const frozen = await run('qemu-io', [
          '-f',
          'raw',
          '-c',
          'write -P 1 0 4k',
          t.uri('frozen', transport),
        ]);
        assert.notEqual(frozen.code, 0, 'writes to a read-only export fail');
      },
    );
  }

  it(
    'converts an image in with qemu-img convert and compares it equal',
    { skip: missingTools('qemu-img') },
    async () => {
      const source = join(dir.path, 'source.raw');
      writeFileSync(
        source,
        Buffer.concat([randomBytes(3 << 20), Buffer.alloc(RAW_EXPORT_BYTES - (3 << 20))]),
      );
      await runOk(
        'qemu-img',
        ['convert', '-n', '-f', 'raw', '-O', 'raw', source, t.uri('raw', 'unix')],
        60_000,
      );
      await runOk(
        'qemu-img',
        ['compare', '-f', 'raw', '-F', 'raw', source, t.uri('raw', 'tcp')],
        60_000,
      );
      await runOk('qemu-io', ['-f', 'raw', '-c', 'write -P 0x42 100k 1k', t.uri('raw', 'tcp')]);
      const differ = await run('qemu-img', [
        'compare',
        '-f',
        'raw',
        '-F',
        'raw',
        source,
        t.uri('raw', 'unix'),
      ]);
      assert.equal(differ.code, 1, 'compare notices a changed byte');
    },
  );

  it(
    'round-trips data through nbdcopy with several connections, sha256 intact',
    { skip: missingTools('nbdcopy') },
    async () => {
      const source = join(dir.path, 'copy-in.raw');
      const back = join(dir.path, 'copy-out.raw');
      const data = Buffer.concat([
        randomBytes(8 << 20),
        Buffer.alloc(40 << 20),
        randomBytes(RAW_EXPORT_BYTES - (48 << 20)),
      ]);
      writeFileSync(source, data);
      await runOk(
        'nbdcopy',
        ['--connections=4', '--requests=16', source, t.uri('raw', 'unix')],
        60_000,
      );
      await runOk('nbdcopy', ['--connections=2', t.uri('raw', 'tcp'), back], 60_000);
      assert.equal(sha256(readFileSync(back)), sha256(data));
    },
  );

  it(
    'copies sparsely: nbdcopy skips the holes block status reports',
    { skip: missingTools('nbdcopy') },
    async () => {
      const sparse = t.devices.sparse!;
      await sparse.write(5 << 20, Buffer.alloc(65536, 0x77));
      const back = join(dir.path, 'sparse-out.raw');
      const before = t.server.counters().bytesRead;
      await runOk('nbdcopy', [t.uri('sparse', 'unix'), back], 60_000);
      const read = t.server.counters().bytesRead - before;
      assert.ok(read < 1 << 20, `read ${read} bytes of a 64 MiB export with 64 KiB of data`);
      const copy = readFileSync(back);
      assert.equal(copy.length, RAW_EXPORT_BYTES);
      assert.equal(copy[5 << 20], 0x77);
      assert.equal(copy[0], 0);
    },
  );

  it(
    'serves two qemu-io writers at once, each seeing its own data',
    { skip: missingTools('qemu-io') },
    async () => {
      const writers = [0x21, 0x22].map((pattern, i) =>
        runOk('qemu-io', [
          '-f',
          'raw',
          '-c',
          `write -P ${pattern} ${(10 + i) << 20} 1M`,
          '-c',
          'flush',
          t.uri('raw', i === 0 ? 'unix' : 'tcp'),
        ]),
      );
      await Promise.all(writers);
      await runOk('qemu-io', [
        '-f',
        'raw',
        '-c',
        `read -P 0x21 ${10 << 20} 1M`,
        '-c',
        `read -P 0x22 ${11 << 20} 1M`,
        t.uri('raw', 'unix'),
      ]);
      await until(() => t.server.counters().connectionsOpen === 0, 'both connections closed');
    },
  );
});
