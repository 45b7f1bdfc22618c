// The alerting section of an applied spec, written with the rest of the spec in one transaction.
// A spec without the section leaves the current configuration alone: apply never deletes what a
// spec leaves out (nodes and workloads behave the same), so a spec of workloads alone cannot
// silence every alert by accident. `alerting: { channels: [], rules: [] }` turns alerting off.
import type { AlertingSpec } from '../../core/alerting-spec.js';
import type { StateStore, TxnRequest } from '../../store/port.js';
import { alertingConfigKey, type StoredAlertingConfig } from './store-keys.js';

export interface AlertingBefore {
  spec: AlertingSpec | undefined;
  modRevision: number;
}

export async function readAlertingBefore(store: StateStore): Promise<AlertingBefore> {
  const entry = await store.get<StoredAlertingConfig>(alertingConfigKey);
  return { spec: entry?.value.spec, modRevision: entry?.modRevision ?? 0 };
}

/** The spec's transaction, plus the alerting configuration when the spec has the section. */
export function withAlerting(
  txn: TxnRequest,
  section: AlertingSpec | undefined,
  context: {
    before: AlertingBefore;
    now: number;
    actor: string;
    note: (kind: 'created' | 'updated' | 'unchanged', what: string) => void;
  },
): TxnRequest {
  if (section === undefined) return txn;
  const { before } = context;
  if (before.spec !== undefined && JSON.stringify(before.spec) === JSON.stringify(section)) {
    context.note('unchanged', 'alerting/config');
    return txn;
  }
  context.note(before.spec === undefined ? 'created' : 'updated', 'alerting/config');
  const value: StoredAlertingConfig = {
    spec: section,
    appliedAt: context.now,
    appliedBy: context.actor,
  };
  return {
    ...txn,
    compares: [
      ...(txn.compares ?? []),
      { key: alertingConfigKey, modRevision: before.modRevision },
    ],
    puts: [...(txn.puts ?? []), { key: alertingConfigKey, value }],
  };
}
