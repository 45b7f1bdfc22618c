// attachVolume: connects an NBD export, formats it ext4 on first use and mounts it at the path a
// workload asked for, by the best method this host allows (docs/volume-attach.md). A failure part
// way undoes what was done; a crash part way leaves a handle that recoverAttachment undoes.
import { existsSync, mkdirSync, readdirSync, realpathSync, rmdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { ContinuumError } from '../../core/errors.js';
import { runAttachSteps } from './attach-steps.js';
import { realCommandRunner, type CommandRunner } from './command-runner.js';
import type { AttachContext } from './context.js';
import { detachVolume } from './detach.js';
import { chooseAttachMethod, detectAttachMethods, type AttachDetection } from './detect.js';
import { readHandle, saveHandle } from './handle-store.js';
import { mountAt } from './host-state.js';
import {
  attachLimits,
  validateAttachRequest,
  type AttachHandle,
  type AttachRequest,
} from './types.js';

export interface AttachVolumeRequest extends AttachRequest {
  /** The agent's detection from start-up; probed afresh when absent. */
  detection?: AttachDetection;
  /** Replaces the real command runner (tests). */
  runner?: CommandRunner;
}

function inUse(message: string, details: Record<string, unknown>): ContinuumError {
  return new ContinuumError('CONTINUUM_ERR_ATTACH_IN_USE', message, { details });
}

/**
 * The kernel reports mounts and loop backing files by their real paths, so a path through a
 * symbolic link would never be recognized again by detach; such paths are refused up front.
 */
function requireRealPath(where: string, path: string): void {
  const real = realpathSync(path);
  if (real !== path) {
    throw new ContinuumError(
      'CONTINUUM_ERR_ATTACH_INVALID',
      `${where}: ${path} passes through a symbolic link (it is really ${real}); give the real path`,
      { details: { where } },
    );
  }
}

/** Creates the mount point if missing; refuses one that is mounted on or holds files. */
function prepareMountPath(mountPath: string): boolean {
  if (!existsSync(mountPath)) {
    mkdirSync(dirname(mountPath), { recursive: true });
    requireRealPath('mountPath', dirname(mountPath));
    mkdirSync(mountPath, { mode: 0o755 });
    return true;
  }
  requireRealPath('mountPath', mountPath);
  if (!statSync(mountPath).isDirectory()) {
    throw inUse(`mount path ${mountPath} exists and is not a directory`, { mountPath });
  }
  const mounted = mountAt(mountPath);
  if (mounted !== null) {
    throw inUse(`mount path ${mountPath} already has ${mounted.source} mounted on it`, {
      mountPath,
    });
  }
  // Mounting over files would hide them from the workload and from whoever put them there.
  if (readdirSync(mountPath).length > 0) {
    throw inUse(`mount path ${mountPath} is not empty`, { mountPath });
  }
  return false;
}

function prepareRunDir(runDir: string): boolean {
  const created = !existsSync(runDir);
  mkdirSync(runDir, { recursive: true, mode: 0o700 });
  requireRealPath('runDir', runDir);
  if (readHandle(runDir) !== null) {
    throw inUse(`run directory ${runDir} already holds an attachment; recover or detach it first`, {
      runDir,
    });
  }
  return created;
}

export async function attachVolume(request: AttachVolumeRequest): Promise<AttachHandle> {
  validateAttachRequest(request);
  const limits = attachLimits(request.limits);
  const detection = request.detection ?? (await detectAttachMethods({ runner: request.runner }));
  const method = chooseAttachMethod(detection, request.method ?? 'auto');
  const log = request.log.child({ mountPath: request.mountPath, method });
  const context: AttachContext = {
    runner: request.runner ?? realCommandRunner,
    tools: detection.facts.tools,
    limits,
    log,
  };
  const createdRunDir = prepareRunDir(request.runDir);
  let createdMountPath: boolean;
  try {
    createdMountPath = prepareMountPath(request.mountPath);
  } catch (error) {
    if (createdRunDir) rmdirSync(request.runDir);
    throw error;
  }
  const handle: AttachHandle = {
    version: 1,
    method,
    state: 'attaching',
    runDir: request.runDir,
    mountPath: request.mountPath,
    fileSystem: request.fileSystem,
    nbd: request.nbd,
    createdRunDir,
    createdMountPath,
  };
  // Persisted first: from here on a crash leaves a record that recovery can act on.
  saveHandle(handle);
  try {
    await runAttachSteps({
      context,
      handle,
      rootOwner: request.rootOwner ?? { uid: detection.facts.uid, gid: detection.facts.gid },
      asRoot: detection.facts.isRoot,
    });
  } catch (error) {
    log.log('warn', 'attach failed; undoing the steps done', { error: String(error) });
    await undo(handle, context, error);
    throw error;
  }
  handle.state = 'attached';
  saveHandle(handle);
  log.log('info', 'volume attached', {
    formatted: handle.formatted,
    device: handle.loopDevice ?? handle.nbdDevice ?? handle.imagePath,
  });
  return handle;
}

async function undo(handle: AttachHandle, context: AttachContext, cause: unknown): Promise<void> {
  try {
    await detachVolume(handle, {
      log: context.log,
      limits: context.limits,
      runner: context.runner,
      tools: context.tools,
    });
  } catch (cleanupError) {
    // The handle stays in the run directory, so recoverAttachment can finish the cleanup later.
    context.log.log('error', 'could not undo a failed attach; recoverAttachment will retry', {
      runDir: handle.runDir,
      cause: String(cause),
      error: String(cleanupError),
    });
  }
}
