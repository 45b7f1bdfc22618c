// detachVolume: the attach steps undone in reverse (sync, unmount, loop device or NBD device,
// nbdfuse, files). Every step first looks at what exists (mounts, loop devices, processes) and does
// nothing when its part is already gone, so detach is idempotent and also finishes an attach that
// failed or crashed part way. The handle file goes last: until then a retry knows what to undo.
import { existsSync, readdirSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  fusermountUnmountCommand,
  losetupDetachCommand,
  nbdClientDisconnectCommand,
  umountCommand,
} from './command-lines.js';
import {
  attachContext,
  run,
  tool,
  waitUntil,
  type AttachContext,
  type StepOptions,
} from './context.js';
import { endDaemon, readLogTail } from './daemon.js';
import { handlePath, removeHandle, runFiles, saveHandle } from './handle-store.js';
import {
  isFuseMount,
  isNbdDeviceConnected,
  loopDevicesBackedBy,
  mountAt,
  processRecord,
  type MountEntry,
} from './host-state.js';
import { syncBeforeUnmount, unmountWithRetry } from './unmount.js';
import type { AttachHandle, ProcessRecord } from './types.js';

/** Whether the mount at the handle's mount path is this attachment's (never touch another's). */
export function isOwnMount(handle: AttachHandle, entry: MountEntry | null): boolean {
  if (entry === null) return false;
  switch (handle.method) {
    case 'nbdfuse-loop':
      return (
        entry.source === handle.loopDevice ||
        (handle.imagePath !== undefined &&
          loopDevicesBackedBy(handle.imagePath).includes(entry.source))
      );
    case 'nbdfuse-fuse2fs':
      return isFuseMount(entry) && entry.source === handle.imagePath;
    case 'nbd-client':
      return entry.source === handle.nbdDevice;
  }
}

export async function detachVolume(given: AttachHandle, options: StepOptions): Promise<void> {
  const context = attachContext(options);
  const log = context.log.child({ mountPath: given.mountPath, method: given.method });
  // A copy: the caller's handle keeps saying what it said; the file says where detach got to.
  const handle: AttachHandle = { ...given, state: 'detaching' };
  if (existsSync(handlePath(handle.runDir))) saveHandle(handle);
  const mounted = mountAt(handle.mountPath);
  const ours = isOwnMount(handle, mounted);
  if (ours) {
    await syncBeforeUnmount(context, handle.mountPath);
    const command =
      handle.method === 'nbdfuse-fuse2fs'
        ? fusermountUnmountCommand(tool(context, 'fusermount3'), handle.mountPath)
        : umountCommand(tool(context, 'umount'), handle.mountPath);
    await unmountWithRetry(context, {
      command,
      mountPath: handle.mountPath,
      isMounted: () => isOwnMount(handle, mountAt(handle.mountPath)),
    });
  } else if (mounted !== null) {
    log.log('warn', 'something else is mounted on the mount path; leaving it', {
      source: mounted.source,
    });
  }
  // After its unmount fuse2fs flushes and closes the file system, then exits by itself.
  await endDaemon(handle.fuse2fs, { name: 'fuse2fs', ownExit: ours, ...exitLimits(context) });
  await releaseLoopDevices(context, handle);
  await disconnectNbdDevice(context, handle);
  await stopNbdfuse(context, handle);
  removeRunFiles(handle, log);
  log.log('info', 'volume detached');
}

function exitLimits(context: AttachContext): { exitTimeoutMs: number; pollIntervalMs: number } {
  return {
    exitTimeoutMs: context.limits.exitTimeoutMs,
    pollIntervalMs: context.limits.pollIntervalMs,
  };
}

async function releaseLoopDevices(context: AttachContext, handle: AttachHandle): Promise<void> {
  if (handle.imagePath === undefined) return;
  const imagePath = handle.imagePath;
  for (const device of loopDevicesBackedBy(imagePath)) {
    await run(
      context,
      'release loop device',
      losetupDetachCommand(tool(context, 'losetup'), device),
    );
  }
  // The kernel may finish a release after losetup returns; nbdfuse cannot leave while held.
  const released = (): boolean => loopDevicesBackedBy(imagePath).length === 0;
  await waitUntil(
    context,
    'loop devices to be released',
    released,
    context.limits.commandTimeoutMs,
  );
}

async function disconnectNbdDevice(context: AttachContext, handle: AttachHandle): Promise<void> {
  const device = handle.nbdDevice;
  if (device === undefined || !isNbdDeviceConnected(device)) return;
  await run(
    context,
    'disconnect nbd device',
    nbdClientDisconnectCommand(tool(context, 'nbd-client'), device),
  );
  const disconnected = (): boolean => !isNbdDeviceConnected(device);
  await waitUntil(
    context,
    `${device} to disconnect`,
    disconnected,
    context.limits.commandTimeoutMs,
  );
}

/** Unmounting nbdfuse's directory makes it leave by itself; its PID is the fallback. */
async function stopNbdfuse(context: AttachContext, handle: AttachHandle): Promise<void> {
  const fuseDir = handle.fuseDir;
  if (fuseDir === undefined) return;
  const record = handle.nbdfuse ?? nbdfuseFromPidFile(handle);
  const mounted = isFuseMount(mountAt(fuseDir));
  if (mounted) {
    await unmountWithRetry(context, {
      command: fusermountUnmountCommand(tool(context, 'fusermount3'), fuseDir),
      mountPath: fuseDir,
      isMounted: () => isFuseMount(mountAt(fuseDir)),
    });
  }
  await endDaemon(record, { name: 'nbdfuse', ownExit: mounted, ...exitLimits(context) });
}

/**
 * The nbdfuse of a crash between its spawn and the handle's save, from its pid file; trusted only
 * when that process's command line names our directory, since the PID may since be reused.
 */
function nbdfuseFromPidFile(handle: AttachHandle): ProcessRecord | undefined {
  try {
    const pid = Number(readFileSync(join(handle.runDir, runFiles.pidFile), 'utf8').trim());
    const commandLine = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    if (handle.fuseDir === undefined || !commandLine.includes(handle.fuseDir)) return undefined;
    return processRecord(pid) ?? undefined;
  } catch {
    return undefined;
  }
}

/** Removes what attach created, never recursively: a directory still holding data stays. */
function removeRunFiles(handle: AttachHandle, log: AttachContext['log']): void {
  for (const name of [runFiles.nbdfuseLog, runFiles.fuse2fsLog]) {
    const path = join(handle.runDir, name);
    const tail = readLogTail(path);
    if (tail !== '') log.log('debug', `${name} at detach`, { tail });
    rmSync(path, { force: true });
  }
  rmSync(join(handle.runDir, runFiles.pidFile), { force: true });
  if (handle.fuseDir !== undefined) removeEmptyDirectory(handle.fuseDir, log);
  if (handle.createdMountPath && mountAt(handle.mountPath) === null) {
    removeEmptyDirectory(handle.mountPath, log);
  }
  removeHandle(handle.runDir);
  if (handle.createdRunDir) removeEmptyDirectory(handle.runDir, log);
}

function removeEmptyDirectory(path: string, log: AttachContext['log']): void {
  try {
    rmdirSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    const left = code === 'ENOTEMPTY' ? readdirSync(path).slice(0, 5) : [];
    log.log('warn', 'left a directory in place', { path, code, left });
  }
}
