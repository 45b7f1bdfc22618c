// What the kernel says exists right now: mounts (/proc/self/mountinfo), loop devices and the file
// behind each (/sys/block/loop*/loop/backing_file), kernel NBD devices, and our helper processes.
// Detach and recovery read these every time instead of trusting the handle (level-based, as in
// CONVENTIONS.md item 4), so a step that crashed before it was recorded is still undone.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { isProcessAlive, readProcStat } from '../../agent/drivers/process/proc-fs.js';
import type { ProcessRecord } from './types.js';

export interface MountEntry {
  mountPoint: string;
  fileSystemType: string;
  source: string;
}

/** Undoes mountinfo's octal escapes (\040 space, \011 tab, \012 newline, \134 backslash). */
export function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) =>
    String.fromCharCode(parseInt(octal, 8)),
  );
}

/** Parses proc(5) mountinfo: `id parent major:minor root mountPoint options [tags] - type source`. */
export function parseMountInfo(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const fields = line.split(' ');
    const separator = fields.indexOf('-', 6);
    const mountPoint = fields[4];
    const fileSystemType = fields[separator + 1];
    const source = fields[separator + 2];
    if (separator < 0 || mountPoint === undefined || fileSystemType === undefined) continue;
    entries.push({
      mountPoint: unescapeMountField(mountPoint),
      fileSystemType,
      source: unescapeMountField(source ?? ''),
    });
  }
  return entries;
}

export function readMounts(): MountEntry[] {
  return parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8'));
}

/** The mount visible at a path (the last one, when several are stacked); null when none. */
export function mountAt(path: string, mounts: MountEntry[] = readMounts()): MountEntry | null {
  let found: MountEntry | null = null;
  for (const entry of mounts) if (entry.mountPoint === path) found = entry;
  return found;
}

/** A FUSE mount: nbdfuse shows as `fuse`, fuse2fs as `fuse.ext4` (subtype after the dot). */
export function isFuseMount(entry: MountEntry | null): entry is MountEntry {
  return (
    entry !== null && (entry.fileSystemType === 'fuse' || entry.fileSystemType.startsWith('fuse.'))
  );
}

function blockDevices(prefix: string): string[] {
  try {
    return readdirSync('/sys/block').filter((name) => name.startsWith(prefix));
  } catch {
    return [];
  }
}

/**
 * Loop devices whose backing file is `file`, found by looking at every one: a crash between
 * `losetup --show` and writing the handle leaves a device that only this search finds.
 */
export function loopDevicesBackedBy(file: string): string[] {
  const devices: string[] = [];
  for (const name of blockDevices('loop')) {
    let backing: string;
    try {
      backing = readFileSync(`/sys/block/${name}/loop/backing_file`, 'utf8').trimEnd();
    } catch {
      continue; // Not bound to a file (the directory "loop" exists only while bound).
    }
    if (backing.endsWith(' (deleted)')) backing = backing.slice(0, -' (deleted)'.length);
    if (backing === file) devices.push(`/dev/${name}`);
  }
  return devices.sort();
}

/** Whether a kernel NBD device is connected: the kernel shows `pid` only while it is. */
export function isNbdDeviceConnected(device: string): boolean {
  return existsSync(`/sys/block/${device.replace(/^\/dev\//, '')}/pid`);
}

/** Kernel NBD devices with no connection, in numeric order. */
export function freeNbdDevices(): string[] {
  return blockDevices('nbd')
    .filter((name) => /^nbd\d+$/.test(name))
    .sort((a, b) => Number(a.slice(3)) - Number(b.slice(3)))
    .map((name) => `/dev/${name}`)
    .filter((device) => !isNbdDeviceConnected(device));
}

/** The record of a live process, for telling it apart from a later reuse of its PID. */
export function processRecord(pid: number): ProcessRecord | null {
  const stat = readProcStat(pid);
  return stat === null ? null : { pid, startTime: stat.startTime };
}

/** A start time of 0 means unknown (/proc did not say): the PID alone is then trusted. */
export function isRecordedProcessAlive(record: ProcessRecord | undefined): boolean {
  if (record === undefined) return false;
  return isProcessAlive(record.pid, record.startTime > 0 ? record.startTime : undefined);
}
