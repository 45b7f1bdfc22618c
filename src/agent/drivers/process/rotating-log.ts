// Size-rotated log file for a workload's output: output.log, then output.log.1 (newest) up to
// output.log.N. Bytes are kept raw (no prefixes): what the program wrote is what the operator reads.
// Node builtins only, because the shim imports it and must start fast.
import { closeSync, fstatSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';

export interface RotatingLogOptions {
  /** The current file rotates before a write would take it past this size. */
  fileBytesMax: number;
  /** Rotated files kept besides the current one. */
  filesKept: number;
}

export class RotatingLog {
  private fd: number;
  private sizeBytes: number;

  constructor(
    private readonly path: string,
    private readonly options: RotatingLogOptions,
  ) {
    if (!Number.isInteger(options.fileBytesMax) || options.fileBytesMax < 1) {
      throw new RangeError(`fileBytesMax must be a positive integer, got ${options.fileBytesMax}`);
    }
    if (!Number.isInteger(options.filesKept) || options.filesKept < 0) {
      throw new RangeError(`filesKept must be a whole number, got ${options.filesKept}`);
    }
    // Appending: a restarted workload's output follows the previous incarnation's.
    this.fd = openSync(path, 'a', 0o640);
    this.sizeBytes = fstatSync(this.fd).size;
  }

  /** Writes synchronously so that output of stdout and stderr keeps the order it arrived in. */
  write(chunk: Buffer): void {
    if (this.sizeBytes > 0 && this.sizeBytes + chunk.length > this.options.fileBytesMax) {
      this.rotate();
    }
    let offset = 0;
    while (offset < chunk.length) offset += writeSync(this.fd, chunk, offset);
    this.sizeBytes += chunk.length;
  }

  close(): void {
    closeSync(this.fd);
  }

  private rotate(): void {
    closeSync(this.fd);
    const kept = this.options.filesKept;
    if (kept === 0) {
      rmSync(this.path, { force: true });
    } else {
      rmSync(`${this.path}.${kept}`, { force: true });
      for (let index = kept - 1; index >= 1; index--) {
        renameIfPresent(`${this.path}.${index}`, `${this.path}.${index + 1}`);
      }
      renameIfPresent(this.path, `${this.path}.1`);
    }
    this.fd = openSync(this.path, 'a', 0o640);
    this.sizeBytes = 0;
  }
}

function renameIfPresent(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
