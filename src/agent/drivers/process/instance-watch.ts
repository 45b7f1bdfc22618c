// Watches one instance for its exit: through the shim's socket while it is reachable, otherwise
// through the run directory's exit record and /proc. Whichever way, the exit is settled once, and
// an exit nobody saw (the shim was killed first) is written down so every later reader agrees.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ExitInfo } from '../driver.js';
import { isProcessAlive } from './proc-fs.js';
import type { ShimClient } from './shim-client.js';
import { runFiles, type ExitRecord } from './shim-protocol.js';

export interface WatchTarget {
  runDir: string;
  pid: number;
  /** From /proc/<pid>/stat at spawn; undefined only for handles that lack it. */
  procStartTime: number | undefined;
}

export function readExitRecord(runDir: string): ExitRecord | null {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(join(runDir, runFiles.exitRecord), 'utf8'));
  } catch {
    return null;
  }
  const record = value as Partial<ExitRecord> | null;
  if (record === null || typeof record !== 'object' || typeof record.at !== 'number') return null;
  return {
    code: typeof record.code === 'number' ? record.code : null,
    signal: typeof record.signal === 'string' ? record.signal : null,
    at: record.at,
  };
}

export function writeExitRecord(runDir: string, exit: ExitRecord): void {
  const path = join(runDir, runFiles.exitRecord);
  writeFileSync(`${path}.tmp`, `${JSON.stringify(exit)}\n`);
  renameSync(`${path}.tmp`, path);
}

export class InstanceWatch {
  exit: ExitInfo | undefined;
  /** Settles once with the exit; never rejects. */
  readonly exited: Promise<ExitInfo>;
  private settle!: (exit: ExitInfo) => void;
  private pollTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    readonly target: WatchTarget,
    private client: ShimClient | undefined,
    private readonly pollIntervalMs: number,
  ) {
    this.exited = new Promise((resolve) => (this.settle = resolve));
    if (client === undefined) this.fallBack();
    else void client.exit.then((exit) => (exit === null ? this.fallBack() : this.record(exit)));
  }

  get connected(): boolean {
    return this.client !== undefined;
  }

  /** Stops watching without settling (driver closed, instance destroyed). */
  close(): void {
    this.closed = true;
    this.client?.close();
    this.client = undefined;
    clearTimeout(this.pollTimer);
  }

  private record(exit: ExitInfo): void {
    if (this.exit !== undefined) return;
    this.exit = exit;
    clearTimeout(this.pollTimer);
    // Closing our end lets the shim leave as soon as every client has heard of the exit.
    this.client?.close();
    this.client = undefined;
    this.settle(exit);
  }

  /** Without a shim connection, the run directory and /proc tell what happened. */
  private fallBack(): void {
    this.client = undefined;
    if (this.exit !== undefined || this.closed) return;
    const { runDir, pid, procStartTime } = this.target;
    const recorded = readExitRecord(runDir);
    if (recorded !== null) return this.record(recorded);
    if (!isProcessAlive(pid, procStartTime)) {
      // Gone without a record: its shim died first (pdeathsig then killed it). The cause is
      // unknown, so code and signal stay null rather than guessed.
      const exit: ExitInfo = { code: null, signal: null, at: Date.now() };
      writeExitRecord(runDir, exit);
      return this.record(exit);
    }
    // Alive without a reachable shim: pdeathsig makes this brief, so polling is cheap.
    this.pollTimer = setTimeout(() => this.fallBack(), this.pollIntervalMs);
    this.pollTimer.unref();
  }
}
