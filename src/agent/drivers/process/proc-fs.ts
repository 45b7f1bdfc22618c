// Facts about processes read from Linux /proc: start time (to tell a PID from its reuse), state
// (a zombie counts as gone), process group, CPU and memory. Node builtins only: the shim uses it.
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second of /proc times (USER_HZ); 100 on every Linux architecture we run on. */
export const clockTicksPerSecond = 100;
/** Page size used by /proc/<pid>/statm. */
export const pageBytes = 4096;

export interface ProcStat {
  pid: number;
  /** One letter: R, S, D, Z (zombie), T, ... */
  state: string;
  processGroup: number;
  userTicks: number;
  systemTicks: number;
  /** Clock ticks after boot at which the process started. */
  startTime: number;
}

/** Parses /proc/<pid>/stat; null when the process does not exist (or /proc is unreadable). */
export function readProcStat(pid: number): ProcStat | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name (field 2) is in parentheses and may itself hold spaces or ")", so the
  // remaining fields are split after the last ")". fields[0] is field 3 of proc(5).
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const field = (number: number): number => Number(fields[number - 3]);
  return {
    pid,
    state: fields[0] ?? '?',
    processGroup: field(5),
    userTicks: field(14),
    systemTicks: field(15),
    startTime: field(22),
  };
}

/** True when pid names a live (not zombie) process, and the same one if a start time is given. */
export function isProcessAlive(pid: number, startTime?: number): boolean {
  const stat = readProcStat(pid);
  if (stat === null || stat.state === 'Z' || stat.state === 'X') return false;
  return startTime === undefined || stat.startTime === startTime;
}

/** Live (not zombie) members of a process group, found by scanning /proc. */
export function processGroupMembers(processGroup: number): ProcStat[] {
  const members: ProcStat[] = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    const stat = readProcStat(pid);
    if (stat === null || stat.processGroup !== processGroup) continue;
    if (stat.state === 'Z' || stat.state === 'X') continue;
    members.push(stat);
  }
  return members;
}

/** Resident memory of a process in bytes; 0 when it is gone. */
export function readResidentBytes(pid: number): number {
  try {
    const pages = Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]);
    return Number.isFinite(pages) ? pages * pageBytes : 0;
  } catch {
    return 0;
  }
}

/** Open file descriptors of a process (entries of /proc/<pid>/fd); 0 when it is gone or unreadable. */
export function countOpenFiles(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}
