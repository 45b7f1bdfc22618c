// A workload's recent output (what its process printed), read by the agent of its node through
// GET /v1/workloads/:name/logs, refreshed while the view is open and when the workload changes.
import { useEffect, useState } from 'preact/hooks';
import { ApiError, get } from '../api.js';
import type { WorkloadView } from '../types.js';

/** Lines shown; the CLI (`continuum logs`) reads up to 1000. */
export const recentOutputLines = 50;
/** How often the output is read again while the view is open. */
export const recentOutputPollMs = 5000;

type Output = { node: string; lines: string[]; truncated: boolean } | { error: string };

export function RecentOutput(props: { workload: WorkloadView }) {
  const { name, node, epoch } = props.workload;
  const [output, setOutput] = useState<Output | undefined>();
  useEffect(() => {
    if (node === null) {
      setOutput({ error: 'runs on no node yet' });
      return;
    }
    let current = true;
    const read = () =>
      get<{ node: string; lines: string[]; truncated: boolean }>(
        `/v1/workloads/${encodeURIComponent(name)}/logs?lines=${recentOutputLines}`,
      )
        .then((result) => current && setOutput(result))
        .catch(
          (error: unknown) =>
            current &&
            setOutput({ error: error instanceof ApiError ? error.message : String(error) }),
        );
    void read();
    const timer = setInterval(() => void read(), recentOutputPollMs);
    return () => {
      current = false;
      clearInterval(timer);
    };
  }, [name, node, epoch]);
  if (output === undefined) return <p class="empty">Reading…</p>;
  if ('error' in output)
    return (
      <p class="empty" role="status">
        Output not available: {output.error}
      </p>
    );
  return (
    <figure class="output">
      <figcaption>
        {output.lines.length === 1 ? 'The last line' : `The last ${output.lines.length} lines`} on{' '}
        {output.node}
        {output.truncated ? ' (older output on the node: continuum logs)' : ''}
      </figcaption>
      <pre data-testid="recent-output" aria-label={`Recent output of ${name}`} tabIndex={0}>
        {output.lines.length === 0 ? '(nothing written yet)' : output.lines.join('\n')}
      </pre>
    </figure>
  );
}
