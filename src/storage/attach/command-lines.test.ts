// The command lines attach runs: each argument that matters (direct I/O, the export name, the
// fuse2fs options for root and for an unprivileged agent) is pinned here.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  fuse2fsCommand,
  losetupAttachCommand,
  mkfsExt4Command,
  nbdClientConnectCommand,
  nbdfuseCommand,
  nbdUri,
  parseBlkidExport,
  saysBusy,
} from './command-lines.js';

test('nbdUri names a unix socket and the export, encoding what a URI cannot hold', () => {
  assert.equal(
    nbdUri({ socketPath: '/run/continuum/vol.sock', exportName: 'export' }),
    'nbd+unix:///export?socket=/run/continuum/vol.sock',
  );
  // A "/" in the export name must not read as a path separator; spaces and "?" are encoded.
  assert.equal(
    nbdUri({ socketPath: '/tmp/a b/s', exportName: 'we/ird name?%#' }),
    'nbd+unix:///we%2Fird%20name%3F%25%23?socket=/tmp/a%20b/s',
  );
  assert.equal(nbdUri({ socketPath: '/s', exportName: '' }), 'nbd+unix:///?socket=/s');
});

test('nbdUri names a TCP server, bracketing an IPv6 address', () => {
  assert.equal(
    nbdUri({ host: '10.0.0.5', port: 10809, exportName: 'v1' }),
    'nbd://10.0.0.5:10809/v1',
  );
  assert.equal(nbdUri({ host: '::1', port: 10809, exportName: 'v1' }), 'nbd://[::1]:10809/v1');
});

test('nbdfuse writes a pid file and serves the URI form (the only one that names an export)', () => {
  const command = nbdfuseCommand('/usr/bin/nbdfuse', {
    fuseDir: '/run/v/nbdfuse',
    pidFile: '/run/v/nbdfuse.pid',
    target: { socketPath: '/run/s', exportName: 'vol' },
  });
  assert.deepEqual(command.args, [
    '--pidfile',
    '/run/v/nbdfuse.pid',
    '/run/v/nbdfuse',
    'nbd+unix:///vol?socket=/run/s',
  ]);
});

test('the loop device is made with direct I/O over the nbdfuse file', () => {
  assert.deepEqual(losetupAttachCommand('/sbin/losetup', '/run/v/nbdfuse/nbd').args, [
    '--direct-io=on',
    '--find',
    '--show',
    '/run/v/nbdfuse/nbd',
  ]);
});

test('mkfs.ext4 forces (a regular file is fine), skips discard and sets the root owner', () => {
  const args = mkfsExt4Command('/sbin/mkfs.ext4', '/dev/loop3', { uid: 1000, gid: 100 }).args;
  assert.deepEqual(args, [
    '-q',
    '-F',
    '-b',
    '4096',
    '-E',
    'nodiscard,root_owner=1000:100',
    '/dev/loop3',
  ]);
});

test('fuse2fs runs in the foreground, allow_other as root, fakeroot otherwise', () => {
  const options = { imagePath: '/run/v/nbdfuse/nbd', mountPath: '/data' };
  const asRoot = fuse2fsCommand('/usr/bin/fuse2fs', { ...options, asRoot: true }).args;
  const asUser = fuse2fsCommand('/usr/bin/fuse2fs', { ...options, asRoot: false }).args;
  assert.deepEqual(asRoot, ['/run/v/nbdfuse/nbd', '/data', '-f', '-o', 'allow_other']);
  assert.deepEqual(asUser, ['/run/v/nbdfuse/nbd', '/data', '-f', '-o', 'fakeroot']);
});

test('nbd-client takes -unix for a socket and host port for TCP, always with the export name', () => {
  const unix = nbdClientConnectCommand('/sbin/nbd-client', {
    target: { socketPath: '/run/s', exportName: 'vol' },
    device: '/dev/nbd2',
  });
  assert.deepEqual(unix.args, [
    '-unix',
    '/run/s',
    '/dev/nbd2',
    '-name',
    'vol',
    '-block-size',
    '4096',
  ]);
  const tcp = nbdClientConnectCommand('/sbin/nbd-client', {
    target: { host: 'node-b', port: 10809, exportName: 'vol' },
    device: '/dev/nbd0',
  });
  assert.deepEqual(tcp.args, [
    'node-b',
    '10809',
    '/dev/nbd0',
    '-name',
    'vol',
    '-block-size',
    '4096',
  ]);
});

test('blkid export output parses into fields', () => {
  const fields = parseBlkidExport(
    'DEVNAME=/dev/loop0\nUUID=1b95e1e9\nBLOCK_SIZE=4096\nTYPE=ext4\n',
  );
  assert.deepEqual(fields, {
    DEVNAME: '/dev/loop0',
    UUID: '1b95e1e9',
    BLOCK_SIZE: '4096',
    TYPE: 'ext4',
  });
});

test('busy messages of umount and fusermount3 are recognized', () => {
  assert.ok(saysBusy('umount: /data: target is busy.'));
  assert.ok(saysBusy('fusermount3: failed to unmount /data: Device or resource busy'));
  assert.ok(!saysBusy('umount: /data: not mounted.'));
});
