// The attach handle on disk: `<runDir>/attach.json`, written atomically (temporary file, fsync,
// rename) so a crash leaves the old or the new handle, never half of one; read back through a
// schema so that a damaged file is a clear error, not a wrong unmount.
import {
  closeSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { ContinuumError } from '../../core/errors.js';
import { attachMethods, validateNbdTarget, type AttachHandle } from './types.js';

/** Names of the files attach keeps in its run directory. */
export const runFiles = {
  handle: 'attach.json',
  fuseDir: 'nbdfuse',
  pidFile: 'nbdfuse.pid',
  nbdfuseLog: 'nbdfuse.log',
  fuse2fsLog: 'fuse2fs.log',
} as const;

/** nbdfuse names its file `nbd` inside its mount point unless told otherwise. */
export const imageFileName = 'nbd';

export function handlePath(runDir: string): string {
  return join(runDir, runFiles.handle);
}

const absolutePath = z.string().startsWith('/');
const processRecordSchema = z.object({ pid: z.int().min(1), startTime: z.int().min(0) });

const handleSchema = z.object({
  version: z.literal(1),
  method: z.enum(attachMethods),
  state: z.enum(['attaching', 'attached', 'detaching']),
  runDir: absolutePath,
  mountPath: absolutePath,
  fileSystem: z.literal('ext4'),
  nbd: z.unknown(),
  createdRunDir: z.boolean(),
  createdMountPath: z.boolean(),
  fuseDir: absolutePath.optional(),
  imagePath: absolutePath.optional(),
  nbdfuse: processRecordSchema.optional(),
  fuse2fs: processRecordSchema.optional(),
  loopDevice: z
    .string()
    .regex(/^\/dev\/loop\d+$/)
    .optional(),
  nbdDevice: z
    .string()
    .regex(/^\/dev\/nbd\d+$/)
    .optional(),
  formatted: z.boolean().optional(),
  fileSystemUuid: z.string().optional(),
});

/** Writes the handle so that a reader sees the old or the new version, also after a crash. */
export function saveHandle(handle: AttachHandle): void {
  const path = handlePath(handle.runDir);
  const temporary = `${path}.tmp`;
  const fd = openSync(temporary, 'w', 0o600);
  try {
    writeSync(fd, `${JSON.stringify(handle, null, 2)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, path);
}

export function removeHandle(runDir: string): void {
  rmSync(handlePath(runDir), { force: true });
  rmSync(`${handlePath(runDir)}.tmp`, { force: true });
}

function handleInvalid(path: string, reason: string, cause?: unknown): ContinuumError {
  return new ContinuumError(
    'CONTINUUM_ERR_ATTACH_HANDLE_INVALID',
    `attach handle ${path}: ${reason}`,
    { details: { path }, cause },
  );
}

/** Parses and checks a handle; throws CONTINUUM_ERR_ATTACH_HANDLE_INVALID saying where. */
export function parseHandle(text: string, path = '(attach handle)'): AttachHandle {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw handleInvalid(path, `not JSON: ${(error as Error).message}`, error);
  }
  const result = handleSchema.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue === undefined || issue.path.length === 0 ? '(root)' : issue.path.join('.');
    throw handleInvalid(path, `${where}: ${issue?.message ?? 'invalid'}`);
  }
  let nbd: AttachHandle['nbd'];
  try {
    nbd = validateNbdTarget(result.data.nbd, 'nbd');
  } catch (error) {
    throw handleInvalid(path, (error as Error).message, error);
  }
  return { ...result.data, nbd };
}

/** The handle in runDir, or null when there is none (never attached, or fully detached). */
export function readHandle(runDir: string): AttachHandle | null {
  const path = handlePath(runDir);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw handleInvalid(path, `unreadable: ${(error as Error).message}`, error);
  }
  const handle = parseHandle(text, path);
  if (handle.runDir !== runDir) {
    throw handleInvalid(path, `names run directory ${handle.runDir}, but was found in ${runDir}`);
  }
  return handle;
}
