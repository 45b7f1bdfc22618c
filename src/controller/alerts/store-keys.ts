// Where alerting lives in the store: its configuration and silences under `alerting/` (desired
// state, written by apply and the API), the engine's state under `alerts/` (written by the leader
// only). Readers here serve the API on any controller, leader or follower.
import type { AlertingSpec } from '../../core/alerting-spec.js';
import type { StateStore } from '../../store/port.js';
import type { AlertState, Silence } from './model.js';

export const alertingPrefix = 'alerting/';
export const alertingConfigKey = 'alerting/config';
export const silencesPrefix = 'alerting/silences/';
export const alertStateKey = 'alerts/state';

export const silenceKey = (id: string) => `${silencesPrefix}${id}`;

export interface StoredAlertingConfig {
  spec: AlertingSpec;
  appliedAt: number;
  appliedBy: string;
}

export async function readAlertingConfig(
  store: StateStore,
): Promise<StoredAlertingConfig | undefined> {
  return (await store.get<StoredAlertingConfig>(alertingConfigKey))?.value;
}

export async function readSilences(store: StateStore): Promise<Silence[]> {
  return (await store.range<Silence>(silencesPrefix)).entries.map((e) => e.value);
}

export async function readAlertState(
  store: StateStore,
): Promise<{ state: AlertState; modRevision: number } | undefined> {
  const entry = await store.get<AlertState>(alertStateKey);
  return entry === undefined ? undefined : { state: entry.value, modRevision: entry.modRevision };
}
