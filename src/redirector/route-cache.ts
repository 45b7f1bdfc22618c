// The redirector's copy of the last route table on disk, so a redirector restarted while no
// controller answers still routes. Written atomically (temporary file, fsync, rename): a crash
// mid-write leaves the previous table, never half of one.
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { RouteTable } from '../core/model.js';
import type { Logger } from '../core/ports.js';
import { parseRouteTable } from './route-schema.js';

/** Reads the cached table; null (with a logged reason) when there is none or it is unreadable. */
export async function loadRouteCache(file: string, logger: Logger): Promise<RouteTable | null> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const level = code === 'ENOENT' ? 'info' : 'warn';
    logger.log(level, 'no cached route table', { file, error: (error as Error).message });
    return null;
  }
  const parsed = parseRouteTable(text);
  if (!parsed.ok) {
    logger.log('warn', 'ignoring an invalid cached route table', { file, error: parsed.error });
    return null;
  }
  return parsed.table;
}

/** Serializes writes and skips tables superseded while a write was in flight. */
export class RouteCacheWriter {
  private readonly file: string;
  private readonly logger: Logger;
  private next: RouteTable | null = null;
  private writing: Promise<void> | null = null;

  constructor(file: string, logger: Logger) {
    this.file = file;
    this.logger = logger;
  }

  write(table: RouteTable): void {
    this.next = table;
    this.writing ??= this.drain();
  }

  /** Resolves once every table handed to write() is on disk (or failed with a logged reason). */
  async flush(): Promise<void> {
    while (this.writing !== null) await this.writing;
  }

  private async drain(): Promise<void> {
    try {
      while (this.next !== null) {
        const table = this.next;
        this.next = null;
        await this.writeOne(table);
      }
    } finally {
      // Runs in the same turn as the last check of `next`, so no table can slip in between.
      this.writing = null;
    }
  }

  private async writeOne(table: RouteTable): Promise<void> {
    try {
      await writeAtomically(this.file, `${JSON.stringify(table)}\n`);
    } catch (error) {
      // The cache only helps a later restart; routing goes on without it.
      this.logger.log('warn', 'cannot write the route cache', {
        file: this.file,
        error: (error as Error).message,
      });
    }
  }
}

async function writeAtomically(file: string, text: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const temporary = `${file}.${process.pid}.tmp`;
  const handle = await open(temporary, 'w', 0o600);
  try {
    await handle.writeFile(text, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(temporary, file);
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    throw error;
  }
}
