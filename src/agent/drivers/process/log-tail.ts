// The last lines of a workload's output (output.log, then the newest rotated file before it), read
// from the end of the files with a bound on bytes, so an operator's "what did it just say" never
// reads a whole log.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { LogTail, LogTailOptions } from '../driver.js';

/** Reads at most bytesMax from the end of a file; undefined when it does not exist. */
function readEnd(path: string, bytesMax: number): { text: string; whole: boolean } | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  try {
    const size = fstatSync(fd).size;
    const length = Math.min(size, bytesMax);
    const buffer = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const n = readSync(fd, buffer, done, length - done, size - length + done);
      if (n === 0) break;
      done += n;
    }
    return { text: buffer.subarray(0, done).toString('utf8'), whole: length === size };
  } finally {
    closeSync(fd);
  }
}

/**
 * `files` newest first (output.log, output.log.1): lines are taken from the newest until
 * linesMax or bytesMax is reached. A line cut by the byte bound at the start is dropped.
 */
export function logTail(files: readonly string[], options: LogTailOptions): LogTail {
  let lines: string[] = [];
  let bytesLeft = options.bytesMax;
  let truncated = false;
  for (const file of files) {
    if (lines.length >= options.linesMax || bytesLeft <= 0) {
      truncated ||= readEnd(file, 1) !== undefined;
      break;
    }
    const end = readEnd(file, bytesLeft);
    if (end === undefined) break;
    bytesLeft -= Buffer.byteLength(end.text);
    const fileLines = end.text.split('\n');
    if (fileLines.at(-1) === '') fileLines.pop();
    if (!end.whole) {
      fileLines.shift();
      truncated = true;
    }
    lines = [...fileLines, ...lines];
    if (!end.whole) break;
  }
  if (lines.length > options.linesMax) {
    lines = lines.slice(-options.linesMax);
    truncated = true;
  }
  return {
    lines: lines.map((line) =>
      line.length > options.lineCharsMax ? `${line.slice(0, options.lineCharsMax - 1)}…` : line,
    ),
    truncated,
  };
}
