// Reading /proc/self/mountinfo: escaped paths, optional fields, stacked mounts, FUSE types.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  isFuseMount,
  mountAt,
  parseMountInfo,
  readMounts,
  unescapeMountField,
} from './host-state.js';

const sample = [
  '22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda rw',
  '42 22 0:39 / /run/v/nbdfuse rw,nosuid,nodev,relatime - fuse /dev/fuse rw,user_id=0,group_id=0',
  '43 22 7:0 / /srv/my\\040data rw,relatime shared:7 master:2 - ext4 /dev/loop0 rw',
  '44 22 0:40 / /srv/other rw,nosuid,nodev,relatime - fuse.ext4 /run/v/nbdfuse/nbd rw,allow_other',
  '45 22 7:1 / /srv/other rw,relatime - ext4 /dev/loop1 rw',
  '',
].join('\n');

test('mountinfo entries parse, with optional fields and escaped spaces', () => {
  const entries = parseMountInfo(sample);
  assert.equal(entries.length, 5);
  assert.deepEqual(entries[2], {
    mountPoint: '/srv/my data',
    fileSystemType: 'ext4',
    source: '/dev/loop0',
  });
  assert.equal(unescapeMountField('a\\011b\\134c\\012'), 'a\tb\\c\n');
});

test('mountAt finds the top of a stack of mounts, and null where none is', () => {
  const entries = parseMountInfo(sample);
  assert.equal(mountAt('/srv/other', entries)?.source, '/dev/loop1');
  assert.equal(mountAt('/srv', entries), null);
});

test('FUSE mounts are told by type: fuse, and fuse.<subtype>', () => {
  const entries = parseMountInfo(sample);
  assert.ok(isFuseMount(mountAt('/run/v/nbdfuse', entries)));
  assert.ok(isFuseMount(entries[3] ?? null));
  assert.ok(!isFuseMount(mountAt('/srv/my data', entries)));
  assert.ok(!isFuseMount(null));
});

test('this process sees its root mount', () => {
  assert.ok(mountAt('/', readMounts()) !== null);
});
