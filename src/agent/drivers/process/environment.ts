// The environment a workload (or an exec probe) starts with: only a few variables of the agent's
// own environment pass through, so the agent's secrets and quirks do not leak into workloads.

/** Variables taken from the agent's environment; everything else comes from the spec or agent. */
export const inheritedVariableNames = ['PATH', 'HOME', 'LANG', 'TZ'] as const;

/** Later layers win: inherited, then the spec's env, then what the agent adds (CONTINUUM_*, PORT). */
export function workloadEnvironment(
  ...layers: Array<Record<string, string> | undefined>
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of inheritedVariableNames) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  for (const layer of layers) Object.assign(env, layer ?? {});
  return env;
}
