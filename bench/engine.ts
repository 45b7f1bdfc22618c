// Micro-benchmark of the block engine without any protocol on top, next to the same pattern on a
// plain preallocated file (what qemu-nbd does with a raw image), so the engine's own cost is
// visible. Run: node --import tsx bench/engine.ts [seconds-per-case]
// Figures only; nothing here asserts (CONVENTIONS.md item 19).
import fs from 'node:fs';
import { mulberry32 as random } from '../src/sim/rng.js';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { readAt, syncData, writeAt } from '../src/storage/engine/file-io.js';
import { VolumeStore } from '../src/storage/engine/volume-store.js';

interface Target {
  read(offsetBytes: number, lengthBytes: number): Promise<unknown>;
  write(offsetBytes: number, data: Buffer): Promise<void>;
  flush(): Promise<void>;
}

const volumeBytes = 1024 * 2 ** 20;
const caseSeconds = Number(process.argv[2] ?? '2');

async function measure(
  label: string,
  depth: number,
  operation: (next: () => number) => Promise<unknown>,
): Promise<void> {
  const next = random(42);
  const deadline = performance.now() + caseSeconds * 1000;
  let operations = 0;
  const latencies: number[] = [];
  const worker = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const started = performance.now();
      await operation(next);
      latencies.push(performance.now() - started);
      operations += 1;
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: depth }, worker));
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const p50 = latencies[Math.floor(latencies.length / 2)] ?? 0;
  const p99 = latencies[Math.floor(latencies.length * 0.99)] ?? 0;
  console.log(
    `${label.padEnd(34)} ${String(Math.round(operations / seconds)).padStart(8)} ops/s` +
      `  p50 ${(p50 * 1000).toFixed(0).padStart(6)} us  p99 ${(p99 * 1000).toFixed(0).padStart(6)} us`,
  );
}

async function runCases(name: string, target: Target): Promise<void> {
  const block = Buffer.alloc(4096, 0x5a);
  const big = Buffer.alloc(2 ** 20, 0x33);
  const blocks = volumeBytes / 4096;
  const randomBlock = (next: () => number): number => Math.floor(next() * blocks) * 4096;
  // Fill first so that reads hit data and writes overwrite, as in a benchmark on a used disk.
  for (let offset = 0; offset < volumeBytes; offset += big.length) await target.write(offset, big);
  await target.flush();
  console.log(`-- ${name}`);
  await measure('4k randwrite qd1', 1, (next) => target.write(randomBlock(next), block));
  await measure('4k randwrite qd32', 32, (next) => target.write(randomBlock(next), block));
  await target.flush();
  await measure('4k randread qd1', 1, (next) => target.read(randomBlock(next), 4096));
  await measure('4k randread qd32', 32, (next) => target.read(randomBlock(next), 4096));
  let sequential = 0;
  const nextChunk = (): number => {
    const at = sequential;
    sequential = (sequential + big.length) % volumeBytes;
    return at;
  };
  await measure('1m seqwrite qd4', 4, () => target.write(nextChunk(), big));
  await target.flush();
  await measure('1m seqread qd4', 4, () => target.read(nextChunk(), big.length));
  await measure('4k write+flush qd1', 1, async (next) => {
    await target.write(randomBlock(next), block);
    await target.flush();
  });
}

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'continuum-engine-bench-'));
  try {
    const store = await VolumeStore.open(path.join(dir, 'store'));
    await store.create('bench', volumeBytes);
    const volume = await store.open('bench');
    await runCases('engine (VolumeStore volume)', volume);
    await volume.close();
    await store.close();

    const filePath = path.join(dir, 'plain.raw');
    const fd = fs.openSync(filePath, 'w+');
    await runCases('plain file (fs.read/fs.write, fdatasync)', {
      read: (offset, length) => readAt(fd, Buffer.allocUnsafe(length), 0, length, offset),
      write: (offset, data) => writeAt(fd, data, 0, data.length, offset),
      flush: () => syncData(fd),
    });
    const handle = await fs.promises.open(filePath, 'r+');
    await runCases('plain file (FileHandle)', {
      read: (offset, length) => handle.read(Buffer.allocUnsafe(length), 0, length, offset),
      write: async (offset, data) => {
        await handle.write(data, 0, data.length, offset);
      },
      flush: () => handle.datasync(),
    });
    await handle.close();
    fs.closeSync(fd);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
