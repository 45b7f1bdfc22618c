// qemu-img, for the image formats the engine does not read itself (qcow2). It is an optional tool:
// a missing binary is reported with its own code so the CLI can say what to install. Images are
// never handed to qemu-img without an explicit format, and a qcow2 image that names a backing
// file or an external data file is refused: either would make qemu-img read some other host file
// into the volume.
import { spawn } from 'node:child_process';
import { open } from 'node:fs/promises';
import { volumeError } from './engine-errors.js';

export type ImageFormat = 'raw' | 'qcow2';

/** Formats that are recognisable by their first bytes but not supported. */
const foreignMagics: readonly { name: string; offset: number; magic: Buffer }[] = [
  { name: 'vmdk', offset: 0, magic: Buffer.from('KDMV', 'latin1') },
  { name: 'vhdx', offset: 0, magic: Buffer.from('vhdxfile', 'latin1') },
  { name: 'vdi', offset: 64, magic: Buffer.from([0x7f, 0x10, 0xda, 0xbe]) },
];
const qcow2Magic = Buffer.from([0x51, 0x46, 0x49, 0xfb]);

/** qcow2 if the file starts with its magic; refuses other known formats; raw otherwise. */
export async function detectFormat(filePath: string): Promise<ImageFormat> {
  const handle = await open(filePath, 'r');
  try {
    const head = Buffer.alloc(512);
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    if (bytesRead >= 4 && head.subarray(0, 4).equals(qcow2Magic)) return 'qcow2';
    for (const foreign of foreignMagics) {
      const bytes = head.subarray(foreign.offset, foreign.offset + foreign.magic.length);
      if (bytes.equals(foreign.magic)) {
        throw volumeError(
          'CONTINUUM_ERR_VOLUME_IMAGE_FORMAT',
          `${filePath} looks like a ${foreign.name} image; convert it to raw or qcow2 first`,
        );
      }
    }
    return 'raw';
  } finally {
    await handle.close();
  }
}

/** Runs qemu-img; `onPercent` hears the progress that `-p` prints. Resolves with stdout. */
export function runQemuImg(
  qemuImgPath: string,
  args: readonly string[],
  options: { onPercent?: (percent: number) => void } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(qemuImgPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      stdout += chunk;
      const matches = [...chunk.matchAll(/\((\d+(?:\.\d+)?)\/100%\)/g)];
      const last = matches[matches.length - 1];
      if (last !== undefined) options.onPercent?.(Number(last[1]));
      if (stdout.length > 1 << 20) stdout = stdout.slice(-(1 << 16));
    });
    child.stderr.on('data', (chunk: string) => {
      if (stderr.length < 1 << 16) stderr += chunk;
    });
    child.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') {
        reject(
          volumeError(
            'CONTINUUM_ERR_VOLUME_TOOL_MISSING',
            `${qemuImgPath} is not installed (Debian: apt-get install qemu-utils); ` +
              'it is needed for qcow2 images',
          ),
        );
      } else reject(volumeError('CONTINUUM_ERR_VOLUME_IO', `running ${qemuImgPath}`, error));
    });
    child.on('close', (code, signal) => {
      if (code === 0) return resolve(stdout);
      reject(
        volumeError(
          'CONTINUUM_ERR_VOLUME_IMAGE_FORMAT',
          `qemu-img ${args[0] ?? ''} failed (${signal ?? `exit ${code}`}): ${stderr.trim()}`,
        ),
      );
    });
  });
}

/** Checks that a qcow2 image stands alone; returns its virtual size in bytes. */
export async function checkQcow2(qemuImgPath: string, filePath: string): Promise<number> {
  const text = await runQemuImg(qemuImgPath, ['info', '--output=json', '-f', 'qcow2', filePath]);
  let info: Record<string, unknown>;
  try {
    info = JSON.parse(text) as Record<string, unknown>;
  } catch (error) {
    throw volumeError('CONTINUUM_ERR_VOLUME_IMAGE_FORMAT', `qemu-img info on ${filePath}`, error);
  }
  if (info['backing-filename'] !== undefined) {
    throw volumeError(
      'CONTINUUM_ERR_VOLUME_IMAGE_FORMAT',
      `${filePath} has a backing file (${JSON.stringify(info['backing-filename'])}); flatten it first ` +
        '(qemu-img convert -O qcow2) so that the image stands alone',
    );
  }
  const specific = info['format-specific'] as { data?: { 'data-file'?: unknown } } | undefined;
  if (specific?.data?.['data-file'] !== undefined) {
    throw volumeError(
      'CONTINUUM_ERR_VOLUME_IMAGE_FORMAT',
      `${filePath} keeps its data in an external file; convert it to a plain qcow2 first`,
    );
  }
  const size = info['virtual-size'];
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size <= 0) {
    throw volumeError('CONTINUUM_ERR_VOLUME_IMAGE_FORMAT', `${filePath}: no virtual size`);
  }
  return size;
}
