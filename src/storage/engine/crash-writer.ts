// Child process of the crash-consistency test (crash.test.ts): opens the store, runs the planned
// workload (crash-plan.ts) and reports on stdout every acknowledgement that makes writes durable:
//   F <n>   a flush was answered; every write with index < n had completed before it was sent
//   U <i>   write i, sent with FUA, was answered
// It is killed with SIGKILL at some point; after the last planned write it waits to be killed.
// It starts work when a line arrives on stdin, so the test can start the next writer (loading
// modules takes most of a second) while it still checks the previous round.
// Usage: node --import tsx crash-writer.ts <store-root> <volume> <seed> <writes-max>
import { once } from 'node:events';
import { crashBlockBytes, planBatches, plannedBytes } from './crash-plan.js';
import { VolumeStore } from './volume-store.js';

async function main(): Promise<void> {
  const [root, name, seedText, writesText] = process.argv.slice(2);
  if (root === undefined || name === undefined || seedText === undefined) {
    throw new Error('usage: crash-writer.ts <store-root> <volume> <seed> <writes-max>');
  }
  const seed = Number(seedText);
  process.stdout.write('READY\n');
  await once(process.stdin, 'data');
  // Small limits so that background flushes and journal checkpoints happen during the run.
  const store = await VolumeStore.open(root, { journalBytesMax: 16384, epochBlocksMax: 64 });
  const volume = await store.open(name);
  let completed = 0;
  for (const batch of planBatches(seed, Number(writesText ?? '2000'))) {
    await Promise.all(
      batch.writes.map(async (write) => {
        const options = { fua: write.fua };
        if (write.kind === 'zero') {
          await volume.writeZeroes(write.offsetBytes, write.lengthBytes, options);
        } else {
          await volume.write(write.offsetBytes, plannedBytes(seed, write), options);
        }
        if (write.fua) process.stdout.write(`U ${write.index}\n`);
      }),
    );
    completed += batch.writes.length;
    if (batch.flush) {
      const covered = completed;
      await volume.flush();
      process.stdout.write(`F ${covered}\n`);
    }
  }
  process.stdout.write(`DONE ${completed} ${crashBlockBytes}\n`);
  // Stay alive until killed: the test decides when the process ends.
  setInterval(() => undefined, 1 << 30);
}

await main();
