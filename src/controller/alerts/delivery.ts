// Delivery: one bounded queue per channel, worked one notification at a time (a resolution never
// overtakes its firing), each attempt bounded by the channel's timeout, failed attempts retried
// with exponential backoff up to attemptsMax. Queues never block each other or the controller:
// enqueue returns at once and outcomes come back through a callback (docs/alerts.md).
import type { AlertDelivery } from '../../core/alerting-spec.js';
import type { Clock, TimerHandle } from '../../core/ports.js';
import { DeliveryError, type AlertChannel } from './channels/channel.js';
import type { DeliveryOutcome } from './engine.js';
import type { Notification } from './model.js';

export interface ChannelQueueOptions {
  clock: Clock;
  delivery: AlertDelivery;
  /** Bound on one attempt, from the channel's spec. */
  timeoutMs: number;
  onOutcome: (outcome: DeliveryOutcome) => void;
}

/** The wait before attempt `attempt + 1`: initial, doubled each time, capped. */
export function backoffMs(delivery: AlertDelivery, attempt: number): number {
  return Math.min(delivery.backoffMaxMs, delivery.backoffInitialMs * 2 ** Math.max(0, attempt - 1));
}

export class ChannelQueue {
  private readonly items: { notification: Notification; attempts: number }[] = [];
  private running = false;
  private closed = false;
  private timer: TimerHandle | undefined;
  private wake: (() => void) | undefined;
  private readonly inFlight = new Set<AbortController>();

  constructor(
    readonly channel: AlertChannel,
    private readonly options: ChannelQueueOptions,
  ) {}

  get length(): number {
    return this.items.length + (this.running ? 1 : 0);
  }

  /** False when the queue is full or closed; the caller records that as a failed delivery. */
  enqueue(notification: Notification, attempts = 0): boolean {
    if (this.closed || this.length >= this.options.delivery.queueLengthMax) return false;
    this.items.push({ notification, attempts });
    if (!this.running) void this.drain();
    return true;
  }

  /** Stops at once: the attempt in flight is aborted and nothing more is reported. */
  close(): void {
    this.closed = true;
    this.items.length = 0;
    for (const controller of this.inFlight) controller.abort();
    if (this.timer !== undefined) this.options.clock.clearTimeout(this.timer);
    this.wake?.();
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      for (
        let item = this.items.shift();
        item !== undefined && !this.closed;
        item = this.items.shift()
      )
        await this.deliver(item.notification, item.attempts);
    } finally {
      this.running = false;
    }
  }

  private async deliver(notification: Notification, attemptsBefore: number): Promise<void> {
    const { delivery, onOutcome } = this.options;
    for (let attempt = attemptsBefore + 1; attempt <= delivery.attemptsMax; attempt++) {
      const error = await this.attempt(notification);
      if (this.closed) return;
      const base = { notification: notification.id, channel: this.channel.name, attempts: attempt };
      if (error === undefined) return onOutcome({ ...base, ok: true, final: true });
      const final = !error.retryable || attempt >= delivery.attemptsMax;
      onOutcome({ ...base, ok: false, final, error: error.message });
      if (final) return;
      await this.sleep(backoffMs(delivery, attempt));
      if (this.closed) return;
    }
    // A notification handed over with every attempt already spent (by a former leader).
    if (attemptsBefore >= delivery.attemptsMax)
      onOutcome({
        notification: notification.id,
        channel: this.channel.name,
        attempts: attemptsBefore,
        ok: false,
        final: true,
        error: 'no attempts left',
      });
  }

  private async attempt(notification: Notification): Promise<DeliveryError | undefined> {
    const abort = new AbortController();
    this.inFlight.add(abort);
    // The timeout is the channel's I/O bound, in real time, like the sockets it guards.
    const timer = setTimeout(() => abort.abort(), this.options.timeoutMs);
    try {
      await this.channel.send(notification, {
        now: this.options.clock.now(),
        signal: abort.signal,
      });
      return undefined;
    } catch (err) {
      return err instanceof DeliveryError
        ? err
        : new DeliveryError(String(err), { retryable: true });
    } finally {
      clearTimeout(timer);
      this.inFlight.delete(abort);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
      this.timer = this.options.clock.setTimeout(() => {
        this.timer = undefined;
        resolve();
      }, ms);
    });
  }
}
