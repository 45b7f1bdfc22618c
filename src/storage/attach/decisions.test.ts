// The decisions around commands, on a scripted runner: format or not (and never over foreign
// data), check before fuse2fs, and unmount retries while busy, bounded.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { interpretBlkid, prepareFileSystem } from './file-system.js';
import { hasCode, scriptedRunner, testContext } from './test-support.js';
import { unmountWithRetry } from './unmount.js';

const owner = { uid: 0, gid: 0 };
const ext4 = { exitCode: 0, stdout: 'DEVNAME=/dev/loop0\nUUID=u-1\nTYPE=ext4\n' };
const blank = { exitCode: 2 };

test("blkid results: blank, ours, or someone else's", () => {
  const outcome = (exitCode: number, stdout = '') => ({
    exitCode,
    signal: null,
    stdout,
    stderr: '',
  });
  assert.deepEqual(interpretBlkid(outcome(2)), { kind: 'blank' });
  assert.deepEqual(interpretBlkid(outcome(0, 'TYPE=ext3\nUUID=a\n')), {
    kind: 'ext4',
    type: 'ext3',
    uuid: 'a',
  });
  assert.deepEqual(interpretBlkid(outcome(0, 'TYPE=xfs\n')), {
    kind: 'foreign',
    description: 'a xfs signature',
  });
  assert.deepEqual(interpretBlkid(outcome(0, 'PTTYPE=gpt\n')), {
    kind: 'foreign',
    description: 'a gpt partition table',
  });
  assert.equal(interpretBlkid(outcome(8))?.kind, 'foreign');
  assert.equal(interpretBlkid(outcome(4)), null);
});

test('a blank device is formatted, and the format is read back before it is trusted', async () => {
  const runner = scriptedRunner([
    { tool: 'blkid', outcome: blank },
    { tool: 'mkfs.ext4', outcome: {} },
    { tool: 'blkid', outcome: ext4 },
  ]);
  const prepared = await prepareFileSystem(testContext(runner), '/dev/loop0', {
    checkExisting: false,
    rootOwner: owner,
  });
  assert.deepEqual(prepared, { formatted: true, uuid: 'u-1' });
  assert.deepEqual(runner.calls[1]?.args.at(-1), '/dev/loop0');
});

test('a format that does not read back as ext4 is an error', async () => {
  const runner = scriptedRunner([
    { tool: 'blkid', outcome: blank },
    { tool: 'mkfs.ext4', outcome: {} },
    { tool: 'blkid', outcome: blank },
  ]);
  await assert.rejects(
    prepareFileSystem(testContext(runner), '/dev/loop0', {
      checkExisting: false,
      rootOwner: owner,
    }),
    hasCode('CONTINUUM_ERR_ATTACH_COMMAND_FAILED'),
  );
});

test('an existing ext4 is never formatted; with checkExisting it is preened first', async () => {
  const kernel = scriptedRunner([{ tool: 'blkid', outcome: ext4 }]);
  const kept = await prepareFileSystem(testContext(kernel), '/dev/loop0', {
    checkExisting: false,
    rootOwner: owner,
  });
  assert.deepEqual(kept, { formatted: false, uuid: 'u-1' });

  const fuse = scriptedRunner([
    { tool: 'blkid', outcome: ext4 },
    { tool: 'e2fsck', outcome: { exitCode: 1, stdout: 'fixed' } },
  ]);
  await prepareFileSystem(testContext(fuse), '/img', { checkExisting: true, rootOwner: owner });
  assert.deepEqual(fuse.calls[1]?.args, ['-p', '/img']);

  const broken = scriptedRunner([
    { tool: 'blkid', outcome: ext4 },
    { tool: 'e2fsck', outcome: { exitCode: 4, stderr: 'UNEXPECTED INCONSISTENCY' } },
  ]);
  await assert.rejects(
    prepareFileSystem(testContext(broken), '/img', { checkExisting: true, rootOwner: owner }),
    (error) =>
      hasCode('CONTINUUM_ERR_ATTACH_COMMAND_FAILED')(error) && /UNEXPECTED/.test(String(error)),
  );
});

test('foreign data is refused and nothing is run after the probe', async () => {
  const runner = scriptedRunner([
    { tool: 'blkid', outcome: { exitCode: 0, stdout: 'TYPE=swap\n' } },
  ]);
  await assert.rejects(
    prepareFileSystem(testContext(runner), '/dev/loop0', {
      checkExisting: false,
      rootOwner: owner,
    }),
    hasCode('CONTINUUM_ERR_ATTACH_FOREIGN_DATA'),
  );
  assert.equal(runner.calls.length, 1);
});

const umount = { file: '/usr/bin/umount', args: ['/srv/data'] };
const busy = {
  tool: 'umount',
  outcome: { exitCode: 32, stderr: 'umount: /srv/data: target is busy.' },
};

test('a busy unmount is retried until it succeeds', async () => {
  const runner = scriptedRunner([busy, busy, { tool: 'umount', outcome: {} }]);
  await unmountWithRetry(testContext(runner, { unmountRetryIntervalMs: 1 }), {
    command: umount,
    mountPath: '/srv/data',
    isMounted: () => true,
  });
  assert.equal(runner.calls.length, 3);
});

test('a file system busy past the limit is reported as busy', async () => {
  const runner = scriptedRunner(Array.from({ length: 1000 }, () => busy));
  await assert.rejects(
    unmountWithRetry(testContext(runner, { unmountRetryIntervalMs: 5, unmountBusyTimeoutMs: 50 }), {
      command: umount,
      mountPath: '/srv/data',
      isMounted: () => true,
    }),
    (error) => hasCode('CONTINUUM_ERR_ATTACH_BUSY')(error) && /target is busy/.test(String(error)),
  );
  assert.ok(runner.calls.length >= 2, 'retried before giving up');
});

test('other unmount failures are not retried, unless the mount is gone anyway', async () => {
  const failing = {
    tool: 'umount',
    outcome: { exitCode: 1, stderr: 'umount: /srv/data: permission denied' },
  };
  const stuck = scriptedRunner([failing]);
  await assert.rejects(
    unmountWithRetry(testContext(stuck), {
      command: umount,
      mountPath: '/srv/data',
      isMounted: () => true,
    }),
    hasCode('CONTINUUM_ERR_ATTACH_COMMAND_FAILED'),
  );
  const gone = scriptedRunner([failing]);
  await unmountWithRetry(testContext(gone), {
    command: umount,
    mountPath: '/srv/data',
    isMounted: () => false,
  });
  assert.equal(gone.calls.length, 1);
});
