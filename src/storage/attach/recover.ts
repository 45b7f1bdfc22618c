// After an agent restart: re-attach to an attachment that is whole (nothing is relaunched, the
// workload keeps its mount), or finish tearing down one that is not (CONVENTIONS.md item 8). An
// attachment is whole only when every part of its chain is there: helper processes alive (the
// same ones, by start time), devices bound to our image, and our file system on the mount path.
import type { StepOptions } from './context.js';
import { detachVolume, isOwnMount } from './detach.js';
import { readHandle } from './handle-store.js';
import {
  isFuseMount,
  isNbdDeviceConnected,
  isRecordedProcessAlive,
  loopDevicesBackedBy,
  mountAt,
} from './host-state.js';
import type { AttachHandle } from './types.js';

export interface AttachInspection {
  /** Every part is present and the file system is mounted where the workload expects it. */
  whole: boolean;
  /** What is missing, in words for the log; empty when whole. */
  problems: string[];
}

function nbdfuseProblems(handle: AttachHandle): string[] {
  const problems: string[] = [];
  if (!isRecordedProcessAlive(handle.nbdfuse)) problems.push('nbdfuse is not running');
  if (handle.fuseDir === undefined || !isFuseMount(mountAt(handle.fuseDir))) {
    problems.push('the nbdfuse directory is not mounted');
  }
  return problems;
}

/** Looks at the kernel and /proc, never at what the handle claims alone. */
export function inspectAttachment(handle: AttachHandle): AttachInspection {
  const problems: string[] = [];
  if (handle.state !== 'attached') problems.push(`the attach was left ${handle.state}`);
  switch (handle.method) {
    case 'nbdfuse-loop':
      problems.push(...nbdfuseProblems(handle));
      if (
        handle.loopDevice === undefined ||
        handle.imagePath === undefined ||
        !loopDevicesBackedBy(handle.imagePath).includes(handle.loopDevice)
      ) {
        problems.push('the loop device is not bound to the nbdfuse file');
      }
      break;
    case 'nbdfuse-fuse2fs':
      problems.push(...nbdfuseProblems(handle));
      if (!isRecordedProcessAlive(handle.fuse2fs)) problems.push('fuse2fs is not running');
      break;
    case 'nbd-client':
      if (handle.nbdDevice === undefined || !isNbdDeviceConnected(handle.nbdDevice)) {
        problems.push('the kernel NBD device is not connected');
      }
      break;
  }
  if (!isOwnMount(handle, mountAt(handle.mountPath))) {
    problems.push(`the volume is not mounted on ${handle.mountPath}`);
  }
  return { whole: problems.length === 0, problems };
}

/**
 * Returns the handle when the attachment in runDir is whole; otherwise detaches what is left
 * and returns null, so the caller attaches afresh. Null as well when runDir holds no handle.
 * Throws what detach throws (CONTINUUM_ERR_ATTACH_BUSY when a process still uses a broken mount).
 */
export async function recoverAttachment(
  runDir: string,
  options: StepOptions,
): Promise<AttachHandle | null> {
  const handle = readHandle(runDir);
  if (handle === null) return null;
  const log = options.log.child({ mountPath: handle.mountPath, method: handle.method });
  const inspection = inspectAttachment(handle);
  if (inspection.whole) {
    log.log('info', 're-attached to a volume that stayed mounted', {
      device: handle.loopDevice ?? handle.nbdDevice ?? handle.imagePath,
    });
    return handle;
  }
  log.log('warn', 'found a broken or unfinished attachment; detaching what is left', {
    problems: inspection.problems,
  });
  await detachVolume(handle, options);
  return null;
}
