// Volume jobs through the agent's socket and, with no agent, on the store directly: the same
// results either way, progress along the way, and bad jobs refused with what was wrong.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../core/ports.js';
import { type Progress, VolumeStore } from '../storage/engine/index.js';
import {
  callVolumeServer,
  submitVolumeJob,
  type VolumeControl,
  VolumeJobServer,
  volumeJobLineBytesMax,
  volumeJobSocketPath,
} from './volume-jobs.js';

const mebibyte = 1_048_576;

describe('volume jobs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'continuum-jobs-'));
  const image = join(dir, 'disk.raw');
  const content = Buffer.concat([randomBytes(3 * mebibyte), Buffer.alloc(mebibyte)]);
  writeFileSync(image, content);
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('runs on the store itself when no agent is running', async () => {
    const progress: Progress[] = [];
    const { result, via } = await submitVolumeJob(
      dir,
      { op: 'import', as: 'image', name: 'base', file: image },
      (p) => progress.push(p),
    );
    assert.equal(via, 'store');
    assert.equal((result as { sizeBytes: number }).sizeBytes, content.length);
    assert.ok(progress.length > 0 && progress.at(-1)!.doneBytes === progress.at(-1)!.totalBytes);
  });

  it('refuses a directory that is not a node', async () => {
    await assert.rejects(
      submitVolumeJob(join(dir, 'nope'), { op: 'images' }, () => undefined),
      /no node data directory at .*nope/,
    );
  });

  describe('through a running agent', () => {
    let store: VolumeStore;
    let server: VolumeJobServer;
    const added: string[] = [];
    before(async () => {
      store = await VolumeStore.open(join(dir, 'volumes'));
      server = new VolumeJobServer(
        store,
        { volumeAdded: (name) => Promise.resolve(void added.push(name)) },
        silentLogger,
      );
      await server.listen(volumeJobSocketPath(dir));
    });
    after(async () => {
      await server.close();
      await store.close();
    });

    it('imports a volume, tells the agent, and exports it back unchanged', async () => {
      const seen: Progress[] = [];
      const imported = await submitVolumeJob(
        dir,
        { op: 'import', as: 'volume', name: 'data', file: image, format: 'raw' },
        (p) => seen.push(p),
      );
      assert.equal(imported.via, 'agent');
      assert.deepEqual(added, ['data']);
      assert.ok(
        seen.some((p) => p.phase === 'copying'),
        'progress reached the client',
      );
      const out = join(dir, 'out.raw');
      await submitVolumeJob(dir, { op: 'export', source: 'data', file: out }, () => undefined);
      assert.ok(readFileSync(out).equals(content));
      const { result } = await submitVolumeJob(dir, { op: 'images' }, () => undefined);
      assert.deepEqual(
        (result as { images: { name: string }[] }).images.map((i) => i.name),
        ['base'],
      );
      const scrubbed = await submitVolumeJob(dir, { op: 'scrub', source: 'image:base' }, () => {});
      assert.equal((scrubbed.result as { damaged: unknown[] }).damaged.length, 0);
    });

    it('answers a bad job with where and what was expected', async () => {
      await assert.rejects(
        submitVolumeJob(
          dir,
          { op: 'import', as: 'volume', name: 'x', file: 'relative.raw' },
          () => undefined,
        ),
        /volume job: file: expected an absolute file path/,
      );
      await assert.rejects(
        submitVolumeJob(
          dir,
          { op: 'export', source: 'missing', file: join(dir, 'missing.raw') },
          () => {},
        ),
        (error: Error & { code?: string }) => error.code === 'CONTINUUM_ERR_VOLUME_NOT_FOUND',
      );
    });

    it('refuses a line longer than a job may be, and goes on serving', async () => {
      const answer = await new Promise<string>((resolve, reject) => {
        const socket = createConnection(volumeJobSocketPath(dir));
        let text = '';
        socket.on('data', (chunk) => (text += chunk.toString()));
        socket.on('end', () => resolve(text));
        socket.on('error', reject);
        socket.write('x'.repeat(volumeJobLineBytesMax + 10));
      });
      assert.match(answer, /"ok":false.*at most 65536 bytes/);
      const { via } = await submitVolumeJob(dir, { op: 'images' }, () => undefined);
      assert.equal(via, 'agent');
    });
  });

  describe('set-duties', () => {
    const controlDir = mkdtempSync(join(tmpdir(), 'continuum-duties-'));
    const handled: VolumeControl[] = [];
    let store: VolumeStore;
    let server: VolumeJobServer;
    before(async () => {
      store = await VolumeStore.open(join(controlDir, 'volumes'));
      server = new VolumeJobServer(store, {}, silentLogger, (control) => {
        handled.push(control);
        return Promise.resolve({});
      });
      await server.listen(volumeJobSocketPath(controlDir));
    });
    after(async () => {
      await server.close();
      await store.close();
      rmSync(controlDir, { recursive: true, force: true });
    });
    const membership = {
      replicas: [{ node: 'a', address: '127.0.0.1:7500' }],
      isr: ['a'],
      isrVersion: 1,
    };
    const good = { volume: 'data', sizeBytes: 4 * mebibyte, role: 'primary', epoch: 1, membership };
    const send = (duties: unknown[]) =>
      callVolumeServer(controlDir, { op: 'set-duties', duties } as VolumeControl);

    it('refuses a malformed duty with where and what was expected, and changes nothing', async () => {
      await assert.rejects(
        send([good, { ...good, volume: 'logs', role: 'leader' }]),
        (error: Error & { code?: string }) =>
          error.code === 'CONTINUUM_ERR_BAD_REQUEST' &&
          /^volume control: duties\.1\.role: /.test(error.message),
      );
      await assert.rejects(send([{ ...good, epoch: 0 }]), /volume control: duties\.0\.epoch: /);
      await assert.rejects(
        send([good, { ...good, role: 'replica' }]),
        /volume control: duties\.1\.volume: volume data has more than one duty/,
      );
      assert.deepEqual(handled, []);
    });

    it('passes a well-formed set on', async () => {
      await send([good]);
      assert.deepEqual(handled, [{ op: 'set-duties', duties: [good] }]);
    });
  });
});
