// The workload of the crash-consistency test, derived from a seed alone, so that the writer (a
// child process that gets killed) and the checker (the test, which reopens the store) agree on
// every write without talking: batches of concurrent writes to distinct blocks, some partial,
// some write-zeroes, some with FUA, some batches followed by a flush.
import { pattern, seededRandom } from './test-support.js';

export interface PlannedWrite {
  readonly index: number;
  readonly kind: 'write' | 'zero';
  readonly offsetBytes: number;
  readonly lengthBytes: number;
  readonly fua: boolean;
}

export interface PlannedBatch {
  readonly writes: readonly PlannedWrite[];
  readonly flush: boolean;
}

export const crashVolumeBytes = 256 * 4096;
export const crashBlockBytes = 4096;

export function planBatches(seed: number, writesMax: number): PlannedBatch[] {
  const next = seededRandom(seed);
  const pick = (count: number): number => Math.floor(next() * count);
  const blocks = crashVolumeBytes / crashBlockBytes;
  const batches: PlannedBatch[] = [];
  let index = 0;
  while (index < writesMax) {
    const taken = new Set<number>();
    const writes: PlannedWrite[] = [];
    const size = 1 + pick(6);
    for (let attempt = 0; attempt < size && index < writesMax; attempt++) {
      const first = pick(blocks);
      const count = Math.min(1 + pick(3), blocks - first);
      let free = true;
      for (let block = first; block < first + count; block++) if (taken.has(block)) free = false;
      if (!free) continue;
      for (let block = first; block < first + count; block++) taken.add(block);
      const roll = next();
      const partial = roll < 0.25;
      const head = partial ? pick(crashBlockBytes - 1) : 0;
      const lengthBytes = partial
        ? 1 + pick(count * crashBlockBytes - head - 1)
        : count * crashBlockBytes;
      writes.push({
        index,
        kind: roll > 0.9 ? 'zero' : 'write',
        offsetBytes: first * crashBlockBytes + head,
        lengthBytes,
        fua: next() < 0.15,
      });
      index += 1;
    }
    batches.push({ writes, flush: next() < 0.3 });
  }
  return batches;
}

/** The bytes write `index` of the run with `seed` puts down (write-zeroes: zeroes). */
export function plannedBytes(seed: number, write: PlannedWrite): Buffer {
  if (write.kind === 'zero') return Buffer.alloc(write.lengthBytes);
  return pattern(seed * 100003 + write.index, write.lengthBytes);
}
