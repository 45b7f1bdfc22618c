// Importing disk images: as a golden image (a frozen layer that clones stack on) or as a new
// volume. Raw files are read directly; qcow2 goes through `qemu-img convert` to a sparse raw file
// in the store's tmp/ first. A golden image is deduplicated by content: the SHA-256 of its bytes
// (padded with zeroes to whole blocks) is computed before anything is copied, and an image with
// the same content and size already in the store is reused under the new name. Blocks of zeroes
// are never stored. The long copy runs outside the store's control lock; only the final catalog
// commit takes it, re-checking the name.
import { createHash, randomUUID } from 'node:crypto';
import { rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { copyCatalog } from './catalog.js';
import { alreadyExists, fromBlockError, notFound, volumeError } from './engine-errors.js';
import { closeFile, openFile, readAt } from './file-io.js';
import { checkName, checkVolumeSize, copyChunkBytes, roundUpToBlock } from './limits.js';
import { checkQcow2, detectFormat, runQemuImg, type ImageFormat } from './qemu-img.js';
import type { ProgressListener } from './progress.js';
import type { StoreContext } from './store-context.js';

export interface ImportOptions {
  /** Default "auto": qcow2 if the file has qcow2's magic, raw otherwise. */
  readonly format?: ImageFormat | 'auto';
  /** Called after every chunk (1 MiB) of each phase; the CLI draws a bar from it. */
  readonly onProgress?: ProgressListener;
}

export interface ImportResult {
  readonly name: string;
  readonly sizeBytes: number;
  /** SHA-256 of the content (golden images only). */
  readonly sha256?: string;
  /** An image with the same content existed; its layer was reused and nothing was copied. */
  readonly deduplicated: boolean;
}

interface PreparedSource {
  readonly rawPath: string;
  readonly sizeBytes: number;
  readonly cleanup: () => Promise<void>;
}

export async function importImage(
  context: StoreContext,
  name: string,
  filePath: string,
  options: ImportOptions = {},
): Promise<ImportResult> {
  checkName('image', name);
  if (name in context.catalog().images) throw alreadyExists('image', name);
  const source = await prepareSource(context, filePath, options);
  try {
    const sha256 = await hashSource(source, options.onProgress);
    const reused = await context.control(async () => {
      const catalog = context.catalog();
      if (name in catalog.images) throw alreadyExists('image', name);
      const twin = Object.values(catalog.images).find(
        (image) => image.sha256 === sha256 && image.sizeBytes === source.sizeBytes,
      );
      if (twin === undefined) return false;
      const next = copyCatalog(catalog);
      next.images[name] = { ...twin };
      await context.commit(next);
      return true;
    });
    if (reused) return { name, sizeBytes: source.sizeBytes, sha256, deduplicated: true };
    const id = await copyToNewLayer(context, source, { frozen: true, ...options });
    await commitOrDiscard(context, id, (next) => {
      if (name in next.images) throw alreadyExists('image', name);
      next.layers[id] = { parent: null, frozen: true };
      next.images[name] = { layer: id, sizeBytes: source.sizeBytes, sha256 };
    });
    return { name, sizeBytes: source.sizeBytes, sha256, deduplicated: false };
  } finally {
    await source.cleanup();
  }
}

export async function importVolume(
  context: StoreContext,
  name: string,
  filePath: string,
  options: ImportOptions = {},
): Promise<ImportResult> {
  checkName('volume', name);
  if (name in context.catalog().volumes) throw alreadyExists('volume', name);
  const source = await prepareSource(context, filePath, options);
  try {
    const id = await copyToNewLayer(context, source, { frozen: false, ...options });
    await commitOrDiscard(context, id, (next) => {
      if (name in next.volumes) throw alreadyExists('volume', name);
      next.layers[id] = { parent: null, frozen: false };
      next.volumes[name] = { sizeBytes: source.sizeBytes, top: id, snapshots: {} };
    });
    return { name, sizeBytes: source.sizeBytes, deduplicated: false };
  } finally {
    await source.cleanup();
  }
}

async function prepareSource(
  context: StoreContext,
  filePath: string,
  options: ImportOptions,
): Promise<PreparedSource> {
  const stats = await stat(filePath).catch(() => null);
  if (stats === null || !stats.isFile()) throw notFound('image file', filePath);
  const format =
    options.format === undefined || options.format === 'auto'
      ? await detectFormat(filePath)
      : options.format;
  if (format !== 'raw' && format !== 'qcow2') {
    throw volumeError('CONTINUUM_ERR_VOLUME_IMAGE_FORMAT', `unsupported format ${String(format)}`);
  }
  let rawPath = filePath;
  let lengthBytes = stats.size;
  let cleanup = (): Promise<void> => Promise.resolve();
  if (format === 'qcow2') {
    lengthBytes = await checkQcow2(context.qemuImgPath, filePath);
    checkVolumeSize(
      roundUpToBlock(lengthBytes, context.blockSizeBytes),
      context.blockSizeBytes,
      context.limits,
    );
    rawPath = path.join(context.tmpDir, `import-${randomUUID()}.raw`);
    cleanup = () => rm(rawPath, { force: true });
    const args = ['convert', '-p', '-f', 'qcow2', '-O', 'raw', filePath, rawPath];
    try {
      await runQemuImg(context.qemuImgPath, args, {
        onPercent: (percent) =>
          options.onProgress?.({
            phase: 'converting',
            doneBytes: Math.round((lengthBytes * percent) / 100),
            totalBytes: lengthBytes,
          }),
      });
    } catch (error) {
      await cleanup();
      throw error;
    }
  }
  if (lengthBytes === 0) {
    await cleanup();
    throw volumeError('CONTINUUM_ERR_VOLUME_BAD_SIZE', `image ${filePath} is empty`);
  }
  const sizeBytes = roundUpToBlock(lengthBytes, context.blockSizeBytes);
  checkVolumeSize(sizeBytes, context.blockSizeBytes, context.limits);
  return { rawPath, sizeBytes, cleanup };
}

/** Reads the source chunk by chunk, zero-padded to `sizeBytes`; `visit` may keep no reference. */
async function forEachChunk(
  source: PreparedSource,
  visit: (chunk: Buffer, offsetBytes: number) => Promise<void> | void,
): Promise<void> {
  const fd = await openFile(source.rawPath, 'r');
  try {
    const chunk = Buffer.alloc(copyChunkBytes);
    for (let offset = 0; offset < source.sizeBytes; offset += copyChunkBytes) {
      const length = Math.min(copyChunkBytes, source.sizeBytes - offset);
      const read = await readAt(fd, chunk, 0, length, offset);
      if (read < length) chunk.fill(0, read, length);
      await visit(chunk.subarray(0, length), offset);
    }
  } finally {
    await closeFile(fd);
  }
}

async function hashSource(
  source: PreparedSource,
  onProgress: ImportOptions['onProgress'],
): Promise<string> {
  const hash = createHash('sha256');
  await forEachChunk(source, (chunk, offset) => {
    hash.update(chunk);
    const doneBytes = offset + chunk.length;
    onProgress?.({ phase: 'hashing', doneBytes, totalBytes: source.sizeBytes });
  });
  return hash.digest('hex');
}

/** Copies the source into a new layer's files; returns the (not yet committed) layer id. */
async function copyToNewLayer(
  context: StoreContext,
  source: PreparedSource,
  options: ImportOptions & { frozen: boolean },
): Promise<string> {
  const id = context.newLayerId();
  try {
    await context.createLayerFiles(id, 0);
    const layer = await context.layers.acquire(id, { frozen: false, hasParent: false });
    try {
      await forEachChunk(source, async (chunk, offset) => {
        await layer.stageWrite(offset / context.blockSizeBytes, chunk);
        const doneBytes = offset + chunk.length;
        options.onProgress?.({ phase: 'copying', doneBytes, totalBytes: source.sizeBytes });
      });
      if (options.frozen) await layer.freeze();
      else await layer.flush();
    } finally {
      await context.layers.release(id);
    }
    return id;
  } catch (error) {
    await context.deleteLayerFiles([id]);
    throw fromBlockError(`importing ${source.rawPath}`, error);
  }
}

async function commitOrDiscard(
  context: StoreContext,
  id: string,
  change: (next: ReturnType<typeof copyCatalog>) => void,
): Promise<void> {
  try {
    await context.control(async () => {
      const next = copyCatalog(context.catalog());
      change(next);
      await context.commit(next);
    });
  } catch (error) {
    await context.deleteLayerFiles([id]);
    throw error;
  }
}
