// The tail of a workload's output from real files: the newest lines first from output.log, then
// from the rotated file before it, bounded by lines and by bytes, with cut lines shortened.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { logTail } from './log-tail.js';

describe('log tail', () => {
  const dir = mkdtempSync(join(tmpdir(), 'continuum-log-tail-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const current = join(dir, 'output.log');
  const rotated = `${current}.1`;
  const options = { linesMax: 100, bytesMax: 1 << 20, lineCharsMax: 4096 };

  it('reads the last lines, reaching into the rotated file when the current one is short', () => {
    writeFileSync(rotated, 'one\ntwo\nthree\n');
    writeFileSync(current, 'four\nfive\n');
    assert.deepEqual(logTail([current, rotated], options), {
      lines: ['one', 'two', 'three', 'four', 'five'],
      truncated: false,
    });
    assert.deepEqual(logTail([current, rotated], { ...options, linesMax: 3 }), {
      lines: ['three', 'four', 'five'],
      truncated: true,
    });
  });

  it('reads no more than bytesMax from the end, dropping the line that bound cuts', () => {
    writeFileSync(current, `${'x'.repeat(100)}\nlast line\n`);
    const tail = logTail([current, rotated], { ...options, bytesMax: 20 });
    assert.deepEqual(tail, { lines: ['last line'], truncated: true });
  });

  it('shortens a long line, and answers nothing for an instance that wrote nothing', () => {
    writeFileSync(current, `${'y'.repeat(50)}\n`);
    const [line] = logTail([current], { ...options, lineCharsMax: 10 }).lines;
    assert.equal(line, `${'y'.repeat(9)}…`);
    assert.deepEqual(logTail([join(dir, 'none.log')], options), { lines: [], truncated: false });
  });
});
