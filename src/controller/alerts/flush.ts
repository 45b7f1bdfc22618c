// Grouping and notifications, the pure part that runs on the time: a group waits groupWaitMs after
// its first change, then announces at most every groupIntervalMs, and repeats what still fires
// every repeatIntervalMs. An alert is announced firing exactly once, even if it resolved while its
// group waited, and its resolution once after that (docs/alerts.md).
import type { AlertGroupLabel, AlertRouting } from '../../core/alerting-spec.js';
import {
  alertsRecentMax,
  notificationAlertsMax,
  type AlertContext,
  type AlertDecision,
  type AlertRecord,
  type AlertState,
  type GroupRecord,
  type Notification,
  type NotifiedAlert,
} from './model.js';

export function groupOf(
  groupBy: readonly AlertGroupLabel[],
  rule: string,
  subject: { kind: string; name: string },
): GroupRecord {
  const values: Record<AlertGroupLabel, string> = {
    rule,
    subject: `${subject.kind}/${subject.name}`,
    subjectKind: subject.kind,
  };
  const labels = Object.fromEntries(groupBy.map((label) => [label, values[label]]));
  const key = groupBy.length === 0 ? 'all' : groupBy.map((l) => `${l}=${values[l]}`).join(',');
  return { key, labels };
}

/** Whether an alert has something receivers have not heard yet. */
function owesAnnouncement(alert: AlertRecord): boolean {
  if (!alert.announcedFiring) return alert.silencedBy === undefined;
  return alert.status === 'resolved' && !alert.announcedResolved;
}

function members(state: AlertState, group: string): AlertRecord[] {
  return Object.values(state.alerts).filter((a) => a.group === group);
}

/** When a group next has something to send, or undefined when it has nothing. */
function groupDueAt(
  state: AlertState,
  group: GroupRecord,
  routing: AlertRouting,
): number | undefined {
  const alerts = members(state, group.key);
  let due: number | undefined;
  if (alerts.some(owesAnnouncement)) {
    const since = group.pendingSince ?? 0;
    due =
      group.lastFlushAt === undefined
        ? since + routing.groupWaitMs
        : Math.max(since, group.lastFlushAt + routing.groupIntervalMs);
  }
  for (const alert of alerts) {
    if (alert.status !== 'firing' || !alert.announcedFiring || alert.silencedBy !== undefined)
      continue;
    const repeatAt = (alert.lastNotifiedAt ?? alert.firedAt) + routing.repeatIntervalMs;
    due = due === undefined ? repeatAt : Math.min(due, repeatAt);
  }
  return due;
}

/** The earliest time the engine has something to do: a group's flush or a silence's end. */
export function nextWakeAt(
  state: AlertState,
  ctx: Pick<AlertContext, 'routing' | 'silences' | 'now'>,
): number | undefined {
  let wake: number | undefined;
  const consider = (at: number | undefined) => {
    if (at !== undefined) wake = wake === undefined ? at : Math.min(wake, at);
  };
  for (const group of Object.values(state.groups)) consider(groupDueAt(state, group, ctx.routing));
  for (const silence of ctx.silences) if (silence.until > ctx.now) consider(silence.until);
  return wake;
}

function notified(alert: AlertRecord, change: NotifiedAlert['change']): NotifiedAlert {
  return {
    id: alert.id,
    rule: alert.rule,
    severity: alert.severity,
    ...(alert.summary === undefined ? {} : { summary: alert.summary }),
    subject: alert.subject,
    status: change === 'resolved' ? 'resolved' : 'firing',
    change,
    firedAt: alert.firedAt,
    ...(change === 'resolved' && alert.resolvedAt !== undefined
      ? { resolvedAt: alert.resolvedAt }
      : {}),
    events: alert.events,
    lastEventKind: alert.lastEventKind,
    message: alert.message,
  };
}

/** Every group that is due sends one notification per channel its alerts go to. */
export function flushGroups(state: AlertState, ctx: AlertContext): AlertDecision[] {
  const decisions: AlertDecision[] = [];
  for (const group of Object.values(state.groups)) {
    const due = groupDueAt(state, group, ctx.routing);
    if (due === undefined || due > ctx.now) continue;
    const changes: { alert: AlertRecord; change: NotifiedAlert['change'] }[] = [];
    for (const alert of members(state, group.key)) {
      if (!alert.announcedFiring && alert.silencedBy === undefined)
        changes.push({ alert, change: 'fired' });
      else if (alert.announcedFiring && alert.status === 'resolved' && !alert.announcedResolved)
        changes.push({ alert, change: 'resolved' });
      else if (
        alert.status === 'firing' &&
        alert.announcedFiring &&
        alert.silencedBy === undefined &&
        (alert.lastNotifiedAt ?? alert.firedAt) + ctx.routing.repeatIntervalMs <= ctx.now
      )
        changes.push({ alert, change: 'repeat' });
    }
    changes.sort((a, b) => a.alert.firedSeq - b.alert.firedSeq);
    decisions.push(...notifications(state, group, changes, ctx));
    for (const { alert, change } of changes) {
      if (change === 'resolved') alert.announcedResolved = true;
      alert.announcedFiring = true;
      alert.lastNotifiedAt = ctx.now;
    }
    group.lastFlushAt = ctx.now;
    delete group.pendingSince;
    // What resolved during the wait is announced firing now; its resolution is still owed.
    if (changes.some(({ alert, change }) => change !== 'resolved' && alert.status === 'resolved'))
      group.pendingSince = ctx.now;
  }
  return decisions;
}

function notifications(
  state: AlertState,
  group: GroupRecord,
  changes: { alert: AlertRecord; change: NotifiedAlert['change'] }[],
  ctx: AlertContext,
): AlertDecision[] {
  const decisions: AlertDecision[] = [];
  const configured = new Set(ctx.channels);
  const channels = [...new Set(changes.flatMap(({ alert }) => alert.channels))].filter((c) =>
    configured.has(c),
  );
  for (const channel of channels.sort()) {
    const mine = changes.filter(({ alert }) => alert.channels.includes(channel));
    const alerts = mine
      .slice(0, notificationAlertsMax)
      .map(({ alert, change }) => notified(alert, change));
    const notification: Notification = {
      id: `${state.startAt.toString(36)}-${state.nextNotification++}`,
      channel,
      group: { key: group.key, labels: group.labels },
      status: alerts.every((a) => a.status === 'resolved') ? 'resolved' : 'firing',
      createdAt: ctx.now,
      test: false,
      alerts,
      omitted: mine.length - alerts.length,
    };
    state.counters.notifications++;
    const queued = Object.values(state.outbox).filter(
      (e) => e.notification.channel === channel,
    ).length;
    const status = queued >= ctx.delivery.queueLengthMax ? 'failed' : 'queued';
    for (const { alert } of mine)
      alert.deliveries[channel] = {
        status,
        notification: notification.id,
        attempts: 0,
        ...(status === 'failed' ? { lastError: 'queue full' } : {}),
        at: ctx.now,
      };
    if (status === 'failed') {
      // A channel that cannot keep up loses this notification, visibly, rather than the memory
      // of the controller or the size of the persisted state.
      state.counters.deliveryFailures++;
      decisions.push(
        deliveryFailed(
          notification.id,
          { channel, attempts: 0, error: `queue full (${ctx.delivery.queueLengthMax} waiting)` },
          ctx.now,
        ),
      );
      continue;
    }
    state.outbox[notification.id] = { notification, attempts: 0, status: 'queued' };
    decisions.push({ type: 'notify', notification, attempts: 0 });
  }
  return decisions;
}

/** Closes notices once announced, moves finished alerts to `recent`, drops empty groups. */
export function settle(state: AlertState): void {
  for (const alert of Object.values(state.alerts)) {
    if (
      alert.notice &&
      alert.status === 'firing' &&
      (alert.announcedFiring || alert.silencedBy !== undefined)
    ) {
      alert.status = 'resolved';
      alert.resolvedAt = alert.lastNotifiedAt ?? alert.lastEventAt;
      alert.announcedResolved = true;
    }
    const finished =
      alert.status === 'resolved' &&
      (alert.announcedResolved || (!alert.announcedFiring && alert.silencedBy !== undefined));
    if (finished) {
      delete state.alerts[alert.key];
      state.recent.unshift(alert);
    }
  }
  state.recent.splice(alertsRecentMax);
  const live = new Set(Object.values(state.alerts).map((a) => a.group));
  for (const key of Object.keys(state.groups)) if (!live.has(key)) delete state.groups[key];
}

/** The journal event that makes a delivery given up on visible. */
export function deliveryFailed(
  notification: string,
  outcome: { channel: string; attempts: number; error?: string },
  now: number,
): AlertDecision {
  return {
    type: 'journal',
    event: {
      at: now,
      kind: 'alert.delivery-failed',
      subject: { kind: 'alert', name: outcome.channel },
      message: `notification ${notification} to channel ${outcome.channel} failed after ${outcome.attempts} attempt(s): ${outcome.error ?? 'unknown error'}`,
      data: {
        notification,
        channel: outcome.channel,
        attempts: outcome.attempts,
        error: outcome.error,
      },
    },
  };
}
