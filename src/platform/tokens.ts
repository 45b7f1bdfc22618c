// Tokens created at first start and stored with mode 0600 (ARCHITECTURE.md section 7: every call
// is authenticated). Reading refuses a token file that others can read.
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { ContinuumError } from '../core/errors.js';

export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

export function ensureToken(path: string): string {
  if (!existsSync(path)) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    writeFileSync(path, `${newToken()}\n`, { mode: 0o600, flag: 'wx' });
  }
  chmodSync(path, 0o600);
  return readToken(path);
}

/** Writes a token made elsewhere (a shared store), replacing the file's content, mode 0600. */
export function writeToken(path: string, token: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSync(path, `${token}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
}

export function readToken(path: string): string {
  let text: string;
  try {
    if ((statSync(path).mode & 0o077) !== 0) {
      throw new ContinuumError(
        'CONTINUUM_ERR_CONFIG',
        `token file ${path}: expected mode 0600 (others can read it)`,
      );
    }
    text = readFileSync(path, 'utf8').trim();
  } catch (err) {
    if (err instanceof ContinuumError) throw err;
    throw new ContinuumError(
      'CONTINUUM_ERR_CONFIG',
      `token file ${path}: cannot read it (${(err as Error).message})`,
    );
  }
  if (text.length < 16)
    throw new ContinuumError(
      'CONTINUUM_ERR_CONFIG',
      `token file ${path}: expected a token of at least 16 characters`,
    );
  return text;
}
