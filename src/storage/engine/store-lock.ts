// One process at a time owns a store directory: two engines appending to one journal would
// corrupt it. The lock is a file holding the owner's process id, created exclusively. Node has no
// flock(), so a lock left by a process that died (a SIGKILL, a crash) is recognised by its process
// id no longer running (or left as a zombie nobody reaped) and taken over.
import { open, readFile, unlink } from 'node:fs/promises';
import { readProcStat } from '../../agent/drivers/process/proc-fs.js';
import { volumeError } from './engine-errors.js';

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  // A killed owner whose parent has not reaped it yet (a zombie) still answers kill(pid, 0).
  const stat = readProcStat(pid);
  return stat === null || (stat.state !== 'Z' && stat.state !== 'X');
}

export async function acquireStoreLock(lockPath: string): Promise<() => Promise<void>> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(lockPath, 'wx', 0o600);
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      return async () => {
        await unlink(lockPath).catch(() => undefined);
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const owner = Number.parseInt(await readFile(lockPath, 'utf8').catch(() => ''), 10);
    if (Number.isSafeInteger(owner) && owner > 0 && isRunning(owner)) {
      throw volumeError(
        'CONTINUUM_ERR_VOLUME_STORE_LOCKED',
        `store lock ${lockPath} is held by running process ${owner}` +
          (owner === process.pid ? ' (this process: the store is already open)' : ''),
      );
    }
    await unlink(lockPath).catch(() => undefined);
  }
  throw volumeError('CONTINUUM_ERR_VOLUME_STORE_LOCKED', `could not take store lock ${lockPath}`);
}
