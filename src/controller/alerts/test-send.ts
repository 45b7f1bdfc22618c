// A test notification, sent at once to each channel named (or all), one attempt each within the
// channel's timeout, so the operator sees the real outcome of the real path in seconds. It goes
// around the queues and the alert state: a test is not an alert and changes none.
import { randomUUID } from 'node:crypto';
import type { AlertChannelSpec } from '../../core/alerting-spec.js';
import type { Clock } from '../../core/ports.js';
import type { AlertChannel } from './channels/channel.js';
import { createChannel } from './channels/index.js';
import type { Notification } from './model.js';

export interface TestResult {
  channel: string;
  type: AlertChannelSpec['type'];
  ok: boolean;
  durationMs: number;
  error?: string;
}

export function testNotification(
  channel: string,
  now: number,
  actor: string,
  id: string,
): Notification {
  return {
    id: `test-${id}`,
    channel,
    group: { key: 'test', labels: {} },
    status: 'firing',
    createdAt: now,
    test: true,
    alerts: [
      {
        id: `test/${id}`,
        rule: 'test',
        severity: 'info',
        summary: 'a test notification: nothing is wrong',
        subject: { kind: 'alert', name: channel },
        status: 'firing',
        change: 'fired',
        firedAt: now,
        events: 1,
        lastEventKind: 'alert.test',
        message: `test notification requested by ${actor}`,
      },
    ],
    omitted: 0,
  };
}

export async function sendTestNotification(
  channels: readonly AlertChannelSpec[],
  options: {
    clock: Clock;
    actor: string;
    createChannel?: (spec: AlertChannelSpec) => AlertChannel;
  },
): Promise<TestResult[]> {
  const id = randomUUID();
  return Promise.all(
    channels.map(async (spec): Promise<TestResult> => {
      const started = performance.now();
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(), spec.timeoutMs);
      try {
        const channel = (options.createChannel ?? createChannel)(spec);
        const now = options.clock.now();
        await channel.send(testNotification(spec.name, now, options.actor, id), {
          now,
          signal: abort.signal,
        });
        return {
          channel: spec.name,
          type: spec.type,
          ok: true,
          durationMs: Math.round(performance.now() - started),
        };
      } catch (err) {
        return {
          channel: spec.name,
          type: spec.type,
          ok: false,
          durationMs: Math.round(performance.now() - started),
          error: (err as Error).message,
        };
      } finally {
        clearTimeout(timer);
      }
    }),
  );
}
