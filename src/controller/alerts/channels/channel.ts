// What every alert channel is: something that sends one notification or throws a DeliveryError
// that says whether another attempt may help. Also the plain-text rendering that e-mail and
// syslog share, so both read the same.
import type { Notification } from '../model.js';

export interface SendOptions {
  /** Controller time of this attempt (the webhook signs it). */
  now: number;
  /** Aborted when the delivery's timeout is over. */
  signal: AbortSignal;
}

export interface AlertChannel {
  readonly name: string;
  readonly type: 'webhook' | 'smtp' | 'syslog' | 'script';
  send(notification: Notification, options: SendOptions): Promise<void>;
}

/** A failed attempt; `retryable` false means no later attempt can succeed (a 4xx, a bad address). */
export class DeliveryError extends Error {
  readonly retryable: boolean;
  constructor(message: string, options: { retryable: boolean; cause?: unknown }) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DeliveryError';
    this.retryable = options.retryable;
  }
}

/** A rejection for an aborted attempt, in the words an operator reads in the alert's status. */
export function abortError(timeoutMs: number): DeliveryError {
  return new DeliveryError(`timed out after ${timeoutMs} ms`, { retryable: true });
}

/** "[FIRING] failover: workload/web (+1 more)" */
export function notificationTitle(notification: Notification): string {
  const first = notification.alerts[0];
  const more = notification.alerts.length - 1 + notification.omitted;
  const what =
    first === undefined
      ? notification.group.key
      : `${first.rule}: ${first.subject.kind}/${first.subject.name}`;
  const prefix = notification.test ? '[TEST] ' : '';
  return `${prefix}[${notification.status.toUpperCase()}] ${what}${more > 0 ? ` (+${more} more)` : ''}`;
}

export function notificationText(notification: Notification): string {
  const lines = [
    notificationTitle(notification),
    '',
    `group: ${notification.group.key}`,
    `notification: ${notification.id}`,
    '',
    ...notification.alerts.map(
      (a) =>
        `${a.change.toUpperCase()} ${a.severity} ${a.rule} ${a.subject.kind}/${a.subject.name}: ${a.message}` +
        ` (fired ${new Date(a.firedAt).toISOString()}` +
        (a.resolvedAt === undefined ? '' : `, resolved ${new Date(a.resolvedAt).toISOString()}`) +
        `, ${a.events} event(s))`,
    ),
    ...(notification.omitted > 0 ? [`... and ${notification.omitted} more`] : []),
  ];
  return lines.join('\n');
}
