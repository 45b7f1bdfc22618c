// The alert engine's records: alerts (one per rule and subject while it fires), the groups that
// batch them into notifications, the outbox of notifications not yet delivered, and the limits
// that keep the persisted state small enough for one store value (docs/alerts.md).
import type {
  AlertChannelSpec,
  AlertDelivery,
  AlertRouting,
  AlertRule,
  AlertSeverity,
  AlertingSpec,
} from '../../core/alerting-spec.js';
import {
  alertDeliverySchema,
  alertRoutingSchema,
  effectiveRules,
} from '../../core/alerting-spec.js';
import type { EventSubjectKind, NewEvent } from '../../core/model.js';

/** Alerts that fire at once; beyond it new alerts are counted as dropped, not recorded. */
export const alertsActiveMax = 500;
/** Closed alerts kept for the API and console. */
export const alertsRecentMax = 100;
/** Alerts listed in one notification; the rest are counted in `omitted`. */
export const notificationAlertsMax = 50;

export interface DeliveryStatus {
  status: 'queued' | 'retrying' | 'delivered' | 'failed';
  notification: string;
  attempts: number;
  lastError?: string;
  at: number;
}

export interface AlertRecord {
  /** Unique per incident: the key and the sequence number of the event that fired it. */
  id: string;
  /** Rule and subject: at most one alert of a key fires at a time. */
  key: string;
  rule: string;
  severity: AlertSeverity;
  summary?: string;
  subject: { kind: EventSubjectKind; name: string };
  group: string;
  status: 'firing' | 'resolved';
  firedAt: number;
  firedSeq: number;
  /** Firing events seen: the first and every deduplicated one. */
  events: number;
  lastEventAt: number;
  lastEventKind: string;
  message: string;
  resolvedAt?: number;
  resolvedKind?: string;
  /** A rule without resolvedBy: announced once, then closed. */
  notice: boolean;
  channels: string[];
  silencedBy?: string;
  announcedFiring: boolean;
  announcedResolved: boolean;
  lastNotifiedAt?: number;
  deliveries: Record<string, DeliveryStatus>;
}

export interface GroupRecord {
  key: string;
  labels: Record<string, string>;
  /** When the oldest change not yet announced appeared. */
  pendingSince?: number;
  lastFlushAt?: number;
}

/** One alert as a notification carries it. */
export interface NotifiedAlert {
  id: string;
  rule: string;
  severity: AlertSeverity;
  summary?: string;
  subject: { kind: string; name: string };
  status: 'firing' | 'resolved';
  change: 'fired' | 'repeat' | 'resolved';
  firedAt: number;
  resolvedAt?: number;
  events: number;
  lastEventKind: string;
  message: string;
}

export interface Notification {
  /** Stable across retries and leaders: receivers deduplicate on it. */
  id: string;
  channel: string;
  group: { key: string; labels: Record<string, string> };
  status: 'firing' | 'resolved';
  createdAt: number;
  test: boolean;
  alerts: NotifiedAlert[];
  /** Alerts of this change left out beyond notificationAlertsMax. */
  omitted: number;
}

export interface OutboxEntry {
  notification: Notification;
  attempts: number;
  status: 'queued' | 'retrying';
  lastError?: string;
}

export interface AlertCounters {
  fired: number;
  deduplicated: number;
  resolved: number;
  silenced: number;
  dropped: number;
  notifications: number;
  deliveries: number;
  deliveryFailures: number;
}

export interface AlertState {
  /** Events before this time are history the alerting never saw (its first start). */
  startAt: number;
  /** Sequence number of the last journal event applied. */
  cursor: number;
  nextNotification: number;
  alerts: Record<string, AlertRecord>;
  recent: AlertRecord[];
  groups: Record<string, GroupRecord>;
  outbox: Record<string, OutboxEntry>;
  counters: AlertCounters;
}

export interface Silence {
  id: string;
  matchers: { rule?: string; subject?: string };
  until: number;
  createdAt: number;
  createdBy: string;
  comment: string;
}

/** What the engine works from: the configuration in force and the silences. */
export interface AlertContext {
  rules: AlertRule[];
  channels: string[];
  routing: AlertRouting;
  delivery: AlertDelivery;
  silences: Silence[];
  now: number;
}

export type AlertDecision =
  | { type: 'fired'; alert: AlertRecord }
  | { type: 'deduplicated'; alert: AlertRecord }
  | { type: 'resolved'; alert: AlertRecord }
  | { type: 'silenced'; alert: AlertRecord; silence: string }
  | { type: 'dropped'; key: string }
  | { type: 'notify'; notification: Notification; attempts: number }
  | { type: 'journal'; event: NewEvent };

export interface AlertStep {
  state: AlertState;
  decisions: AlertDecision[];
}

export function emptyAlertState(startAt: number): AlertState {
  return {
    startAt,
    cursor: 0,
    nextNotification: 1,
    alerts: {},
    recent: [],
    groups: {},
    outbox: {},
    counters: {
      fired: 0,
      deduplicated: 0,
      resolved: 0,
      silenced: 0,
      dropped: 0,
      notifications: 0,
      deliveries: 0,
      deliveryFailures: 0,
    },
  };
}

/** The configuration in force for a stored section (or none: built-in rules, no channels). */
export function alertConfigOf(section: AlertingSpec | undefined): {
  rules: AlertRule[];
  channels: AlertChannelSpec[];
  routing: AlertRouting;
  delivery: AlertDelivery;
} {
  return {
    rules: effectiveRules(section),
    channels: section?.channels ?? [],
    routing: section?.routing ?? alertRoutingSchema.parse(undefined),
    delivery: section?.delivery ?? alertDeliverySchema.parse(undefined),
  };
}
