// Helpers shared by the engine's tests: temporary stores that clean up after themselves, a seeded
// random generator, and block contents that name where and when they were written, so that a
// mismatch says which write is missing.
import { mulberry32 } from '../../sim/rng.js';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { VolumeStore, type VolumeStoreOptions } from './volume-store.js';

export interface TempStore {
  readonly dir: string;
  readonly root: string;
  store: VolumeStore;
  /** Closes the store and opens it again from disk. */
  reopen(options?: VolumeStoreOptions): Promise<VolumeStore>;
  cleanup(): Promise<void>;
}

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), `continuum-${prefix}-`));
}

export async function tempStore(options: VolumeStoreOptions = {}): Promise<TempStore> {
  const dir = await tempDir('engine');
  const root = path.join(dir, 'store');
  const temp: TempStore = {
    dir,
    root,
    store: await VolumeStore.open(root, options),
    async reopen(reopenOptions = options) {
      await temp.store.close();
      temp.store = await VolumeStore.open(root, reopenOptions);
      return temp.store;
    },
    async cleanup() {
      await temp.store.close().catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
  return temp;
}

/**
 * Deterministic, non-zero bytes derived from `seed`: a 64-byte random stretch, repeated. Different
 * seeds give different bytes; cheap enough for megabytes of test data.
 */
export function pattern(seed: number, lengthBytes: number): Buffer {
  const next = seededRandom(seed * 2654435761);
  const stretch = Buffer.allocUnsafe(64);
  for (let offset = 0; offset < 64; offset += 4) {
    stretch.writeUInt32LE((Math.floor(next() * 2 ** 32) | 0x01010101) >>> 0, offset);
  }
  return Buffer.allocUnsafe(lengthBytes).fill(stretch);
}

/** `count` blocks of `blockBytes`, each different from every other (pattern repeats per block). */
export function distinctBlocks(seed: number, count: number, blockBytes = 4096): Buffer {
  return Buffer.concat(
    Array.from({ length: count }, (_, index) => pattern(seed * 7919 + index, blockBytes)),
  );
}

/** Seeded numbers in [0, 1): the same sequence on every machine for a seed. */
export const seededRandom = mulberry32;
