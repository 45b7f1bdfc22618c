// The checks every request passes before the device sees it, one row per rule of the
// specification's error section.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resolveNbdLimits } from './limits.js';
import { MemoryBlockDevice } from './memory-device.js';
import * as P from './protocol.js';
import { checkRequest } from './request-checks.js';
import { testSession } from './test-support.js';

const device = new MemoryBlockDevice({ sizeBytes: 1 << 20 });
const limits = resolveNbdLimits({ requestBytesMax: 1 << 16 });
const plain = testSession(device);
const rich = testSession(device, { structured: true, blockStatus: true });
const frozen = testSession(device, { readOnly: true });

const cases: [
  string,
  typeof plain,
  { type: number; flags?: number; offset?: number; length?: number },
  number | undefined,
][] = [
  ['a read inside the export', plain, { type: P.NBD_CMD_READ, length: 4096 }, undefined],
  [
    'a read ending exactly at the end',
    plain,
    { type: P.NBD_CMD_READ, offset: (1 << 20) - 1, length: 1 },
    undefined,
  ],
  [
    'a read past the end',
    plain,
    { type: P.NBD_CMD_READ, offset: 1 << 20, length: 1 },
    P.NBD_EINVAL,
  ],
  [
    'a write past the end',
    plain,
    { type: P.NBD_CMD_WRITE, offset: (1 << 20) - 1, length: 2 },
    P.NBD_ENOSPC,
  ],
  [
    'zeroes past the end',
    plain,
    { type: P.NBD_CMD_WRITE_ZEROES, offset: 1 << 20, length: 1 },
    P.NBD_ENOSPC,
  ],
  [
    'a trim past the end',
    plain,
    { type: P.NBD_CMD_TRIM, offset: 1 << 20, length: 1 },
    P.NBD_EINVAL,
  ],
  [
    'an offset beyond 2^53',
    plain,
    { type: P.NBD_CMD_READ, offset: Infinity, length: 1 },
    P.NBD_EINVAL,
  ],
  [
    'a read above requestBytesMax',
    plain,
    { type: P.NBD_CMD_READ, length: (1 << 16) + 1 },
    P.NBD_EINVAL,
  ],
  [
    'zeroes above requestBytesMax',
    plain,
    { type: P.NBD_CMD_WRITE_ZEROES, length: (1 << 16) + 1 },
    P.NBD_EINVAL,
  ],
  [
    'a large trim (not bounded by the maximum block size)',
    plain,
    { type: P.NBD_CMD_TRIM, length: 1 << 20 },
    undefined,
  ],
  ['an unknown command', plain, { type: 42 }, P.NBD_EINVAL],
  ['NBD_CMD_CACHE, not offered', plain, { type: 5 }, P.NBD_EINVAL],
  ['an unknown flag', plain, { type: P.NBD_CMD_READ, flags: 1 << 9, length: 1 }, P.NBD_EINVAL],
  [
    'NO_HOLE on a write',
    plain,
    { type: P.NBD_CMD_WRITE, flags: P.NBD_CMD_FLAG_NO_HOLE, length: 1 },
    P.NBD_EINVAL,
  ],
  [
    'FUA on a read (clients do send it)',
    plain,
    { type: P.NBD_CMD_READ, flags: P.NBD_CMD_FLAG_FUA, length: 1 },
    undefined,
  ],
  [
    'DF without structured replies',
    plain,
    { type: P.NBD_CMD_READ, flags: P.NBD_CMD_FLAG_DF, length: 1 },
    P.NBD_EINVAL,
  ],
  [
    'DF with structured replies',
    rich,
    { type: P.NBD_CMD_READ, flags: P.NBD_CMD_FLAG_DF, length: 1 },
    undefined,
  ],
  [
    'block status without a context',
    plain,
    { type: P.NBD_CMD_BLOCK_STATUS, length: 1 },
    P.NBD_EINVAL,
  ],
  [
    'block status with REQ_ONE',
    rich,
    { type: P.NBD_CMD_BLOCK_STATUS, flags: P.NBD_CMD_FLAG_REQ_ONE, length: 1 },
    undefined,
  ],
  ['block status for nothing', rich, { type: P.NBD_CMD_BLOCK_STATUS, length: 0 }, P.NBD_EINVAL],
  ['a write on a read-only export', frozen, { type: P.NBD_CMD_WRITE, length: 1 }, P.NBD_EPERM],
  ['a trim on a read-only export', frozen, { type: P.NBD_CMD_TRIM, length: 1 }, P.NBD_EPERM],
  ['a flush on a read-only export', frozen, { type: P.NBD_CMD_FLUSH }, undefined],
  ['a read of 0 bytes', plain, { type: P.NBD_CMD_READ, length: 0 }, undefined],
];

describe('request checks', () => {
  for (const [name, session, request, errno] of cases) {
    it(`${errno === undefined ? 'accepts' : 'refuses'} ${name}`, () => {
      const refusal = checkRequest(session, limits, { flags: 0, offset: 0, length: 0, ...request });
      assert.equal(refusal?.errno, errno, refusal?.message);
      if (refusal !== undefined) assert.ok(refusal.message.length > 0);
    });
  }
});
