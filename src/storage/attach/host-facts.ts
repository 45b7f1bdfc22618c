// Gathers the facts about this host that decide which attach methods can work: who we are, FUSE,
// loop devices, the kernel NBD module and where each tool is. The decision itself is the pure
// function in detect.ts, so that it can be tested on any combination of facts.
import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { modprobeNbdCommand } from './command-lines.js';
import { realCommandRunner, type CommandRunner } from './command-runner.js';

export const toolNames = [
  'nbdfuse',
  'fuse2fs',
  'fusermount3',
  'losetup',
  'mkfs.ext4',
  'e2fsck',
  'blkid',
  'mount',
  'umount',
  'sync',
  'nbd-client',
  'modprobe',
] as const;
export type ToolName = (typeof toolNames)[number];
/** Absolute path of each tool found. */
export type ToolPaths = Partial<Record<ToolName, string>>;

export interface HostFacts {
  isRoot: boolean;
  uid: number;
  gid: number;
  /** usable: we can open it; no-access: present but not for us; absent: no FUSE device. */
  devFuse: 'usable' | 'no-access' | 'absent';
  /** `fuse` is listed in /proc/filesystems. */
  fuseFileSystem: boolean;
  /** /dev/loop-control exists (loop devices can be allocated). */
  loopControl: boolean;
  /** loaded: /sys/module/nbd; loadable: `modprobe --dry-run nbd` succeeds. */
  nbdModule: 'loaded' | 'loadable' | 'absent' | 'unknown';
  nbdModuleDetail: string;
  /** fusermount3 is setuid root: how an unprivileged user mounts FUSE file systems. */
  fusermountSetuidRoot: boolean;
  tools: ToolPaths;
}

/** Searched after $PATH: an agent started with a user's PATH still finds /usr/sbin tools. */
const systemDirectories = [
  '/usr/local/sbin',
  '/usr/local/bin',
  '/usr/sbin',
  '/usr/bin',
  '/sbin',
  '/bin',
];

function isExecutableFile(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** Finds each tool on $PATH, then in the system directories. */
export function locateTools(searchPath = process.env.PATH ?? ''): ToolPaths {
  const directories = [
    ...searchPath.split(':').filter((d) => d.startsWith('/')),
    ...systemDirectories,
  ];
  const tools: ToolPaths = {};
  for (const name of toolNames) {
    const found = directories.map((d) => join(d, name)).find(isExecutableFile);
    if (found !== undefined) tools[name] = found;
  }
  return tools;
}

function devFuseAccess(): HostFacts['devFuse'] {
  if (!existsSync('/dev/fuse')) return 'absent';
  try {
    accessSync('/dev/fuse', constants.R_OK | constants.W_OK);
    return 'usable';
  } catch {
    return 'no-access';
  }
}

function listsFileSystem(name: string): boolean {
  try {
    return readFileSync('/proc/filesystems', 'utf8')
      .split('\n')
      .some((line) => line.split('\t').at(-1)?.trim() === name);
  } catch {
    return false;
  }
}

/** S_ISUID of stat(2); node's fs.constants does not export it. */
const setUserIdBit = 0o4000;

function isSetuidRoot(path: string | undefined): boolean {
  if (path === undefined) return false;
  try {
    const stat = statSync(path);
    return stat.uid === 0 && (stat.mode & setUserIdBit) !== 0;
  } catch {
    return false;
  }
}

async function nbdModuleState(
  tools: ToolPaths,
  runner: CommandRunner,
  timeoutMs: number,
): Promise<Pick<HostFacts, 'nbdModule' | 'nbdModuleDetail'>> {
  if (existsSync('/sys/module/nbd'))
    return { nbdModule: 'loaded', nbdModuleDetail: '/sys/module/nbd exists' };
  if (tools.modprobe === undefined) {
    return {
      nbdModule: 'unknown',
      nbdModuleDetail: 'not loaded (no /sys/module/nbd) and modprobe not found',
    };
  }
  const command = modprobeNbdCommand(tools.modprobe, true);
  try {
    const outcome = await runner.run(command.file, command.args, {
      timeoutMs,
      outputBytesMax: 1024,
    });
    return outcome.exitCode === 0
      ? { nbdModule: 'loadable', nbdModuleDetail: 'not loaded; modprobe --dry-run nbd succeeds' }
      : { nbdModule: 'absent', nbdModuleDetail: 'not loaded and modprobe finds no nbd module' };
  } catch (error) {
    return { nbdModule: 'unknown', nbdModuleDetail: `modprobe --dry-run failed: ${String(error)}` };
  }
}

export async function probeHostFacts(
  options: { runner?: CommandRunner; timeoutMs?: number; searchPath?: string } = {},
): Promise<HostFacts> {
  const tools = locateTools(options.searchPath);
  const uid = process.getuid?.() ?? -1;
  return {
    isRoot: uid === 0,
    uid,
    gid: process.getgid?.() ?? -1,
    devFuse: devFuseAccess(),
    fuseFileSystem: listsFileSystem('fuse'),
    loopControl: existsSync('/dev/loop-control'),
    ...(await nbdModuleState(
      tools,
      options.runner ?? realCommandRunner,
      options.timeoutMs ?? 5000,
    )),
    fusermountSetuidRoot: isSetuidRoot(tools.fusermount3),
    tools,
  };
}
