// Which methods work, on imaginary hosts (the pure evaluation) and on this one (the real probe).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  chooseAttachMethod,
  describeAttachDetection,
  detectAttachMethods,
  evaluateAttachMethods,
} from './detect.js';
import { allTools, hasCode, hostFacts } from './test-support.js';
import type { AttachMethod } from './types.js';

function available(methods: ReturnType<typeof evaluateAttachMethods>['methods']): AttachMethod[] {
  return methods.filter((m) => m.available).map((m) => m.method);
}

test('a root host with the nbd module prefers the kernel client', () => {
  const detection = evaluateAttachMethods(hostFacts());
  assert.equal(detection.preferred, 'nbd-client');
  assert.deepEqual(available(detection.methods), ['nbd-client', 'nbdfuse-loop', 'nbdfuse-fuse2fs']);
});

test('without the nbd module, root falls back to nbdfuse and a loop device, and says why', () => {
  const detection = evaluateAttachMethods(
    hostFacts({
      nbdModule: 'absent',
      nbdModuleDetail: 'not loaded and modprobe finds no nbd module',
    }),
  );
  assert.equal(detection.preferred, 'nbdfuse-loop');
  const kernel = detection.methods.find((m) => m.method === 'nbd-client');
  assert.deepEqual(kernel?.reasons, [
    'kernel nbd module: not loaded and modprobe finds no nbd module',
  ]);
});

test('a loadable module counts, but only with modprobe to load it', () => {
  assert.equal(evaluateAttachMethods(hostFacts({ nbdModule: 'loadable' })).preferred, 'nbd-client');
  const tools = { ...allTools };
  delete tools.modprobe;
  const detection = evaluateAttachMethods(hostFacts({ nbdModule: 'loadable', tools }));
  assert.equal(detection.preferred, 'nbdfuse-loop');
});

test('an unprivileged agent gets only fuse2fs, and only through a setuid fusermount3', () => {
  const user = { isRoot: false, uid: 1000, gid: 1000 };
  const detection = evaluateAttachMethods(hostFacts(user));
  assert.deepEqual(available(detection.methods), ['nbdfuse-fuse2fs']);
  const loop = detection.methods.find((m) => m.method === 'nbdfuse-loop');
  assert.ok(loop?.reasons.some((r) => r.startsWith('needs root')));

  const noHelper = evaluateAttachMethods(hostFacts({ ...user, fusermountSetuidRoot: false }));
  assert.equal(noHelper.preferred, null);
});

test('a /dev/fuse the agent cannot open rules out both nbdfuse methods', () => {
  const detection = evaluateAttachMethods(
    hostFacts({ isRoot: false, uid: 65534, gid: 65534, devFuse: 'no-access' }),
  );
  assert.equal(detection.preferred, null);
  const fuse2fs = detection.methods.find((m) => m.method === 'nbdfuse-fuse2fs');
  assert.deepEqual(fuse2fs?.reasons, [
    '/dev/fuse cannot be opened for reading and writing by uid 65534',
  ]);
  assert.match(describeAttachDetection(detection), /^no volume attach method works .* refused/);
});

test('missing tools are named', () => {
  const tools = { ...allTools };
  delete tools.fuse2fs;
  delete tools.e2fsck;
  const detection = evaluateAttachMethods(
    hostFacts({ isRoot: false, uid: 1000, gid: 1000, tools }),
  );
  const fuse2fs = detection.methods.find((m) => m.method === 'nbdfuse-fuse2fs');
  assert.deepEqual(fuse2fs?.reasons, ['not found on PATH or in /usr/sbin, /sbin: fuse2fs, e2fsck']);
});

test('chooseAttachMethod honours a forced method only where it works', () => {
  const detection = evaluateAttachMethods(
    hostFacts({ nbdModule: 'absent', nbdModuleDetail: 'absent' }),
  );
  assert.equal(chooseAttachMethod(detection), 'nbdfuse-loop');
  assert.equal(chooseAttachMethod(detection, 'nbdfuse-fuse2fs'), 'nbdfuse-fuse2fs');
  assert.throws(
    () => chooseAttachMethod(detection, 'nbd-client'),
    hasCode('CONTINUUM_ERR_ATTACH_UNSUPPORTED'),
  );
  const none = evaluateAttachMethods(hostFacts({ fuseFileSystem: false, isRoot: false, uid: 1 }));
  assert.throws(() => chooseAttachMethod(none), hasCode('CONTINUUM_ERR_ATTACH_UNSUPPORTED'));
});

test('the real probe reports every method and facts that agree with this process', async () => {
  const detection = await detectAttachMethods();
  assert.deepEqual(
    detection.methods.map((m) => m.method),
    ['nbd-client', 'nbdfuse-loop', 'nbdfuse-fuse2fs'],
  );
  assert.equal(detection.facts.isRoot, process.getuid?.() === 0);
  for (const method of detection.methods) {
    assert.equal(method.available, method.reasons.length === 0, method.method);
  }
  for (const path of Object.values(detection.facts.tools)) assert.match(path, /^\//);
});
