// The vocabulary of volume attach: the three methods, the NBD target, the request, the persisted
// handle and the limits. Requests are validated here, when they enter, so that nothing is started
// for a request that could never succeed (CONVENTIONS.md items 9 and 12).
import { isAbsolute, normalize } from 'node:path';
import type { Logger } from '../../core/ports.js';
import { ContinuumError } from '../../core/errors.js';

/** In order of preference: `auto` takes the first one that works on this host. */
export const attachMethods = ['nbd-client', 'nbdfuse-loop', 'nbdfuse-fuse2fs'] as const;
export type AttachMethod = (typeof attachMethods)[number];

/** Where the volume is served: a unix socket, or a TCP host and port; always a named export. */
export type NbdTarget =
  | { readonly socketPath: string; readonly exportName: string }
  | { readonly host: string; readonly port: number; readonly exportName: string };

/** A process we started, told apart from a later process that reuses its PID. */
export interface ProcessRecord {
  readonly pid: number;
  /** Field 22 of /proc/<pid>/stat (clock ticks after boot). */
  readonly startTime: number;
}

export type AttachState = 'attaching' | 'attached' | 'detaching';

/**
 * Everything a later agent needs to re-attach to, or tear down, an attachment. Written to
 * `<runDir>/attach.json` before each step that creates something, so a crash part way leaves a
 * record of what may exist; detach also finds loop devices and mounts by looking, not by trust.
 */
export interface AttachHandle {
  version: 1;
  method: AttachMethod;
  state: AttachState;
  runDir: string;
  mountPath: string;
  fileSystem: 'ext4';
  nbd: NbdTarget;
  /** Whether attach created these directories (detach removes only what attach created). */
  createdRunDir: boolean;
  createdMountPath: boolean;
  /** nbdfuse methods: the FUSE mount point holding the image file, and that file. */
  fuseDir?: string;
  imagePath?: string;
  nbdfuse?: ProcessRecord;
  fuse2fs?: ProcessRecord;
  /** nbdfuse-loop: the loop device over the image file. */
  loopDevice?: string;
  /** nbd-client: the kernel NBD device. */
  nbdDevice?: string;
  /** Whether this attach made the file system (false: an existing one was mounted). */
  formatted?: boolean;
  fileSystemUuid?: string;
}

export interface AttachLimits {
  /** Any one external command (losetup, mount, blkid, sync...). */
  commandTimeoutMs: number;
  /** mkfs.ext4 and e2fsck, which touch more of the device. */
  formatTimeoutMs: number;
  /** How long nbdfuse or fuse2fs may take to be serving. */
  readyTimeoutMs: number;
  /** How long unmounting retries while the file system is busy (open files, a cwd inside). */
  unmountBusyTimeoutMs: number;
  unmountRetryIntervalMs: number;
  /** How long a FUSE daemon may take to leave after its unmount, and again after SIGTERM. */
  exitTimeoutMs: number;
  /** How often waits look again at /proc and /sys (they have no event to wait on). */
  pollIntervalMs: number;
  /** Bytes of a command's stdout and stderr kept (each), and quoted in errors. */
  outputBytesMax: number;
}

export const attachLimitDefaults: Readonly<AttachLimits> = {
  commandTimeoutMs: 30_000,
  formatTimeoutMs: 120_000,
  readyTimeoutMs: 10_000,
  unmountBusyTimeoutMs: 10_000,
  unmountRetryIntervalMs: 100,
  exitTimeoutMs: 5_000,
  pollIntervalMs: 25,
  outputBytesMax: 8192,
};

export function attachLimits(overrides: Partial<AttachLimits> = {}): AttachLimits {
  const merged = { ...attachLimitDefaults, ...overrides };
  for (const [name, value] of Object.entries(merged)) {
    if (!Number.isInteger(value) || value < 1) {
      throw new RangeError(`attach limit ${name}: expected a whole number >= 1, got ${value}`);
    }
  }
  return merged;
}

/** Longest unix socket path (sun_path holds 108 bytes with the terminating NUL). */
export const socketPathBytesMax = 107;
/** Longest NBD export name the protocol allows. */
export const exportNameBytesMax = 4096;

function invalid(where: string, expected: string, got: unknown): ContinuumError {
  return new ContinuumError(
    'CONTINUUM_ERR_ATTACH_INVALID',
    `${where}: expected ${expected}, got ${JSON.stringify(got)}`,
    { details: { where } },
  );
}

function checkPath(where: string, value: unknown): void {
  if (typeof value !== 'string' || !isAbsolute(value) || normalize(value) !== value) {
    throw invalid(where, 'an absolute, normalized path', value);
  }
  if (value === '/' || value.endsWith('/')) throw invalid(where, 'a path below /', value);
}

export function validateNbdTarget(target: unknown, where = 'nbd'): NbdTarget {
  if (typeof target !== 'object' || target === null) throw invalid(where, 'an object', target);
  const record = target as Record<string, unknown>;
  const name = record.exportName;
  if (typeof name !== 'string' || Buffer.byteLength(name) > exportNameBytesMax) {
    throw invalid(`${where}.exportName`, `a string of at most ${exportNameBytesMax} bytes`, name);
  }
  if ('socketPath' in record) {
    if ('host' in record || 'port' in record) {
      throw invalid(where, 'either socketPath or host and port, not both', Object.keys(record));
    }
    checkPath(`${where}.socketPath`, record.socketPath);
    if (Buffer.byteLength(record.socketPath as string) > socketPathBytesMax) {
      throw invalid(
        `${where}.socketPath`,
        `at most ${socketPathBytesMax} bytes`,
        record.socketPath,
      );
    }
    return { socketPath: record.socketPath as string, exportName: name };
  }
  const { host, port } = record;
  if (typeof host !== 'string' || host === '' || /[\s/?#@]/.test(host)) {
    throw invalid(`${where}.host`, 'a host name or IP address', host);
  }
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw invalid(`${where}.port`, 'a TCP port from 1 to 65535', port);
  }
  return { host, port, exportName: name };
}

export interface AttachRequest {
  nbd: NbdTarget;
  /** Absolute path where the workload sees the file system; created if missing, must be empty. */
  mountPath: string;
  fileSystem: 'ext4';
  method?: 'auto' | AttachMethod;
  /** A directory for this one attachment (handle, FUSE mount point, daemon logs). */
  runDir: string;
  log: Logger;
  /** Owner of the root directory of a new file system; the agent's own uid and gid by default. */
  rootOwner?: { uid: number; gid: number };
  limits?: Partial<AttachLimits>;
}

/** Checks a request at the boundary; throws CONTINUUM_ERR_ATTACH_INVALID naming the field. */
export function validateAttachRequest(request: AttachRequest): void {
  checkPath('mountPath', request.mountPath);
  checkPath('runDir', request.runDir);
  validateNbdTarget(request.nbd);
  if (request.fileSystem !== 'ext4') throw invalid('fileSystem', '"ext4"', request.fileSystem);
  const method = request.method ?? 'auto';
  if (method !== 'auto' && !(attachMethods as readonly string[]).includes(method)) {
    throw invalid('method', `"auto" or one of ${attachMethods.join(', ')}`, method);
  }
  const { mountPath, runDir } = request;
  // Either inside the other would hide the run files under the mount, or mount over them.
  if (
    mountPath === runDir ||
    mountPath.startsWith(`${runDir}/`) ||
    runDir.startsWith(`${mountPath}/`)
  ) {
    throw invalid('mountPath', `a path neither inside nor holding runDir ${runDir}`, mountPath);
  }
  const owner = request.rootOwner;
  if (owner !== undefined) {
    for (const key of ['uid', 'gid'] as const) {
      if (!Number.isInteger(owner[key]) || owner[key] < 0) {
        throw invalid(`rootOwner.${key}`, 'a whole number >= 0', owner[key]);
      }
    }
  }
}
