// Child process of the NBD crash-consistency test (crash.test.ts): opens the store, creates the
// 16 MiB volume "disk" the first time, serves it over NBD on a unix socket and prints `ready` once
// it listens. It never exits by itself: the test kills it with SIGKILL in the middle of a workload
// and starts it again on the same store (crash recovery happens in VolumeStore.open).
// Warnings and errors of the server go to stderr, which the test shows when something fails.
// Usage: node --import tsx test/nbd/crash-server.ts <store-root> <socket-path>
import { rmSync } from 'node:fs';
import type { Logger, LogLevel } from '../../src/core/ports.js';
import { VolumeStore } from '../../src/storage/engine/index.js';
import { NbdServer } from '../../src/storage/nbd/server.js';

const crashDiskName = 'disk';
const crashDiskBytes = 16 * 2 ** 20;

function stderrLogger(fields: Record<string, unknown> = {}): Logger {
  return {
    log(level: LogLevel, message: string, more?: Record<string, unknown>) {
      if (level !== 'warn' && level !== 'error') return;
      process.stderr.write(`${level}: ${message} ${JSON.stringify({ ...fields, ...more })}\n`);
    },
    child: (more) => stderrLogger({ ...fields, ...more }),
  };
}

async function main(): Promise<void> {
  const [root, socketPath, journal] = process.argv.slice(2);
  if (root === undefined || socketPath === undefined) {
    throw new Error('usage: crash-server.ts <store-root> <socket-path> [small-journal]');
  }
  // A small journal makes flushes rewrite it as checkpoints, so kills land in those too.
  const small = journal === 'small-journal';
  const store = await VolumeStore.open(root, small ? { journalBytesMax: 16384 } : {});
  const existing = await store.list();
  if (!existing.some((info) => info.name === crashDiskName)) {
    await store.create(crashDiskName, crashDiskBytes);
  }
  const volume = await store.open(crashDiskName);
  const server = new NbdServer({
    lookupExport: (name) => (name === crashDiskName ? volume : undefined),
    logger: stderrLogger(),
  });
  // The previous server was killed, so its socket file is still there and listen() would fail.
  rmSync(socketPath, { force: true });
  await server.listen({ socketPath });
  process.stdout.write('ready\n');
  // Stay alive until killed, even without a connection.
  setInterval(() => undefined, 1 << 30);
}

await main();
