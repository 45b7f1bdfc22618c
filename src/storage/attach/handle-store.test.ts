// The persisted handle and the request checks: a round trip, and clear errors that name the field
// for a damaged handle or a bad request.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { silentLogger } from '../../core/ports.js';
import { handlePath, parseHandle, readHandle, removeHandle, saveHandle } from './handle-store.js';
import { hasCode } from './test-support.js';
import {
  attachLimits,
  validateAttachRequest,
  type AttachHandle,
  type AttachRequest,
} from './types.js';

function temporaryRunDir(t: { after(fn: () => void): void }): string {
  const runDir = mkdtempSync(join(tmpdir(), 'continuum-handle-'));
  t.after(() => rmSync(runDir, { recursive: true, force: true }));
  return runDir;
}

function sampleHandle(runDir: string): AttachHandle {
  return {
    version: 1,
    method: 'nbdfuse-loop',
    state: 'attached',
    runDir,
    mountPath: '/srv/data',
    fileSystem: 'ext4',
    nbd: { socketPath: '/run/continuum/v.sock', exportName: 'v' },
    createdRunDir: true,
    createdMountPath: false,
    fuseDir: join(runDir, 'nbdfuse'),
    imagePath: join(runDir, 'nbdfuse', 'nbd'),
    nbdfuse: { pid: 4242, startTime: 123456 },
    loopDevice: '/dev/loop7',
    formatted: true,
    fileSystemUuid: '1b95e1e9-12f5-4ac1-926d-68763b6c7ee7',
  };
}

test('a saved handle reads back the same, and no temporary file is left', (t) => {
  const runDir = temporaryRunDir(t);
  const handle = sampleHandle(runDir);
  saveHandle(handle);
  assert.deepEqual(readHandle(runDir), handle);
  assert.deepEqual(readdirSync(runDir), ['attach.json']);
  removeHandle(runDir);
  assert.equal(readHandle(runDir), null);
});

test('a damaged handle is an error that says where', (t) => {
  const runDir = temporaryRunDir(t);
  writeFileSync(handlePath(runDir), '{"version": 1, "method": "nbd');
  assert.throws(() => readHandle(runDir), hasCode('CONTINUUM_ERR_ATTACH_HANDLE_INVALID'));
  const text = JSON.stringify({ ...sampleHandle(runDir), loopDevice: '/dev/sda' });
  assert.throws(() => parseHandle(text), /loopDevice/);
  const badTarget = JSON.stringify({
    ...sampleHandle(runDir),
    nbd: { exportName: 'v', host: '', port: 1 },
  });
  assert.throws(() => parseHandle(badTarget), /nbd\.host/);
});

test('a handle copied from another run directory is refused', (t) => {
  const runDir = temporaryRunDir(t);
  writeFileSync(handlePath(runDir), JSON.stringify(sampleHandle('/elsewhere')));
  assert.throws(() => readHandle(runDir), /names run directory \/elsewhere/);
});

function request(overrides: Partial<AttachRequest>): AttachRequest {
  return {
    nbd: { socketPath: '/run/continuum/v.sock', exportName: 'v' },
    mountPath: '/srv/data',
    fileSystem: 'ext4',
    runDir: '/var/lib/continuum/run/w/volumes/data',
    log: silentLogger,
    ...overrides,
  };
}

test('requests are checked at the boundary, naming the field', () => {
  validateAttachRequest(request({}));
  const invalid = hasCode('CONTINUUM_ERR_ATTACH_INVALID');
  assert.throws(() => validateAttachRequest(request({ mountPath: 'data' })), /mountPath/);
  assert.throws(() => validateAttachRequest(request({ mountPath: '/srv/../data' })), invalid);
  assert.throws(() => validateAttachRequest(request({ mountPath: '/' })), invalid);
  assert.throws(
    () => validateAttachRequest(request({ mountPath: '/var/lib/continuum/run/w/volumes/data/m' })),
    /neither inside nor holding runDir/,
  );
  assert.throws(() => validateAttachRequest(request({ method: 'iscsi' as 'auto' })), /method/);
  assert.throws(
    () => validateAttachRequest(request({ nbd: { host: 'b', port: 70000, exportName: 'v' } })),
    /nbd\.port/,
  );
  assert.throws(
    () =>
      validateAttachRequest(
        request({ nbd: { socketPath: `/${'s'.repeat(120)}`, exportName: 'v' } }),
      ),
    /nbd\.socketPath: expected at most 107 bytes/,
  );
  assert.throws(
    () => validateAttachRequest(request({ rootOwner: { uid: -1, gid: 0 } })),
    /rootOwner\.uid/,
  );
});

test('limits must be whole numbers of at least one', () => {
  assert.equal(attachLimits({ readyTimeoutMs: 500 }).readyTimeoutMs, 500);
  assert.throws(() => attachLimits({ commandTimeoutMs: 0 }), RangeError);
  assert.throws(() => attachLimits({ pollIntervalMs: 2.5 }), /pollIntervalMs/);
});
