import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  mallocMmapThresholdBytes,
  mallocTrimThresholdBytes,
  serverProcessEnv,
} from './malloc-tunables.js';

describe('serverProcessEnv', () => {
  it('adds the malloc thresholds to the environment it is given', () => {
    const env = serverProcessEnv({ PATH: '/usr/bin', HOME: '/root' });
    assert.deepEqual(env, {
      PATH: '/usr/bin',
      HOME: '/root',
      GLIBC_TUNABLES:
        `glibc.malloc.mmap_threshold=${mallocMmapThresholdBytes}:` +
        `glibc.malloc.trim_threshold=${mallocTrimThresholdBytes}`,
    });
  });

  it("keeps an operator's own GLIBC_TUNABLES", () => {
    const base = { GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' };
    assert.deepEqual(serverProcessEnv(base), base);
    assert.notEqual(serverProcessEnv(base), base, 'a copy: the caller may change it');
  });
});
