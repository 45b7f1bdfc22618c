// Exporting a volume, snapshot or golden image to a disk image file. Raw output is sparse: the
// file is sized first and only chunks that hold data are written. qcow2 output is a raw export to
// the store's tmp/ converted by qemu-img. Every block is read through the normal read path, so a
// damaged block stops the export with a 'corrupt' error instead of being copied out. To export a
// volume that is being written, snapshot it first: an export of a live volume is consistent only
// block by block.
import { randomUUID } from 'node:crypto';
import { rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { alreadyExists, fromBlockError, volumeError } from './engine-errors.js';
import { closeFile, openFile, syncData, truncateFile, writeAt } from './file-io.js';
import { copyChunkBytes } from './limits.js';
import { runQemuImg, type ImageFormat } from './qemu-img.js';
import { formatSourceRef, type SourceRef } from './source-ref.js';
import type { ProgressListener } from './progress.js';
import type { StoreContext } from './store-context.js';
import type { Volume } from './volume-handle.js';

export interface ExportOptions {
  readonly format?: ImageFormat;
  readonly onProgress?: ProgressListener;
}

export interface ExportResult {
  readonly sizeBytes: number;
  /** Bytes that held data and were written (the rest are holes in a raw file). */
  readonly dataBytes: number;
}

export async function exportImage(
  context: StoreContext,
  source: SourceRef,
  filePath: string,
  options: ExportOptions = {},
): Promise<ExportResult> {
  const format = options.format ?? 'raw';
  if (format !== 'raw' && format !== 'qcow2') {
    throw volumeError('CONTINUUM_ERR_VOLUME_IMAGE_FORMAT', `unsupported format ${String(format)}`);
  }
  if (
    await stat(filePath).then(
      () => true,
      () => false,
    )
  )
    throw alreadyExists('file', filePath);
  const volume = await context.control(() => context.openUnlocked(source, { readOnly: true }));
  const rawPath =
    format === 'raw' ? filePath : path.join(context.tmpDir, `export-${randomUUID()}.raw`);
  try {
    const dataBytes = await writeRaw(volume, rawPath, options.onProgress);
    if (format === 'qcow2') {
      await runQemuImg(
        context.qemuImgPath,
        ['convert', '-p', '-f', 'raw', '-O', 'qcow2', rawPath, filePath],
        {
          onPercent: (percent) =>
            options.onProgress?.({
              phase: 'converting',
              doneBytes: Math.round((volume.sizeBytes * percent) / 100),
              totalBytes: volume.sizeBytes,
            }),
        },
      );
    }
    return { sizeBytes: volume.sizeBytes, dataBytes };
  } catch (error) {
    await rm(filePath, { force: true });
    throw fromBlockError(`exporting ${formatSourceRef(source)} to ${filePath}`, error);
  } finally {
    if (rawPath !== filePath) await rm(rawPath, { force: true });
    await volume.close();
  }
}

async function writeRaw(
  volume: Volume,
  filePath: string,
  onProgress: ExportOptions['onProgress'],
): Promise<number> {
  const fd = await openFile(filePath, 'wx');
  let dataBytes = 0;
  try {
    await truncateFile(fd, volume.sizeBytes);
    for (let offset = 0; offset < volume.sizeBytes; offset += copyChunkBytes) {
      const length = Math.min(copyChunkBytes, volume.sizeBytes - offset);
      const extents = await volume.blockStatus(offset, length);
      let at = offset;
      for (const extent of extents) {
        if (!extent.hole) {
          const data = await volume.read(at, extent.lengthBytes);
          await writeAt(fd, data, 0, data.length, at);
          dataBytes += data.length;
        }
        at += extent.lengthBytes;
      }
      onProgress?.({ phase: 'copying', doneBytes: offset + length, totalBytes: volume.sizeBytes });
    }
    await syncData(fd);
  } finally {
    await closeFile(fd);
  }
  return dataBytes;
}
