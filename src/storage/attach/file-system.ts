// Makes sure the attached device holds an ext4 file system: formats it on first use (no signature
// at all), mounts an existing one as it is, and refuses anything else. A device that holds some
// other file system, a partition table or swap is someone's data; formatting it would destroy it.
import { ContinuumError } from '../../core/errors.js';
import {
  blkidProbeCommand,
  e2fsckPreenCommand,
  mkfsExt4Command,
  parseBlkidExport,
} from './command-lines.js';
import { commandFailed, type CommandOutcome } from './command-runner.js';
import { run, tool, type AttachContext } from './context.js';

export type FileSystemProbe =
  | { kind: 'ext4'; type: string; uuid: string | undefined }
  | { kind: 'blank' }
  | { kind: 'foreign'; description: string };

/** The ext4 driver mounts ext2 and ext3 as well, so all three count as ours. */
const extTypes = new Set(['ext2', 'ext3', 'ext4']);

/**
 * Reads `blkid -p -o export`: exit 0 with TYPE ext2/3/4 is a file system we can mount; exit 2 is
 * a blank device; anything else found (or exit 8, several signatures at once) is foreign.
 * Returns null for an exit status that says the probe itself failed.
 */
export function interpretBlkid(outcome: CommandOutcome): FileSystemProbe | null {
  if (outcome.exitCode === 2) return { kind: 'blank' };
  if (outcome.exitCode === 8) return { kind: 'foreign', description: 'ambivalent signatures' };
  if (outcome.exitCode !== 0) return null;
  const fields = parseBlkidExport(outcome.stdout);
  const type = fields.TYPE;
  if (type !== undefined && extTypes.has(type)) return { kind: 'ext4', type, uuid: fields.UUID };
  if (type !== undefined) return { kind: 'foreign', description: `a ${type} signature` };
  if (fields.PTTYPE !== undefined) {
    return { kind: 'foreign', description: `a ${fields.PTTYPE} partition table` };
  }
  const keys = Object.keys(fields).filter((key) => key !== 'DEVNAME');
  return { kind: 'foreign', description: `an unrecognized signature (${keys.join(', ')})` };
}

export async function probeFileSystem(
  context: AttachContext,
  device: string,
): Promise<FileSystemProbe> {
  const command = blkidProbeCommand(tool(context, 'blkid'), device);
  const outcome = await context.runner.run(command.file, command.args, {
    timeoutMs: context.limits.commandTimeoutMs,
    outputBytesMax: context.limits.outputBytesMax,
  });
  const probe = interpretBlkid(outcome);
  if (probe === null) throw commandFailed('probe file system', command.file, command.args, outcome);
  return probe;
}

export interface PreparedFileSystem {
  formatted: boolean;
  uuid: string | undefined;
}

/**
 * Formats a blank device, checks an existing file system when asked (fuse2fs neither replays a
 * journal nor keeps one, so its path runs `e2fsck -p` first), and refuses foreign data.
 */
export async function prepareFileSystem(
  context: AttachContext,
  device: string,
  options: { checkExisting: boolean; rootOwner: { uid: number; gid: number } },
): Promise<PreparedFileSystem> {
  const probe = await probeFileSystem(context, device);
  if (probe.kind === 'foreign') {
    throw new ContinuumError(
      'CONTINUUM_ERR_ATTACH_FOREIGN_DATA',
      `the volume holds ${probe.description}, not ext4; refusing to format it`,
      { details: { device, found: probe.description } },
    );
  }
  if (probe.kind === 'ext4') {
    if (options.checkExisting) await preen(context, device);
    return { formatted: false, uuid: probe.uuid };
  }
  context.log.log('info', 'formatting a new volume as ext4', { device });
  const mkfs = mkfsExt4Command(tool(context, 'mkfs.ext4'), device, options.rootOwner);
  await run(context, 'format ext4', mkfs, context.limits.formatTimeoutMs);
  // Checked in pairs: the format is trusted only once a fresh probe reads ext4 back.
  const after = await probeFileSystem(context, device);
  if (after.kind !== 'ext4') {
    throw new ContinuumError(
      'CONTINUUM_ERR_ATTACH_COMMAND_FAILED',
      `mkfs.ext4 succeeded on ${device}, but blkid then found ${after.kind === 'blank' ? 'no signature' : after.description}`,
      { details: { device } },
    );
  }
  return { formatted: true, uuid: after.uuid };
}

/** e2fsck exit bits 1 and 2 mean "fixed"; 4 and up mean errors left or a failure. */
const e2fsckFixedMax = 3;

async function preen(context: AttachContext, device: string): Promise<void> {
  const command = e2fsckPreenCommand(tool(context, 'e2fsck'), device);
  const outcome = await context.runner.run(command.file, command.args, {
    timeoutMs: context.limits.formatTimeoutMs,
    outputBytesMax: context.limits.outputBytesMax,
  });
  if (outcome.exitCode === null || outcome.exitCode > e2fsckFixedMax) {
    throw commandFailed('check file system', command.file, command.args, outcome);
  }
  if (outcome.exitCode !== 0) {
    context.log.log('warn', 'e2fsck repaired the volume before mounting it', {
      device,
      output: outcome.stdout.trim(),
    });
  }
}
