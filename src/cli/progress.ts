// A progress bar for long work (import, export, scrub) on stderr: redrawn in place on a terminal,
// a line every tenth of the way otherwise (logs and CI), so either way a person sees it move.
import type { Progress } from '../storage/engine/index.js';
import { formatBytes } from './format.js';

const barWidth = 30;

export interface ProgressBar {
  update(progress: Progress): void;
  /** Ends the bar's line; call once the work is done or failed. */
  done(): void;
}

export function progressBar(
  label: string,
  stream: NodeJS.WriteStream = process.stderr,
  now: () => number = Date.now,
): ProgressBar {
  const started = now();
  let phase = '';
  let phaseStarted = started;
  let lastTenth = -1;
  let drawn = false;
  const line = (p: Progress) => {
    const fraction = p.totalBytes === 0 ? 1 : Math.min(1, p.doneBytes / p.totalBytes);
    const filled = Math.round(fraction * barWidth);
    const seconds = (now() - phaseStarted) / 1000;
    const rate = seconds > 0 ? `${formatBytes(Math.round(p.doneBytes / seconds))}/s` : '';
    return (
      `${label} ${p.phase} [${'#'.repeat(filled)}${'.'.repeat(barWidth - filled)}] ` +
      `${(fraction * 100).toFixed(0).padStart(3)}% ${formatBytes(p.doneBytes)} of ` +
      `${formatBytes(p.totalBytes)} ${rate}`
    );
  };
  return {
    update(p) {
      if (p.phase !== phase) {
        if (drawn && stream.isTTY) stream.write('\n');
        phase = p.phase;
        phaseStarted = now();
        lastTenth = -1;
      }
      if (stream.isTTY) {
        stream.write(`\r${line(p)}\x1b[K`);
        drawn = true;
        return;
      }
      const tenth = p.totalBytes === 0 ? 10 : Math.floor((10 * p.doneBytes) / p.totalBytes);
      if (tenth === lastTenth) return;
      lastTenth = tenth;
      stream.write(`${line(p)}\n`);
    },
    done() {
      if (drawn && stream.isTTY) stream.write('\n');
      drawn = false;
    },
  };
}
