// Test helpers for Prometheus text: validation by promtool (the Prometheus project's own parser
// and linter, from Debian's prometheus package; scripts/test.sh installs it) and reading one
// sample's value out of an exposition.
import { spawnSync } from 'node:child_process';

/** Why promtool cannot run here, or undefined when it can. */
export function promtoolMissing(): string | undefined {
  const probe = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
  return probe.error === undefined
    ? undefined
    : 'promtool not installed (Debian package prometheus)';
}

/** promtool check metrics: parse errors and lint problems, or [] when the text passes. */
export function promtoolProblems(text: string): string[] {
  const result = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (result.error !== undefined) throw result.error;
  const output = `${result.stdout}${result.stderr}`.trim();
  if (result.status === 0) return [];
  return output === '' ? [`promtool exited with ${result.status}`] : output.split('\n');
}

/**
 * The value of the sample `name` whose labels include `labels`, or undefined when there is none.
 * Enough for the expositions prom-client writes (one sample a line, label values without `}`).
 */
export function sampleValue(
  text: string,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (match === null || match[1] !== name) continue;
    const found = new Map<string, string>();
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      found.set(pair[1]!, pair[2]!);
    if (Object.entries(labels).every(([k, v]) => found.get(k) === v)) return Number(match[3]);
  }
  return undefined;
}
