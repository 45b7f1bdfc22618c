// Crash consistency at the engine level. A child process (crash-writer.ts) runs a seeded workload
// of concurrent writes, write-zeroes, FUA writes and flushes and prints every acknowledgement that
// makes writes durable; the test SIGKILLs it after a seeded number of acknowledgements, while it
// is still busy, then reopens the store (crash recovery) and checks every block:
//   - a block whose last durable write is w reads as the block after w, or after a later write;
//   - no block reads as anything else, and no read fails (an unclean stop never makes a block
//     unreadable).
// Then the next round runs on the same store. Reproduce a failure with CRASH_SEED=<seed>.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  crashBlockBytes,
  crashVolumeBytes,
  planBatches,
  plannedBytes,
  type PlannedWrite,
} from './crash-plan.js';
import { seededRandom, tempDir } from './test-support.js';
import { VolumeStore } from './volume-store.js';

const rounds = 24;
const writesMax = 600;
const baseSeed = Number(process.env.CRASH_SEED ?? '20261122');
const roundDeadlineMs = 30_000;
const writerPath = path.join(path.dirname(fileURLToPath(import.meta.url)), 'crash-writer.ts');

interface Acknowledged {
  /** Every write with a smaller index is durable. */
  flushedBelow: number;
  fuaWrites: Set<number>;
  output: string;
}

interface Writer {
  /** Lets the writer start and resolves once it has been killed. */
  run(killAfter: number): Promise<Acknowledged>;
  kill(): void;
}

/**
 * Starts a writer process that loads its modules and waits; `run` lets it go and SIGKILLs it
 * after `killAfter` acknowledgements (or when it has run out of planned writes).
 */
function startWriter(root: string, seed: number): Writer {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', writerPath, root, 'v', String(seed), String(writesMax)],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  const acknowledged: Acknowledged = { flushedBelow: 0, fuaWrites: new Set(), output: '' };
  let acknowledgements = 0;
  let killAt = Infinity;
  let pending = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      const [kind, value] = line.split(' ');
      if (kind === 'F') {
        acknowledged.flushedBelow = Math.max(acknowledged.flushedBelow, Number(value));
      }
      if (kind === 'U') acknowledged.fuaWrites.add(Number(value));
      if (kind === 'F' || kind === 'U') acknowledgements += 1;
      if (acknowledgements >= killAt || kind === 'DONE') child.kill('SIGKILL');
    }
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => (acknowledged.output += chunk));
  const exited = new Promise<string | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (_code, signal) => resolve(signal));
  });
  return {
    async run(killAfter) {
      killAt = killAfter;
      const deadline = setTimeout(() => child.kill('SIGKILL'), roundDeadlineMs);
      child.stdin.write('go\n');
      const signal = await exited.finally(() => clearTimeout(deadline));
      if (signal !== 'SIGKILL' || acknowledgements === 0) {
        throw new Error(
          `writer ended by ${signal ?? 'exit'} after ${acknowledgements} acknowledgements: ` +
            acknowledged.output,
        );
      }
      return acknowledged;
    },
    kill: () => child.kill('SIGKILL'),
  };
}

function hashOf(block: Buffer): string {
  return createHash('sha1').update(block).digest('hex');
}

/** For every block: the hashes it may read as, given what was acknowledged. */
function acceptableContents(
  baseline: Buffer,
  seed: number,
  acknowledged: Acknowledged,
): Set<string>[] {
  const blocks = crashVolumeBytes / crashBlockBytes;
  const current = Buffer.from(baseline);
  const versions: { index: number; hash: string }[][] = [];
  for (let block = 0; block < blocks; block++) {
    const start = block * crashBlockBytes;
    versions.push([{ index: -1, hash: hashOf(current.subarray(start, start + crashBlockBytes)) }]);
  }
  const durable = (write: PlannedWrite): boolean =>
    write.index < acknowledged.flushedBelow || acknowledged.fuaWrites.has(write.index);
  const lastDurable = new Array<number>(blocks).fill(-1);
  for (const batch of planBatches(seed, writesMax)) {
    for (const write of batch.writes) {
      plannedBytes(seed, write).copy(current, write.offsetBytes);
      const first = Math.floor(write.offsetBytes / crashBlockBytes);
      const end = Math.ceil((write.offsetBytes + write.lengthBytes) / crashBlockBytes);
      for (let block = first; block < end; block++) {
        const start = block * crashBlockBytes;
        const hash = hashOf(current.subarray(start, start + crashBlockBytes));
        versions[block]!.push({ index: write.index, hash });
        if (durable(write)) lastDurable[block] = Math.max(lastDurable[block]!, write.index);
      }
    }
  }
  return versions.map(
    (list, block) =>
      new Set(list.filter((version) => version.index >= lastDurable[block]!).map((v) => v.hash)),
  );
}

test('writes covered by an answered flush or FUA survive SIGKILL at random moments', async () => {
  const dir = await tempDir('crash');
  const root = path.join(dir, 'store');
  let next: Writer | null = null;
  try {
    const setup = await VolumeStore.open(root);
    await setup.create('v', crashVolumeBytes);
    await setup.close();
    let baseline: Buffer = Buffer.alloc(crashVolumeBytes);
    let durableWrites = 0;
    next = startWriter(root, baseSeed);
    for (let round = 0; round < rounds; round++) {
      const seed = baseSeed + round;
      const killAfter = 1 + Math.floor(seededRandom(seed ^ 0x5bd1e995)() * 12);
      const writer: Writer = next;
      const acknowledged = await writer.run(killAfter);
      if (round + 1 < rounds) next = startWriter(root, seed + 1);
      durableWrites += acknowledged.flushedBelow + acknowledged.fuaWrites.size;
      const acceptable = acceptableContents(baseline, seed, acknowledged);
      const store = await VolumeStore.open(root);
      try {
        const volume = await store.open('v');
        const actual = await volume.read(0, crashVolumeBytes);
        for (let block = 0; block < acceptable.length; block++) {
          const start = block * crashBlockBytes;
          const hash = hashOf(actual.subarray(start, start + crashBlockBytes));
          assert.ok(
            acceptable[block]!.has(hash),
            `block ${block} holds content no acknowledged history allows ` +
              `(round ${round}, CRASH_SEED=${baseSeed}, seed ${seed}, flushed below ` +
              `${acknowledged.flushedBelow})`,
          );
        }
        baseline = actual;
        await volume.close();
      } finally {
        await store.close();
      }
    }
    console.log(
      `crash test: ${rounds} rounds, ${durableWrites} acknowledged durable writes checked`,
    );
  } catch (error) {
    // The writer started for the next round is still waiting for its go; do not leave it behind.
    next?.kill();
    throw error;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
