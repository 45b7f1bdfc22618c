// The console's actions, each a POST the controller journals with its actor ("console"), and a
// small hook that runs one and keeps its outcome for the view to show.
import { useState } from 'preact/hooks';
import { ApiError, post } from './api.js';
import type { Problem } from './types.js';

export const actions = {
  switchover: (workload: string, to?: string) =>
    post(
      `/v1/workloads/${encodeURIComponent(workload)}/switchover`,
      to === undefined ? {} : { to },
    ),
  restart: (workload: string) => post(`/v1/workloads/${encodeURIComponent(workload)}/restart`, {}),
  maintenance: (node: string, on: boolean) =>
    post(`/v1/nodes/${encodeURIComponent(node)}/maintenance`, { on }),
  apply: (text: string) => post<{ [key: string]: unknown }>('/v1/apply', text),
};

export interface Outcome {
  ok: boolean;
  message: string;
  code?: string;
  problems: Problem[];
}

export function useAction(): {
  busy: boolean;
  outcome: Outcome | undefined;
  run: (what: string, action: () => Promise<unknown>) => Promise<void>;
  clear: () => void;
} {
  const [busy, setBusy] = useState(false);
  const [outcome, setOutcome] = useState<Outcome | undefined>();
  const run = async (what: string, action: () => Promise<unknown>) => {
    setBusy(true);
    setOutcome(undefined);
    try {
      await action();
      setOutcome({ ok: true, message: `${what}: done`, problems: [] });
    } catch (error) {
      const e = error instanceof ApiError ? error : undefined;
      setOutcome({
        ok: false,
        message: `${what} failed: ${error instanceof Error ? error.message : String(error)}`,
        ...(e === undefined ? {} : { code: e.code }),
        problems: e?.problems ?? [],
      });
    } finally {
      setBusy(false);
    }
  };
  return { busy, outcome, run, clear: () => setOutcome(undefined) };
}
