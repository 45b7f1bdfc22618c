// The steps of each attach method, in order. Each step saves what it made in the handle as soon
// as it is known, so a failure or a crash part way can be undone by detach. What a crash could
// leave unrecorded is found again by looking (loop devices by backing file, mounts by path,
// nbdfuse by its pid file); a kernel NBD device cannot be, and is recorded only once it is ours.
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ContinuumError } from '../../core/errors.js';
import {
  fuse2fsCommand,
  losetupAttachCommand,
  modprobeNbdCommand,
  mountExt4Command,
  nbdClientConnectCommand,
  nbdfuseCommand,
} from './command-lines.js';
import { run, tool, waitUntil, type AttachContext } from './context.js';
import { spawnDaemon, waitUntilReady } from './daemon.js';
import { prepareFileSystem } from './file-system.js';
import { imageFileName, runFiles, saveHandle } from './handle-store.js';
import { freeNbdDevices, isFuseMount, isNbdDeviceConnected, mountAt } from './host-state.js';
import type { AttachHandle } from './types.js';

export interface StepInput {
  context: AttachContext;
  handle: AttachHandle;
  rootOwner: { uid: number; gid: number };
  asRoot: boolean;
}

/** Free kernel NBD devices tried in turn when another client takes the one we picked. */
const nbdDeviceTriesMax = 4;

function readPidFile(path: string): number | null {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/** The loop driver's direct I/O flag: "1", "0", or "" where the kernel does not show it. */
function readDirectIo(device: string): string {
  try {
    return readFileSync(`/sys/block/${device.slice('/dev/'.length)}/loop/dio`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** Starts nbdfuse on `<runDir>/nbdfuse`; the volume then reads and writes as `<that>/nbd`. */
export async function startNbdfuse({ context, handle }: StepInput): Promise<string> {
  const fuseDir = join(handle.runDir, runFiles.fuseDir);
  const pidFile = join(handle.runDir, runFiles.pidFile);
  const logPath = join(handle.runDir, runFiles.nbdfuseLog);
  mkdirSync(fuseDir, { recursive: true, mode: 0o700 });
  rmSync(pidFile, { force: true }); // A stale one would read as this nbdfuse being ready.
  handle.fuseDir = fuseDir;
  handle.imagePath = join(fuseDir, imageFileName);
  const command = nbdfuseCommand(tool(context, 'nbdfuse'), {
    fuseDir,
    pidFile,
    target: handle.nbd,
  });
  const daemon = spawnDaemon(command, logPath);
  handle.nbdfuse = daemon.record;
  saveHandle(handle);
  // nbdfuse writes its pid file once it is serving (nbdfuse(1), --pidfile).
  await waitUntilReady(daemon, {
    command,
    logPath,
    ready: () => readPidFile(pidFile) === daemon.record.pid && isFuseMount(mountAt(fuseDir)),
    timeoutMs: context.limits.readyTimeoutMs,
    pollIntervalMs: context.limits.pollIntervalMs,
  });
  return handle.imagePath;
}

/** Binds a loop device (direct I/O) over the nbdfuse file; detach finds it by backing file. */
export async function bindLoopDevice(
  { context, handle }: StepInput,
  imagePath: string,
): Promise<string> {
  const stdout = await run(
    context,
    'bind loop device',
    losetupAttachCommand(tool(context, 'losetup'), imagePath),
  );
  const device = stdout.trim();
  if (!/^\/dev\/loop\d+$/.test(device)) {
    throw new ContinuumError(
      'CONTINUUM_ERR_ATTACH_COMMAND_FAILED',
      `losetup printed ${JSON.stringify(device)}, not a loop device`,
    );
  }
  handle.loopDevice = device;
  saveHandle(handle);
  if (readDirectIo(device) === '0') {
    context.log.log('warn', 'the loop device runs without direct I/O', { device });
  }
  return device;
}

/** Connects a kernel NBD device. Recorded only once connected: a device we failed to get may be another client's. */
export async function connectNbdDevice({ context, handle }: StepInput): Promise<string> {
  if (!existsSync('/sys/module/nbd')) {
    await run(context, 'load nbd module', modprobeNbdCommand(tool(context, 'modprobe'), false));
  }
  const candidates = freeNbdDevices().slice(0, nbdDeviceTriesMax);
  let lastError: unknown = new ContinuumError(
    'CONTINUUM_ERR_ATTACH_COMMAND_FAILED',
    'no free /dev/nbd device',
  );
  for (const device of candidates) {
    try {
      await run(
        context,
        'connect nbd device',
        nbdClientConnectCommand(tool(context, 'nbd-client'), { target: handle.nbd, device }),
      );
    } catch (error) {
      lastError = error;
      if (isNbdDeviceConnected(device)) continue; // Another client took it first: try the next.
      throw error;
    }
    handle.nbdDevice = device;
    saveHandle(handle);
    const connected = (): boolean => isNbdDeviceConnected(device);
    await waitUntil(context, `${device} to connect`, connected, context.limits.readyTimeoutMs);
    return device;
  }
  throw lastError;
}

/** Makes or checks the file system, then mounts it with the kernel's ext4 driver. */
export async function mountWithKernel(input: StepInput, device: string): Promise<void> {
  const { context, handle } = input;
  const prepared = await prepareFileSystem(context, device, {
    checkExisting: false,
    rootOwner: input.rootOwner,
  });
  handle.formatted = prepared.formatted;
  handle.fileSystemUuid = prepared.uuid;
  saveHandle(handle);
  await run(context, 'mount', mountExt4Command(tool(context, 'mount'), device, handle.mountPath));
}

/** Makes or checks the file system, then serves it with fuse2fs (no kernel file system involved). */
export async function mountWithFuse2fs(input: StepInput, imagePath: string): Promise<void> {
  const { context, handle } = input;
  const prepared = await prepareFileSystem(context, imagePath, {
    checkExisting: true,
    rootOwner: input.rootOwner,
  });
  handle.formatted = prepared.formatted;
  handle.fileSystemUuid = prepared.uuid;
  const command = fuse2fsCommand(tool(context, 'fuse2fs'), {
    imagePath,
    mountPath: handle.mountPath,
    asRoot: input.asRoot,
  });
  const logPath = join(handle.runDir, runFiles.fuse2fsLog);
  const daemon = spawnDaemon(command, logPath);
  handle.fuse2fs = daemon.record;
  saveHandle(handle);
  await waitUntilReady(daemon, {
    command,
    logPath,
    ready: () => {
      const entry = mountAt(handle.mountPath);
      return isFuseMount(entry) && entry.source === imagePath;
    },
    timeoutMs: context.limits.readyTimeoutMs,
    pollIntervalMs: context.limits.pollIntervalMs,
  });
}

/** Runs the steps of one method; the caller marks the handle attached or undoes it. */
export async function runAttachSteps(input: StepInput): Promise<void> {
  switch (input.handle.method) {
    case 'nbd-client':
      return mountWithKernel(input, await connectNbdDevice(input));
    case 'nbdfuse-loop': {
      const imagePath = await startNbdfuse(input);
      return mountWithKernel(input, await bindLoopDevice(input, imagePath));
    }
    case 'nbdfuse-fuse2fs':
      return mountWithFuse2fs(input, await startNbdfuse(input));
  }
}
