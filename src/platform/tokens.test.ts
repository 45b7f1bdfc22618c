// Tests of token files: created once with mode 0600, reused afterwards, and refused when others
// could read them or when they are too short to be a secret.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ensureToken, readToken } from './tokens.js';

describe('token files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'continuum-tokens-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('creates a token with mode 0600 at first start and returns the same one afterwards', () => {
    const path = join(dir, 'sub', 'api.token');
    const first = ensureToken(path);
    assert.ok(first.length >= 32);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(ensureToken(path), first);
  });

  it('refuses a token file that others can read, naming the file and the mode expected', () => {
    const path = join(dir, 'open.token');
    writeFileSync(path, 'a-long-enough-secret-token\n');
    chmodSync(path, 0o644);
    assert.throws(() => readToken(path), {
      code: 'CONTINUUM_ERR_CONFIG',
      message: /open\.token: expected mode 0600/,
    });
  });

  it('refuses a token too short to be a secret', () => {
    const path = join(dir, 'short.token');
    writeFileSync(path, 'short\n', { mode: 0o600 });
    assert.throws(() => readToken(path), { code: 'CONTINUUM_ERR_CONFIG' });
  });
});
