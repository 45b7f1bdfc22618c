// The pure alert engine (CONVENTIONS.md item 1): (state, event or time, context) -> new state and
// decisions. An event fires, deduplicates or resolves alerts by the rules; the time flushes groups
// into notifications (flush.ts); a delivery outcome updates the outbox. It never reads the clock
// and never sends: the shell (shell.ts) persists the state, then delivers what was decided.
import { isAlertEventKind, kindMatches, type AlertRule } from '../../core/alerting-spec.js';
import type { JournalEvent } from '../../core/model.js';
import { deliveryFailed, flushGroups, groupOf, settle } from './flush.js';
import {
  alertsActiveMax,
  type AlertContext,
  type AlertDecision,
  type AlertRecord,
  type AlertState,
  type AlertStep,
  type Silence,
} from './model.js';

export { nextWakeAt } from './flush.js';

export function alertKey(rule: string, subject: { kind: string; name: string }): string {
  return `${rule}/${subject.kind}/${subject.name}`;
}

/** The silence that mutes an alert now, if any. */
export function silenceFor(
  silences: readonly Silence[],
  alert: Pick<AlertRecord, 'rule' | 'subject'>,
  now: number,
): Silence | undefined {
  return silences.find(
    (s) =>
      now < s.until &&
      (s.matchers.rule === undefined || s.matchers.rule === alert.rule) &&
      (s.matchers.subject === undefined ||
        s.matchers.subject === alert.subject.name ||
        s.matchers.subject === `${alert.subject.kind}/${alert.subject.name}`),
  );
}

/** One journal event through every rule; events at or before the cursor were applied already. */
export function applyEvent(state: AlertState, event: JournalEvent, ctx: AlertContext): AlertStep {
  if (event.seq <= state.cursor || event.at < state.startAt) return { state, decisions: [] };
  const next = structuredClone(state);
  next.cursor = event.seq;
  const decisions: AlertDecision[] = [];
  // Never on the alerting's own events: a failing channel must not alert about itself in a loop.
  if (isAlertEventKind(event.kind)) return { state: next, decisions };
  for (const rule of ctx.rules) {
    // resolvedBy is checked first, so that a prefix in `on` ("failover") may cover the kind that
    // resolves ("failover.completed") without re-firing on it.
    if (rule.resolvedBy.some((k) => kindMatches(k, event.kind)))
      resolve(next, rule, event, ctx, decisions);
    else if (rule.on.some((k) => kindMatches(k, event.kind)))
      fire(next, rule, event, ctx, decisions);
  }
  settle(next);
  return { state: next, decisions };
}

function fire(
  state: AlertState,
  rule: AlertRule,
  event: JournalEvent,
  ctx: AlertContext,
  decisions: AlertDecision[],
): void {
  const key = alertKey(rule.name, event.subject);
  const existing = state.alerts[key];
  // A second firing event while the alert fires is the same incident. One that comes back before
  // its resolution was announced is too: receivers never heard that it ended.
  if (existing !== undefined && (existing.status === 'firing' || !existing.announcedResolved)) {
    existing.events++;
    existing.lastEventAt = event.at;
    existing.lastEventKind = event.kind;
    existing.message = event.message;
    if (existing.status === 'resolved') {
      existing.status = 'firing';
      delete existing.resolvedAt;
      delete existing.resolvedKind;
    }
    state.counters.deduplicated++;
    decisions.push({ type: 'deduplicated', alert: existing });
    return;
  }
  if (existing !== undefined) archive(state, existing);
  if (Object.keys(state.alerts).length >= alertsActiveMax) {
    state.counters.dropped++;
    decisions.push({ type: 'dropped', key });
    return;
  }
  const group = groupOf(ctx.routing.groupBy, rule.name, event.subject);
  const alert: AlertRecord = {
    id: `${key}@${event.seq}`,
    key,
    rule: rule.name,
    severity: rule.severity,
    ...(rule.summary === undefined ? {} : { summary: rule.summary }),
    subject: event.subject,
    group: group.key,
    status: 'firing',
    firedAt: event.at,
    firedSeq: event.seq,
    events: 1,
    lastEventAt: event.at,
    lastEventKind: event.kind,
    message: event.message,
    notice: rule.resolvedBy.length === 0,
    channels: rule.channels ?? ctx.channels,
    announcedFiring: false,
    announcedResolved: false,
    deliveries: {},
  };
  state.alerts[key] = alert;
  state.groups[group.key] ??= group;
  state.counters.fired++;
  decisions.push({ type: 'fired', alert });
  // Journaled only where it is sent somewhere: without a channel the alert is state to read
  // (continuum alerts list), and a journal line per node blip would only double the events.
  if (alert.channels.length > 0)
    decisions.push(
      journal(
        alert,
        'alert.fired',
        `${rule.name} fired for ${event.subject.name}: ${event.message}`,
        event.at,
      ),
    );
  const silence = silenceFor(ctx.silences, alert, ctx.now);
  if (silence !== undefined) {
    alert.silencedBy = silence.id;
    state.counters.silenced++;
    decisions.push({ type: 'silenced', alert, silence: silence.id });
  } else markPending(state, alert, ctx.now);
}

function resolve(
  state: AlertState,
  rule: AlertRule,
  event: JournalEvent,
  ctx: AlertContext,
  decisions: AlertDecision[],
): void {
  const alert = state.alerts[alertKey(rule.name, event.subject)];
  if (alert === undefined || alert.status !== 'firing') return;
  alert.status = 'resolved';
  alert.resolvedAt = event.at;
  alert.resolvedKind = event.kind;
  state.counters.resolved++;
  decisions.push({ type: 'resolved', alert });
  if (alert.channels.length > 0)
    decisions.push(
      journal(
        alert,
        'alert.resolved',
        `${rule.name} resolved for ${event.subject.name}: ${event.message}`,
        event.at,
      ),
    );
  // An alert whose firing was announced owes its resolution; one never announced owes nothing.
  if (alert.announcedFiring) markPending(state, alert, ctx.now);
  else if (alert.silencedBy !== undefined) alert.announcedResolved = true;
}

function markPending(state: AlertState, alert: AlertRecord, now: number): void {
  const group = state.groups[alert.group];
  if (group !== undefined && group.pendingSince === undefined) group.pendingSince = now;
}

function archive(state: AlertState, alert: AlertRecord): void {
  delete state.alerts[alert.key];
  state.recent.unshift(alert);
}

function journal(alert: AlertRecord, kind: string, message: string, at: number): AlertDecision {
  return {
    type: 'journal',
    event: {
      at,
      kind,
      subject: { kind: 'alert', name: alert.key },
      message,
      data: { alert: alert.id, rule: alert.rule, severity: alert.severity, subject: alert.subject },
    },
  };
}

/** The time: silences that ended or began, and groups whose wait or interval is over. */
export function applyTick(state: AlertState, ctx: AlertContext): AlertStep {
  const next = structuredClone(state);
  const decisions: AlertDecision[] = [];
  for (const alert of Object.values(next.alerts)) {
    if (alert.announcedFiring || alert.status !== 'firing') continue;
    const silence = silenceFor(ctx.silences, alert, ctx.now);
    if (silence === undefined && alert.silencedBy !== undefined) {
      // The silence ended while the alert still fires: it is announced now, as a new one.
      delete alert.silencedBy;
      markPending(next, alert, ctx.now);
    } else if (silence !== undefined && alert.silencedBy === undefined) {
      alert.silencedBy = silence.id;
      next.counters.silenced++;
      decisions.push({ type: 'silenced', alert, silence: silence.id });
    }
  }
  decisions.push(...flushGroups(next, ctx));
  settle(next);
  return { state: next, decisions };
}

/** What a channel reported for one notification: delivered, failed for now, or failed for good. */
export interface DeliveryOutcome {
  notification: string;
  channel: string;
  attempts: number;
  ok: boolean;
  final: boolean;
  error?: string;
}

export function applyDelivery(state: AlertState, outcome: DeliveryOutcome, now: number): AlertStep {
  const entry = state.outbox[outcome.notification];
  if (entry === undefined) return { state, decisions: [] };
  const next = structuredClone(state);
  const decisions: AlertDecision[] = [];
  const pending = next.outbox[outcome.notification]!;
  pending.attempts = outcome.attempts;
  const status = outcome.ok ? 'delivered' : outcome.final ? 'failed' : 'retrying';
  if (outcome.error !== undefined) pending.lastError = outcome.error;
  if (status === 'retrying') pending.status = 'retrying';
  else delete next.outbox[outcome.notification];
  if (status === 'delivered') next.counters.deliveries++;
  if (status === 'failed') {
    next.counters.deliveryFailures++;
    decisions.push(deliveryFailed(pending.notification.id, outcome, now));
  }
  const ids = new Set(pending.notification.alerts.map((a) => a.id));
  for (const alert of [...Object.values(next.alerts), ...next.recent]) {
    if (!ids.has(alert.id)) continue;
    alert.deliveries[outcome.channel] = {
      status,
      notification: outcome.notification,
      attempts: outcome.attempts,
      ...(outcome.error === undefined ? {} : { lastError: outcome.error }),
      at: now,
    };
  }
  return { state: next, decisions };
}
