// The volume commands' parsing and progress output: sizes with units, and a bar that a log (not a
// terminal) shows as a line per tenth of the way.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseSizeMiB } from './commands-volume.js';
import { progressBar } from './progress.js';

describe('volume CLI', () => {
  it('reads sizes with units, and refuses anything else with the format', () => {
    assert.equal(parseSizeMiB('512M'), 512);
    assert.equal(parseSizeMiB('10G'), 10 * 1024);
    assert.equal(parseSizeMiB('1TiB'), 1024 * 1024);
    assert.equal(parseSizeMiB('64'), 64);
    for (const bad of ['', '1.5G', '-1G', '10X', 'ten'])
      assert.throws(() => parseSizeMiB(bad), /size: expected a whole number .* got "/);
  });

  it('draws progress as a line per tenth when not on a terminal', () => {
    const lines: string[] = [];
    const stream = { isTTY: false, write: (text: string) => lines.push(text) };
    let now = 0;
    const bar = progressBar('import x', stream as unknown as NodeJS.WriteStream, () => now);
    const total = 100 * 1_048_576;
    for (let done = 0; done <= total; done += 1_048_576) {
      now += 10;
      bar.update({ phase: 'copying', doneBytes: done, totalBytes: total });
    }
    bar.done();
    assert.equal(lines.length, 11, 'one line at 0%, then one per tenth');
    assert.match(lines.at(-1)!, /^import x copying \[#{30}\] 100% 100 MiB of 100 MiB \d/);
    assert.match(lines[5]!, / 50% 50 MiB of 100 MiB /);
  });
});
