// The alert shell: runs the pure engine while this controller leads. It follows the journal and the
// `alerting/` keys through one store watch, applies each event and the time to the engine, persists
// the engine's state (with its cursor and outbox) before anything is sent, then hands notifications
// to per-channel queues and records their outcomes. A new leader loads the same state: it re-queues
// what was not delivered and resumes the journal after the cursor, so it neither re-sends nor
// forgets (docs/alerts.md).
import type { AlertChannelSpec } from '../../core/alerting-spec.js';
import type { NewEvent } from '../../core/model.js';
import type { Clock, Logger, TimerHandle } from '../../core/ports.js';
import {
  eventsPageMax,
  type StateStore,
  type WatchBatch,
  type WatchHandle,
} from '../../store/port.js';
import { createChannel } from './channels/index.js';
import type { AlertChannel } from './channels/channel.js';
import { DeliveryError } from './channels/channel.js';
import { ChannelQueue } from './delivery.js';
import {
  applyDelivery,
  applyEvent,
  applyTick,
  nextWakeAt,
  type DeliveryOutcome,
} from './engine.js';
import {
  alertConfigOf,
  emptyAlertState,
  type AlertContext,
  type AlertState,
  type AlertStep,
  type Silence,
} from './model.js';
import {
  alertingConfigKey,
  alertingPrefix,
  alertStateKey,
  readAlertingConfig,
  readAlertState,
  readSilences,
  silencesPrefix,
} from './store-keys.js';

/** How often leadership is checked and due groups are flushed. */
export const alertTickMsDefault = 200;
/** A state that changed only its cursor is written at most this often. */
const cursorWriteIntervalMs = 1000;

export interface AlertShellOptions {
  store: StateStore;
  clock: Clock;
  logger: Logger;
  isLeader: () => boolean;
  tickMs?: number;
  /** Tests replace channels; the default makes the real ones. */
  createChannel?: (spec: AlertChannelSpec) => AlertChannel;
}

export class AlertShell {
  private readonly options: Required<Omit<AlertShellOptions, 'createChannel'>> &
    Pick<AlertShellOptions, 'createChannel'>;
  private chain: Promise<void> = Promise.resolve();
  private timer: TimerHandle | undefined;
  private stopped = true;
  private active = false;
  /** Raised at each (de)activation: work queued for an older one is dropped. */
  private generation = 0;
  private watch: WatchHandle | undefined;
  private buffered: WatchBatch[] | undefined;
  private state: AlertState | undefined;
  private stateRevision = 0;
  private cursorWrittenAt = 0;
  private config = alertConfigOf(undefined);
  private silences: Silence[] = [];
  private readonly queues = new Map<string, { spec: string; queue: ChannelQueue }>();

  constructor(options: AlertShellOptions) {
    this.options = { tickMs: alertTickMsDefault, ...options };
  }

  start(): void {
    this.stopped = false;
    this.scheduleTick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) this.options.clock.clearTimeout(this.timer);
    this.deactivate();
    await this.chain;
  }

  /** Resolves once every step queued so far has run (tests wait on it, never on time). */
  settled(): Promise<void> {
    return this.chain;
  }

  get isActive(): boolean {
    return this.active;
  }

  private enqueue(work: () => Promise<void>): void {
    const generation = this.generation;
    this.chain = this.chain
      .then(() => (generation === this.generation ? work() : undefined))
      .catch((err: unknown) => {
        this.options.logger.log('error', 'alerting step failed; starting over from the store', {
          error: String(err),
        });
        this.deactivate();
      });
  }

  private scheduleTick(): void {
    if (this.stopped) return;
    this.timer = this.options.clock.setTimeout(() => {
      this.timer = undefined;
      const leader = this.options.isLeader();
      if (leader && !this.active) this.activate();
      else if (!leader && this.active) this.deactivate();
      else if (this.active && this.buffered === undefined && this.isDue())
        this.enqueue(() => this.tick());
      this.scheduleTick();
    }, this.options.tickMs);
  }

  private isDue(): boolean {
    if (this.state === undefined) return false;
    const wake = nextWakeAt(this.state, this.context());
    return wake !== undefined && wake <= this.options.clock.now();
  }

  private context(): AlertContext {
    return {
      rules: this.config.rules,
      channels: this.config.channels.map((c) => c.name),
      routing: this.config.routing,
      delivery: this.config.delivery,
      silences: this.silences,
      now: this.options.clock.now(),
    };
  }

  private activate(): void {
    this.active = true;
    this.generation++;
    this.buffered = [];
    this.watch = this.options.store.watch(
      alertingPrefix,
      {
        onError: (error) => {
          this.options.logger.log('warn', 'alerting lost the change feed; reloading', {
            error: error.message,
          });
          this.deactivate();
        },
      },
      (batch) => {
        if (this.buffered !== undefined) this.buffered.push(batch);
        else this.enqueue(() => this.onBatch(batch));
      },
    );
    this.enqueue(() => this.load());
  }

  private deactivate(): void {
    this.active = false;
    this.generation++;
    this.watch?.cancel();
    this.watch = undefined;
    this.buffered = undefined;
    this.state = undefined;
    for (const { queue } of this.queues.values()) queue.close();
    this.queues.clear();
  }

  /** Taking over: configuration, silences, the persisted state, its outbox, then the journal. */
  private async load(): Promise<void> {
    const { store, clock } = this.options;
    await this.reloadConfig();
    this.silences = await readSilences(store);
    const loaded = await readAlertState(store);
    this.state = loaded?.state ?? emptyAlertState(clock.now());
    this.stateRevision = loaded?.modRevision ?? 0;
    if (loaded === undefined) await this.persist(true);
    for (const entry of Object.values(this.state.outbox))
      this.send(entry.notification.id, entry.notification.channel, entry.attempts);
    for (;;) {
      const cursor = this.state.cursor;
      const page = await store.readEvents({
        afterSeq: cursor,
        limit: eventsPageMax,
        ...(cursor === 0 ? { sinceAt: this.state.startAt } : {}),
      });
      for (const event of page) await this.apply(applyEvent(this.state, event, this.context()));
      if (page.length < eventsPageMax) break;
    }
    const backlog = this.buffered ?? [];
    this.buffered = undefined;
    for (const batch of backlog) await this.onBatch(batch);
    this.options.logger.log('info', 'alerting active', { cursor: this.state.cursor });
  }

  private async onBatch(batch: WatchBatch): Promise<void> {
    if (this.state === undefined) return;
    const keys = batch.changes.map((c) => (c.type === 'put' ? c.entry.key : c.key));
    if (keys.includes(alertingConfigKey)) await this.reloadConfig();
    if (keys.some((k) => k.startsWith(silencesPrefix)))
      this.silences = await readSilences(this.options.store);
    for (const event of batch.events)
      await this.apply(applyEvent(this.state, event, this.context()));
    if (this.isDue()) await this.tick();
  }

  private async tick(): Promise<void> {
    if (this.state === undefined) return;
    await this.apply(applyTick(this.state, this.context()));
  }

  private outcome(outcome: DeliveryOutcome): void {
    this.enqueue(async () => {
      if (this.state === undefined) return;
      await this.apply(applyDelivery(this.state, outcome, this.options.clock.now()));
    });
  }

  /** Persist first, then send and journal (CONVENTIONS.md item 2). */
  private async apply(step: AlertStep): Promise<void> {
    const cursorOnly = step.decisions.length === 0;
    if (step.state === this.state) return;
    this.state = step.state;
    await this.persist(!cursorOnly);
    const events: NewEvent[] = [];
    for (const decision of step.decisions) {
      if (decision.type === 'notify')
        this.send(decision.notification.id, decision.notification.channel, decision.attempts);
      else if (decision.type === 'journal') events.push(decision.event);
    }
    if (events.length > 0) await this.options.store.appendEvents(events);
  }

  /** A write conditional on the last one: another writer (a new leader) means this one stops. */
  private async persist(now: boolean): Promise<void> {
    const time = this.options.clock.now();
    if (!now && time - this.cursorWrittenAt < cursorWriteIntervalMs) return;
    const result = await this.options.store.txn({
      compares: [{ key: alertStateKey, modRevision: this.stateRevision }],
      puts: [{ key: alertStateKey, value: this.state }],
    });
    if (!result.ok) throw new Error('the alert state was written by another controller');
    this.stateRevision = result.revision;
    this.cursorWrittenAt = time;
  }

  private send(id: string, channel: string, attempts: number): void {
    const entry = this.state?.outbox[id];
    const queue = this.queues.get(channel)?.queue;
    if (entry === undefined) return;
    if (queue === undefined || !queue.enqueue(entry.notification, attempts)) {
      const error =
        queue === undefined ? 'no such channel (removed from the configuration)' : 'queue full';
      this.outcome({ notification: id, channel, attempts, ok: false, final: true, error });
    }
  }

  /** Channels whose spec changed get a new queue; what their old queue held is handed over. */
  private async reloadConfig(): Promise<void> {
    const stored = await readAlertingConfig(this.options.store);
    this.config = alertConfigOf(stored?.spec);
    const wanted = new Map(this.config.channels.map((c) => [c.name, c]));
    for (const [name, { spec, queue }] of this.queues) {
      if (JSON.stringify(wanted.get(name)) === spec) continue;
      queue.close();
      this.queues.delete(name);
    }
    for (const spec of this.config.channels) {
      if (this.queues.has(spec.name)) continue;
      const queue = new ChannelQueue(this.channelOf(spec), {
        clock: this.options.clock,
        delivery: this.config.delivery,
        timeoutMs: spec.timeoutMs,
        onOutcome: (outcome) => this.outcome(outcome),
      });
      this.queues.set(spec.name, { spec: JSON.stringify(spec), queue });
      for (const entry of Object.values(this.state?.outbox ?? {}))
        if (entry.notification.channel === spec.name)
          queue.enqueue(entry.notification, entry.attempts);
    }
    for (const entry of Object.values(this.state?.outbox ?? {}))
      if (!wanted.has(entry.notification.channel))
        this.send(entry.notification.id, entry.notification.channel, entry.attempts);
  }

  /** A channel that cannot even be made (an unreadable CA file) fails each delivery, visibly. */
  private channelOf(spec: AlertChannelSpec): AlertChannel {
    try {
      return (this.options.createChannel ?? createChannel)(spec);
    } catch (err) {
      const message = `channel cannot start: ${(err as Error).message}`;
      return {
        name: spec.name,
        type: spec.type,
        send: () => Promise.reject(new DeliveryError(message, { retryable: true })),
      };
    }
  }
}
