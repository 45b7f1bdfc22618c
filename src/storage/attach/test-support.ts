// Helpers for the attach unit tests: a command runner that answers from a script and records
// every call, facts of an imaginary host, and a check on error codes.
import assert from 'node:assert/strict';
import { isContinuumError, type ErrorCode } from '../../core/errors.js';
import type { CommandOutcome, CommandRunner } from './command-runner.js';
import type { AttachContext } from './context.js';
import type { HostFacts, ToolPaths } from './host-facts.js';
import { attachLimits, type AttachLimits } from './types.js';
import { silentLogger } from '../../core/ports.js';

export interface RecordedCall {
  tool: string;
  args: readonly string[];
}

/** Answers each call with the next outcome whose tool matches; fails on an unexpected call. */
export function scriptedRunner(
  script: Array<{ tool: string; outcome: Partial<CommandOutcome> }>,
): CommandRunner & { calls: RecordedCall[] } {
  const calls: RecordedCall[] = [];
  return {
    calls,
    run(file, args) {
      const tool = file.split('/').at(-1) ?? file;
      calls.push({ tool, args });
      const next = script.shift();
      assert.ok(next !== undefined, `unexpected call: ${tool} ${args.join(' ')}`);
      assert.equal(tool, next.tool, `expected ${next.tool}, got ${tool} ${args.join(' ')}`);
      return Promise.resolve({
        exitCode: 0,
        signal: null,
        stdout: '',
        stderr: '',
        ...next.outcome,
      });
    },
  };
}

export const allTools: ToolPaths = {
  nbdfuse: '/usr/bin/nbdfuse',
  fuse2fs: '/usr/bin/fuse2fs',
  fusermount3: '/usr/bin/fusermount3',
  losetup: '/usr/sbin/losetup',
  'mkfs.ext4': '/usr/sbin/mkfs.ext4',
  e2fsck: '/usr/sbin/e2fsck',
  blkid: '/usr/sbin/blkid',
  mount: '/usr/bin/mount',
  umount: '/usr/bin/umount',
  sync: '/usr/bin/sync',
  'nbd-client': '/usr/sbin/nbd-client',
  modprobe: '/usr/sbin/modprobe',
};

export function testContext(
  runner: CommandRunner,
  limits: Partial<AttachLimits> = {},
): AttachContext {
  return { runner, tools: allTools, limits: attachLimits(limits), log: silentLogger };
}

/** A root host where everything works; tests take parts away. */
export function hostFacts(overrides: Partial<HostFacts> = {}): HostFacts {
  return {
    isRoot: true,
    uid: 0,
    gid: 0,
    devFuse: 'usable',
    fuseFileSystem: true,
    loopControl: true,
    nbdModule: 'loaded',
    nbdModuleDetail: '/sys/module/nbd exists',
    fusermountSetuidRoot: true,
    tools: { ...allTools },
    ...overrides,
  };
}

export function hasCode(code: ErrorCode): (error: unknown) => boolean {
  return (error) => {
    assert.ok(isContinuumError(error), `expected a ContinuumError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return true;
  };
}
