// The command lines of volume attach, built by pure functions so that each argument can be checked
// by a unit test and read in one place. Nothing here runs anything.
import type { NbdTarget } from './types.js';

export interface CommandLine {
  readonly file: string;
  readonly args: readonly string[];
}

/** ext4 block size: matches the page size and the block engine's block. */
export const fileSystemBlockBytes = 4096;

/** Percent-encodes for a URI, keeping "/" readable (it is legal in a path and a query). */
function encodeUriPart(text: string): string {
  return encodeURIComponent(text).replaceAll('%2F', '/');
}

/**
 * An NBD URI (github.com/NetworkBlockDevice/nbd doc/uri.md) for nbdfuse: `nbd+unix:///export?
 * socket=/path` or `nbd://host:port/export`. nbdfuse's --unix and --tcp modes cannot name an
 * export, so the URI form is the one that works with any server.
 */
export function nbdUri(target: NbdTarget): string {
  // The export name is the whole path after the first "/", so a "/" inside it must be encoded.
  const exportPart = encodeURIComponent(target.exportName);
  if ('socketPath' in target) {
    return `nbd+unix:///${exportPart}?socket=${encodeUriPart(target.socketPath)}`;
  }
  const host = target.host.includes(':') ? `[${target.host}]` : target.host;
  return `nbd://${host}:${target.port}/${exportPart}`;
}

/** Exposes the export as the file `<fuseDir>/nbd`; writes its PID to pidFile once serving. */
export function nbdfuseCommand(
  nbdfuse: string,
  options: { fuseDir: string; pidFile: string; target: NbdTarget },
): CommandLine {
  return {
    file: nbdfuse,
    args: ['--pidfile', options.pidFile, options.fuseDir, nbdUri(options.target)],
  };
}

/**
 * Direct I/O keeps the page cache from holding every block twice (once for the loop device, once
 * for the FUSE file), which is what makes a loop device over FUSE slow and prone to deadlock
 * under memory pressure (nbdfuse(1), "Loop mounting").
 */
export function losetupAttachCommand(losetup: string, imagePath: string): CommandLine {
  return { file: losetup, args: ['--direct-io=on', '--find', '--show', imagePath] };
}

export function losetupDetachCommand(losetup: string, loopDevice: string): CommandLine {
  return { file: losetup, args: ['--detach', loopDevice] };
}

/** Low-level probe (-p): reads the device itself, never blkid's cache. Exit 2: no signature. */
export function blkidProbeCommand(blkid: string, device: string): CommandLine {
  return { file: blkid, args: ['-p', '-o', 'export', device] };
}

/** Parses `blkid -o export` (KEY=value lines). */
export function parseBlkidExport(stdout: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of stdout.split('\n')) {
    const equals = line.indexOf('=');
    if (equals > 0) fields[line.slice(0, equals)] = line.slice(equals + 1);
  }
  return fields;
}

/**
 * -F: the device may be a regular file (fuse2fs) and blkid has already found it blank.
 * nodiscard: discarding a new sparse volume gains nothing and costs a pass over the network.
 */
export function mkfsExt4Command(
  mkfs: string,
  device: string,
  rootOwner: { uid: number; gid: number },
): CommandLine {
  const extended = `nodiscard,root_owner=${rootOwner.uid}:${rootOwner.gid}`;
  return {
    file: mkfs,
    args: ['-q', '-F', '-b', String(fileSystemBlockBytes), '-E', extended, device],
  };
}

/** Preen: replays the journal and fixes what is safe to fix unattended (fuse2fs does neither). */
export function e2fsckPreenCommand(e2fsck: string, device: string): CommandLine {
  return { file: e2fsck, args: ['-p', device] };
}

export function mountExt4Command(mount: string, device: string, mountPath: string): CommandLine {
  return { file: mount, args: ['-t', 'ext4', device, mountPath] };
}

/**
 * fuse2fs in the foreground (-f) so the PID we spawn is the daemon's. As root, allow_other lets
 * workloads running as other users in; an unprivileged agent uses fakeroot instead, so that
 * permission checks do not depend on the uids stored in the file system.
 */
export function fuse2fsCommand(
  fuse2fs: string,
  options: { imagePath: string; mountPath: string; asRoot: boolean },
): CommandLine {
  const mountOptions = options.asRoot ? 'allow_other' : 'fakeroot';
  return { file: fuse2fs, args: [options.imagePath, options.mountPath, '-f', '-o', mountOptions] };
}

/** Flushes the one file system (syncfs) before it is unmounted. */
export function syncFileSystemCommand(sync: string, mountPath: string): CommandLine {
  return { file: sync, args: ['--file-system', mountPath] };
}

export function umountCommand(umount: string, mountPath: string): CommandLine {
  return { file: umount, args: [mountPath] };
}

/** Unmounts a FUSE file system; works unprivileged, and for FUSE 2 and 3 daemons alike. */
export function fusermountUnmountCommand(fusermount: string, mountPath: string): CommandLine {
  return { file: fusermount, args: ['-u', mountPath] };
}

export function modprobeNbdCommand(modprobe: string, dryRun: boolean): CommandLine {
  return { file: modprobe, args: dryRun ? ['--dry-run', '--quiet', 'nbd'] : ['nbd'] };
}

/** Connects a kernel NBD device (nbd-client(8)); with netlink it returns once connected. */
export function nbdClientConnectCommand(
  nbdClient: string,
  options: { target: NbdTarget; device: string },
): CommandLine {
  const { target, device } = options;
  const server =
    'socketPath' in target ? ['-unix', target.socketPath] : [target.host, String(target.port)];
  return {
    file: nbdClient,
    args: [
      ...server,
      device,
      ...['-name', target.exportName],
      ...['-block-size', String(fileSystemBlockBytes)],
    ],
  };
}

export function nbdClientDisconnectCommand(nbdClient: string, device: string): CommandLine {
  return { file: nbdClient, args: ['-d', device] };
}

/** Whether a failed umount or fusermount said the file system is in use. */
export function saysBusy(stderr: string): boolean {
  return /\b(target is busy|device or resource busy|EBUSY)\b/i.test(stderr);
}
