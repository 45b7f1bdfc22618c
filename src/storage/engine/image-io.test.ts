// Import and export of disk images: raw directly, qcow2 through the real qemu-img when it is
// installed. Round trips must give back every byte; golden images are deduplicated by content;
// unsafe or unknown inputs are refused before anything is stored.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { ContinuumError } from '../../core/errors.js';
import type { Progress } from './progress.js';
import { distinctBlocks, tempStore, type TempStore } from './test-support.js';

const mebibyte = 2 ** 20;
const qemuImgMissing = (() => {
  try {
    execFileSync('qemu-img', ['--version'], { stdio: 'ignore' });
    return false;
  } catch {
    return 'qemu-img is not installed (Debian: qemu-utils)';
  }
})();

/** 4 MiB with data, a 1 MiB hole, more data, and a tail of zeroes: what disk images look like. */
function diskContent(): Buffer {
  const content = Buffer.alloc(4 * mebibyte);
  distinctBlocks(1, 256).copy(content, 0);
  distinctBlocks(2, 100).copy(content, 2 * mebibyte);
  return content;
}

async function rejectsWith(promise: Promise<unknown>, code: string, text?: RegExp) {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof ContinuumError, `expected ContinuumError, got ${String(error)}`);
    assert.equal(error.code, code);
    if (text !== undefined) assert.match(error.message, text);
    return true;
  });
}

describe('image import and export', () => {
  let temp: TempStore;
  const file = (name: string): string => path.join(temp.dir, name);
  beforeEach(async () => {
    temp = await tempStore();
  });
  afterEach(async () => {
    await temp.cleanup();
  });

  it('round-trips a raw image, sparse, with progress', async () => {
    const content = diskContent();
    await writeFile(file('in.raw'), content);
    const progress: Progress[] = [];
    const result = await temp.store.importImage('base', file('in.raw'), {
      onProgress: (step) => progress.push(step),
    });
    assert.equal(result.deduplicated, false);
    assert.equal(result.sizeBytes, content.length);
    assert.deepEqual([...new Set(progress.map((step) => step.phase))], ['hashing', 'copying']);
    assert.equal(progress.at(-1)!.doneBytes, content.length);

    const exported = await temp.store.export({ image: 'base' }, file('out.raw'));
    assert.ok((await readFile(file('out.raw'))).equals(content));
    assert.equal(exported.dataBytes, 356 * 4096);
    const allocated = (await stat(file('out.raw'))).blocks * 512;
    assert.ok(allocated < content.length, `export allocated ${allocated} of ${content.length}`);
    await rejectsWith(
      temp.store.export({ image: 'base' }, file('out.raw')),
      'CONTINUUM_ERR_VOLUME_EXISTS',
    );
  });

  it('deduplicates a golden image imported twice', async () => {
    await writeFile(file('a.raw'), diskContent());
    const first = await temp.store.importImage('first', file('a.raw'));
    const second = await temp.store.importImage('second', file('a.raw'));
    assert.equal(second.deduplicated, true);
    assert.equal(second.sha256, first.sha256);
    const images = await temp.store.listImages();
    assert.equal(images.length, 2);
    assert.equal(images[0]!.layer.id, images[1]!.layer.id);
    await temp.store.clone('vm', { image: 'second' });
    await temp.store.deleteImage('second'); // "first" still names the layer
    const vm = await temp.store.open('vm');
    assert.ok((await vm.read(0, 4 * mebibyte)).equals(diskContent()));
    await vm.close();
  });

  it('imports a raw file as a writable volume, rounding its size up to whole blocks', async () => {
    await writeFile(file('odd.raw'), Buffer.alloc(10_000, 0x61));
    const result = await temp.store.importVolume('odd', file('odd.raw'));
    assert.equal(result.sizeBytes, 12288);
    const volume = await temp.store.open('odd');
    const data = await volume.read(0, 12288);
    assert.ok(data.subarray(0, 10_000).equals(Buffer.alloc(10_000, 0x61)));
    assert.ok(data.subarray(10_000).equals(Buffer.alloc(2288)));
    await volume.write(0, Buffer.alloc(4096, 0x62));
    await volume.close();
  });

  it('round-trips qcow2 through qemu-img', { skip: qemuImgMissing }, async () => {
    const content = diskContent();
    await writeFile(file('in.raw'), content);
    execFileSync('qemu-img', [
      'convert',
      '-f',
      'raw',
      '-O',
      'qcow2',
      file('in.raw'),
      file('in.qcow2'),
    ]);
    const phases = new Set<string>();
    await temp.store.importVolume('q', file('in.qcow2'), {
      onProgress: (p) => phases.add(p.phase),
    });
    assert.ok(phases.has('converting') && phases.has('copying'));
    const volume = await temp.store.open('q');
    assert.ok((await volume.read(0, content.length)).equals(content));
    await volume.close();
    // The same content as a golden image: qcow2 and raw imports deduplicate against each other.
    await temp.store.importImage('from-raw', file('in.raw'));
    const fromQcow2 = await temp.store.importImage('from-qcow2', file('in.qcow2'));
    assert.equal(fromQcow2.deduplicated, true);

    await temp.store.export({ volume: 'q' }, file('out.qcow2'), { format: 'qcow2' });
    const info = JSON.parse(
      execFileSync('qemu-img', ['info', '--output=json', file('out.qcow2')], { encoding: 'utf8' }),
    ) as { format: string; 'virtual-size': number };
    assert.equal(info.format, 'qcow2');
    assert.equal(info['virtual-size'], content.length);
    execFileSync('qemu-img', [
      'convert',
      '-f',
      'qcow2',
      '-O',
      'raw',
      file('out.qcow2'),
      file('back.raw'),
    ]);
    assert.ok((await readFile(file('back.raw'))).equals(content));
  });

  it('refuses a qcow2 image with a backing file', { skip: qemuImgMissing }, async () => {
    await writeFile(file('secret.raw'), Buffer.alloc(mebibyte, 0x73));
    execFileSync(
      'qemu-img',
      ['create', '-f', 'qcow2', '-b', file('secret.raw'), '-F', 'raw', file('overlay.qcow2')],
      { stdio: 'ignore' },
    );
    await rejectsWith(
      temp.store.importImage('overlay', file('overlay.qcow2')),
      'CONTINUUM_ERR_VOLUME_IMAGE_FORMAT',
      /backing file/,
    );
    assert.deepEqual(await temp.store.listImages(), []);
  });

  it('says so when qemu-img is needed but missing', async () => {
    await writeFile(
      file('fake.qcow2'),
      Buffer.concat([Buffer.from([0x51, 0x46, 0x49, 0xfb]), Buffer.alloc(508)]),
    );
    await temp.reopen({ qemuImgPath: path.join(temp.dir, 'no-such-qemu-img') });
    await rejectsWith(
      temp.store.importImage('x', file('fake.qcow2')),
      'CONTINUUM_ERR_VOLUME_TOOL_MISSING',
      /qemu-utils/,
    );
  });

  it('rejects bad inputs and stores nothing', async () => {
    await writeFile(file('disk.vmdk'), Buffer.concat([Buffer.from('KDMV'), Buffer.alloc(4092)]));
    await rejectsWith(
      temp.store.importImage('v', file('disk.vmdk')),
      'CONTINUUM_ERR_VOLUME_IMAGE_FORMAT',
      /vmdk/,
    );
    await writeFile(file('empty.raw'), Buffer.alloc(0));
    await rejectsWith(
      temp.store.importImage('e', file('empty.raw')),
      'CONTINUUM_ERR_VOLUME_BAD_SIZE',
      /empty/,
    );
    await rejectsWith(
      temp.store.importImage('m', file('missing.raw')),
      'CONTINUUM_ERR_VOLUME_NOT_FOUND',
      /missing\.raw/,
    );
    await rejectsWith(
      temp.store.importImage('Bad Name', file('empty.raw')),
      'CONTINUUM_ERR_VOLUME_BAD_NAME',
    );
    await writeFile(file('ok.raw'), Buffer.alloc(4096, 1));
    await temp.store.importImage('ok', file('ok.raw'));
    await rejectsWith(temp.store.importImage('ok', file('ok.raw')), 'CONTINUUM_ERR_VOLUME_EXISTS');
    await rejectsWith(
      temp.store.export({ image: 'nope' }, file('x.raw')),
      'CONTINUUM_ERR_VOLUME_NOT_FOUND',
    );
    assert.deepEqual(
      (await temp.store.listImages()).map((image) => image.name),
      ['ok'],
    );
    assert.deepEqual(await temp.store.list(), []);
  });
});
