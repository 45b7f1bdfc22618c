// Volume attach against a real NBD server (qemu-nbd on a unix socket, over a sparse raw file), for
// each method this host can run: format on first use, files kept across detach and attach, a
// clean file system after, re-attach by a restarted agent, recovery of a broken or unfinished
// attachment, a busy unmount, and failures that leave nothing behind. Every test ends by proving
// that no loop device, mount or process of its own is left.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { ChildRequest } from './agent-child.js';
import { isContinuumError, type ErrorCode } from '../../src/core/errors.js';
import {
  attachVolume,
  detachVolume,
  detectAttachMethods,
  inspectAttachment,
  readAttachHandle,
  recoverAttachment,
  type AttachHandle,
  type AttachMethod,
  type AttachVolumeRequest,
} from '../../src/storage/attach/index.js';
import {
  blkidType,
  e2fsckReadOnly,
  forceCleanup,
  freshDirectory,
  leftovers,
  onPath,
  recordingLogger,
  removeDirectory,
  startQemuNbd,
  waitFor,
  writeDurably,
  type LogLine,
  type NbdServer,
} from './harness.js';

const detection = await detectAttachMethods();
const volumeBytes = 256 * 1024 * 1024;
const testedMethods: AttachMethod[] = ['nbdfuse-loop', 'nbdfuse-fuse2fs'];

function skipReason(method: AttachMethod): string | false {
  if (!onPath('qemu-nbd')) return 'qemu-nbd is not installed (Debian package qemu-utils)';
  if (!onPath('e2fsck') || !onPath('blkid')) return 'e2fsck and blkid are needed to check volumes';
  const entry = detection.methods.find((m) => m.method === method);
  return entry?.available === true
    ? false
    : `${method} cannot run here: ${entry?.reasons.join('; ')}`;
}

interface Fixture {
  dir: string;
  server: NbdServer;
  runDir: string;
  mountPath: string;
  log: ReturnType<typeof recordingLogger>;
  request(method: AttachMethod | 'auto'): AttachVolumeRequest;
}

/** Runs body on a fresh server; then detaches whatever is left and asserts nothing remains. */
async function withFixture(
  body: (fixture: Fixture) => Promise<void> | void,
  options: { prepareImage?: (imagePath: string) => void } = {},
): Promise<void> {
  const dir = freshDirectory();
  if (options.prepareImage !== undefined) {
    const imagePath = join(dir, 'volume.raw');
    writeFileSync(imagePath, Buffer.alloc(0));
    truncateSync(imagePath, volumeBytes);
    options.prepareImage(imagePath);
  }
  const server = await startQemuNbd(dir, volumeBytes);
  const log = recordingLogger();
  const fixture: Fixture = {
    dir,
    server,
    runDir: join(dir, 'run'),
    mountPath: join(dir, 'mnt'),
    log,
    request: (method) => ({
      nbd: { socketPath: server.socketPath, exportName: server.exportName },
      mountPath: fixture.mountPath,
      fileSystem: 'ext4',
      method,
      runDir: fixture.runDir,
      log,
      detection,
    }),
  };
  let failure: Error | undefined;
  const keep = (error: unknown): void => {
    failure ??= error instanceof Error ? error : new Error(String(error));
  };
  try {
    await body(fixture);
  } catch (error) {
    keep(error);
  }
  try {
    const handle = readAttachHandle(fixture.runDir);
    if (handle !== null) await detachVolume(handle, { log });
  } catch (error) {
    keep(error);
  }
  await server.stop();
  const left = leftovers(dir);
  if (left.length > 0) await forceCleanup(dir);
  removeDirectory(dir);
  if (failure !== undefined) throw failure;
  assert.deepEqual(left, [], 'no loop device, mount or process of the test may outlive it');
}

/** Leftovers while the server still runs: everything but the server itself. */
function attachLeftovers(fixture: Fixture): string[] {
  return leftovers(fixture.dir).filter(
    (line) => !line.startsWith(`process ${fixture.server.pid}:`),
  );
}

function mountType(path: string): string | undefined {
  const line = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .find((entry) => entry.split(' ')[4] === path);
  return line?.split(' - ')[1]?.split(' ')[0];
}

function hasCode(code: ErrorCode): (error: unknown) => boolean {
  return (error) => {
    assert.ok(isContinuumError(error), `expected a ContinuumError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return true;
  };
}

function assertCleanFileSystem(server: NbdServer): void {
  const check = e2fsckReadOnly(server.imagePath);
  assert.equal(check.exitCode, 0, `e2fsck -fn found problems:\n${check.output}`);
}

function logged(lines: LogLine[], message: RegExp): boolean {
  return lines.some((line) => message.test(line.message));
}

interface ChildReport {
  handle: AttachHandle;
  earlier: string | null;
  rootOwner: number;
}

/** Runs agent-child.ts in a process of its own, as another user when uid is given. */
function runChild(request: ChildRequest, uid?: number): ChildReport {
  const node = [
    process.execPath,
    '--import',
    import.meta.resolve('tsx'),
    fileURLToPath(new URL('./agent-child.ts', import.meta.url)),
    JSON.stringify(request),
  ];
  const asUser =
    uid === undefined ? [] : ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups'];
  const [file, ...args] = [...asUser, ...node];
  const child = spawnSync(file!, args, { encoding: 'utf8', timeout: 30_000 });
  assert.equal(child.status, 0, `the child agent failed: ${child.stderr}`);
  return JSON.parse(child.stdout.trim().split('\n').at(-1) ?? '') as ChildReport;
}

/** 1 MiB that is not all one byte, so a misplaced block would show. */
const pattern = Buffer.from(Array.from({ length: 1 << 20 }, (_, i) => (i * 7 + (i >> 12)) % 251));

for (const method of testedMethods) {
  describe(`attach with ${method}`, { skip: skipReason(method) }, () => {
    it('formats on first use, keeps files across detach and attach, leaves a clean ext4', () =>
      withFixture(async (f) => {
        const first = await attachVolume(f.request(method));
        assert.equal(first.state, 'attached');
        assert.equal(first.method, method);
        assert.equal(first.formatted, true);
        assert.equal(readAttachHandle(f.runDir)?.state, 'attached', 'the handle is persisted');
        assert.match(mountType(f.mountPath) ?? 'none', /ext4/);
        writeDurably(join(f.mountPath, 'alpha.txt'), 'alpha\n');
        mkdirSync(join(f.mountPath, 'data'));
        writeDurably(join(f.mountPath, 'data', 'pattern.bin'), pattern);
        await detachVolume(first, { log: f.log });
        assert.deepEqual(attachLeftovers(f), []);
        assert.equal(existsSync(f.runDir), false, 'the run directory attach made is gone');
        assert.equal(existsSync(f.mountPath), false, 'the mount point attach made is gone');
        assert.equal(blkidType(f.server.imagePath), 'ext4');

        const second = await attachVolume(f.request(method));
        assert.equal(second.formatted, false, 'an existing file system is not formatted again');
        assert.equal(second.fileSystemUuid, first.fileSystemUuid);
        assert.equal(readFileSync(join(f.mountPath, 'alpha.txt'), 'utf8'), 'alpha\n');
        const back = readFileSync(join(f.mountPath, 'data', 'pattern.bin'));
        assert.ok(back.equals(pattern), 'the pattern reads back as written');
        await detachVolume(second, { log: f.log });
        await detachVolume(second, { log: f.log }); // Idempotent: nothing left to do.
        assert.deepEqual(attachLeftovers(f), []);
        assertCleanFileSystem(f.server);
      }));

    it('a restarted agent re-attaches without relaunching, then detaches from the JSON handle', () =>
      withFixture(async (f) => {
        const { handle: childHandle } = runChild({
          op: 'attach',
          socketPath: f.server.socketPath,
          exportName: f.server.exportName,
          runDir: f.runDir,
          mountPath: f.mountPath,
          method,
        });
        // The child is gone; what it started still serves the mount.
        const recovered = await recoverAttachment(f.runDir, { log: f.log });
        assert.ok(recovered !== null, 'a whole attachment is re-attached');
        assert.deepEqual(recovered.nbdfuse, childHandle.nbdfuse, 'the same nbdfuse, not a new one');
        assert.deepEqual(recovered.fuse2fs, childHandle.fuse2fs);
        assert.equal(recovered.loopDevice, childHandle.loopDevice);
        assert.ok(logged(f.log.lines, /re-attached/));
        assert.match(readFileSync(join(f.mountPath, 'from-child.txt'), 'utf8'), /written by pid/);

        const loaded = readAttachHandle(f.runDir);
        assert.ok(loaded !== null);
        await detachVolume(loaded, { log: f.log });
        assert.equal(readAttachHandle(f.runDir), null);
        assert.deepEqual(attachLeftovers(f), []);
        assertCleanFileSystem(f.server);
      }));

    it('a busy file system is reported as busy, kept mounted, and detaches once released', () =>
      withFixture(async (f) => {
        const handle = await attachVolume(f.request(method));
        const held = openSync(join(f.mountPath, 'held.txt'), 'w');
        try {
          await assert.rejects(
            detachVolume(handle, { log: f.log, limits: { unmountBusyTimeoutMs: 300 } }),
            hasCode('CONTINUUM_ERR_ATTACH_BUSY'),
          );
          assert.ok(inspectAttachment(handle).whole, 'still attached');
          assert.equal(readAttachHandle(f.runDir)?.state, 'detaching');
        } finally {
          closeSync(held);
        }
        await detachVolume(handle, { log: f.log });
        assert.deepEqual(attachLeftovers(f), []);
        assertCleanFileSystem(f.server);
      }));

    it('recovery tears down an attach that was left unfinished, even one whose device went unrecorded', () =>
      withFixture(async (f) => {
        const handle = await attachVolume(f.request(method));
        writeDurably(join(f.mountPath, 'kept.txt'), 'kept\n');
        // As if the agent died after the loop device (or fuse2fs) existed, before saving it.
        const unfinished: AttachHandle = { ...handle, state: 'attaching' };
        delete unfinished.loopDevice;
        delete unfinished.formatted;
        writeFileSync(join(f.runDir, 'attach.json'), JSON.stringify(unfinished));
        assert.equal(await recoverAttachment(f.runDir, { log: f.log }), null);
        assert.deepEqual(attachLeftovers(f), []);
        assert.equal(existsSync(f.runDir), false);

        const again = await attachVolume(f.request(method));
        assert.equal(again.formatted, false);
        assert.equal(readFileSync(join(f.mountPath, 'kept.txt'), 'utf8'), 'kept\n');
        await detachVolume(again, { log: f.log });
        assertCleanFileSystem(f.server);
      }));
  });
}

const helperDeaths: Array<{ method: AttachMethod; helper: 'nbdfuse' | 'fuse2fs' }> = [
  { method: 'nbdfuse-loop', helper: 'nbdfuse' },
  { method: 'nbdfuse-fuse2fs', helper: 'nbdfuse' },
  { method: 'nbdfuse-fuse2fs', helper: 'fuse2fs' },
];

for (const { method, helper } of helperDeaths) {
  describe(`attach with ${method} when ${helper} dies`, { skip: skipReason(method) }, () => {
    it('recovery sees the broken chain and detaches it; the next attach keeps synced files', () =>
      withFixture(async (f) => {
        const handle = await attachVolume(f.request(method));
        writeDurably(join(f.mountPath, 'before-crash.txt'), 'durable\n');
        const record = handle[helper];
        assert.ok(record !== undefined);
        process.kill(record.pid, 'SIGKILL'); // Ours: started by attachVolume above.
        await waitFor(
          `${helper} to be gone`,
          5000,
          () => !existsSync(`/proc/${record.pid}/cmdline`),
        );
        assert.ok(inspectAttachment(handle).problems.includes(`${helper} is not running`));
        assert.equal(await recoverAttachment(f.runDir, { log: f.log }), null);
        assert.deepEqual(attachLeftovers(f), []);

        // The kernel replays the journal (loop); e2fsck -p does it before fuse2fs mounts.
        const again = await attachVolume(f.request(method));
        assert.equal(again.formatted, false);
        assert.equal(readFileSync(join(f.mountPath, 'before-crash.txt'), 'utf8'), 'durable\n');
        await detachVolume(again, { log: f.log });
        assertCleanFileSystem(f.server);
      }));
  });
}

/** nobody: an agent with no privileges at all. */
const unprivilegedUid = 65534;

function unprivilegedSkipReason(): string | false {
  if (!detection.facts.isRoot) return 'needs root to start the agent as another user';
  if (!onPath('setpriv')) return 'setpriv (util-linux) is not installed';
  const mode = statSync('/dev/fuse', { throwIfNoEntry: false })?.mode;
  if (mode === undefined) return '/dev/fuse does not exist';
  if ((mode & 0o006) !== 0o006) {
    return `/dev/fuse is mode ${(mode & 0o777).toString(8)}: other users cannot open it here`;
  }
  if (!detection.facts.fusermountSetuidRoot) return 'fusermount3 is not setuid root';
  return skipReason('nbdfuse-fuse2fs');
}

describe('an unprivileged agent', { skip: unprivilegedSkipReason() }, () => {
  it('attaches with nbdfuse-fuse2fs on its own (auto), keeps files, detaches cleanly', () =>
    withFixture((f) => {
      // The agent's user needs the socket and a directory of its own; nothing else.
      chmodSync(f.dir, 0o755);
      chmodSync(f.server.socketPath, 0o666);
      const home = join(f.dir, 'agent');
      mkdirSync(home);
      chownSync(home, unprivilegedUid, unprivilegedUid);
      const request: ChildRequest = {
        op: 'attach',
        socketPath: f.server.socketPath,
        exportName: f.server.exportName,
        runDir: join(home, 'run'),
        mountPath: join(home, 'mnt'),
        method: 'auto',
      };
      const first = runChild(request, unprivilegedUid);
      assert.equal(first.handle.method, 'nbdfuse-fuse2fs');
      assert.equal(first.handle.formatted, true);
      assert.equal(first.rootOwner, unprivilegedUid, 'the new file system belongs to the agent');
      runChild({ ...request, op: 'detach' }, unprivilegedUid);
      assert.deepEqual(attachLeftovers(f), []);

      const second = runChild(request, unprivilegedUid);
      assert.equal(second.handle.formatted, false);
      assert.match(second.earlier ?? '', /written by pid/);
      runChild({ ...request, op: 'detach' }, unprivilegedUid);
      assert.deepEqual(attachLeftovers(f), []);
      assertCleanFileSystem(f.server);
    }));
});

describe('attach failures change nothing', { skip: skipReason('nbdfuse-fuse2fs') }, () => {
  it('refuses to format a volume that holds something else (here: swap)', () =>
    withFixture(
      async (f) => {
        await assert.rejects(
          attachVolume(f.request('auto')),
          hasCode('CONTINUUM_ERR_ATTACH_FOREIGN_DATA'),
        );
        assert.deepEqual(attachLeftovers(f), []);
        assert.equal(existsSync(f.runDir), false);
        assert.equal(existsSync(f.mountPath), false);
        assert.equal(blkidType(f.server.imagePath), 'swap', 'the data is untouched');
      },
      { prepareImage: (imagePath) => spawnSync('mkswap', [imagePath], { stdio: 'ignore' }) },
    ));

  it('reports an NBD server that is not there, with what nbdfuse said', () =>
    withFixture(async (f) => {
      const request = f.request('auto');
      request.nbd = { socketPath: join(f.dir, 'absent.sock'), exportName: 'export' };
      await assert.rejects(attachVolume(request), (error) => {
        hasCode('CONTINUUM_ERR_ATTACH_COMMAND_FAILED')(error);
        assert.match(
          (error as Error).message,
          /nbdfuse .* exited.* before it was serving: .*No such file or directory/,
        );
        return true;
      });
      assert.deepEqual(attachLeftovers(f), []);
      assert.equal(existsSync(f.runDir), false);
    }));

  it('refuses a mount path that is not empty before starting anything', () =>
    withFixture(async (f) => {
      mkdirSync(f.mountPath);
      writeFileSync(join(f.mountPath, 'someone-elses.txt'), 'keep me');
      await assert.rejects(attachVolume(f.request('auto')), hasCode('CONTINUUM_ERR_ATTACH_IN_USE'));
      assert.equal(existsSync(f.runDir), false);
      assert.equal(readFileSync(join(f.mountPath, 'someone-elses.txt'), 'utf8'), 'keep me');
    }));
});
