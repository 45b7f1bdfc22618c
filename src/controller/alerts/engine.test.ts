// The pure engine: firing, deduplication, resolution, grouping within the group wait, an alert
// that resolves during the wait (announced firing, then resolved), silences, repeats, notices,
// and never firing on the alerting's own events; plus properties over random event sequences.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  alertDeliverySchema,
  alertRoutingSchema,
  builtinAlertRules,
  type AlertRule,
} from '../../core/alerting-spec.js';
import type { JournalEvent } from '../../core/model.js';
import { applyDelivery, applyEvent, applyTick, nextWakeAt } from './engine.js';
import {
  emptyAlertState,
  type AlertContext,
  type AlertDecision,
  type AlertState,
  type Notification,
  type Silence,
} from './model.js';

const failoverRule: AlertRule = {
  name: 'failover',
  on: ['failover.decided', 'failover.started'],
  resolvedBy: ['failover.completed'],
  severity: 'warning',
};
const nodeRule: AlertRule = {
  name: 'node-down',
  on: ['node.down'],
  resolvedBy: ['node.up'],
  severity: 'critical',
};
const noticeRule: AlertRule = {
  name: 'leader',
  on: ['controller.elected'],
  resolvedBy: [],
  severity: 'info',
};
const catchAll: AlertRule = {
  name: 'everything',
  on: ['node', 'failover', 'alert', 'controller'],
  resolvedBy: [],
  severity: 'info',
};

function ctx(now: number, extra: Partial<AlertContext> = {}): AlertContext {
  return {
    rules: [failoverRule, nodeRule, noticeRule],
    channels: ['hook', 'mail'],
    routing: alertRoutingSchema.parse({
      groupWaitMs: 1000,
      groupIntervalMs: 5000,
      repeatIntervalMs: 60_000,
    }),
    delivery: alertDeliverySchema.parse({ queueLengthMax: 10 }),
    silences: [],
    now,
    ...extra,
  };
}

let seq = 0;
function event(
  kind: string,
  subject: string,
  at: number,
  subjectKind: JournalEvent['subject']['kind'] = 'workload',
): JournalEvent {
  seq++;
  return {
    seq,
    at,
    kind,
    subject: { kind: subjectKind, name: subject },
    message: `${kind} ${subject}`,
  };
}

/** Runs events (each with its time) and ticks, collecting every notification. */
class Run {
  state: AlertState = emptyAlertState(0);
  decisions: AlertDecision[] = [];
  constructor(private readonly extra: Partial<AlertContext> = {}) {}
  event(
    kind: string,
    subject: string,
    at: number,
    subjectKind?: JournalEvent['subject']['kind'],
  ): this {
    const step = applyEvent(this.state, event(kind, subject, at, subjectKind), ctx(at, this.extra));
    this.state = step.state;
    this.decisions.push(...step.decisions);
    return this;
  }
  tick(now: number): this {
    const step = applyTick(this.state, ctx(now, this.extra));
    this.state = step.state;
    this.decisions.push(...step.decisions);
    return this;
  }
  notifications(channel = 'hook'): Notification[] {
    return this.decisions.flatMap((d) =>
      d.type === 'notify' && d.notification.channel === channel ? [d.notification] : [],
    );
  }
}

describe('alert engine', () => {
  it('fires once per rule and subject, deduplicates repeats, and waits groupWaitMs before notifying', () => {
    const run = new Run()
      .event('failover.decided', 'web', 100)
      .event('failover.started', 'web', 200);
    assert.equal(run.decisions.filter((d) => d.type === 'fired').length, 1);
    assert.equal(run.decisions.filter((d) => d.type === 'deduplicated').length, 1);
    run.tick(1099);
    assert.equal(run.notifications().length, 0, 'nothing before the group wait is over');
    run.tick(1100);
    const [first] = run.notifications();
    assert.equal(run.notifications().length, 1);
    assert.equal(first!.status, 'firing');
    assert.deepEqual(
      first!.alerts.map((a) => [a.rule, a.subject.name, a.change, a.events]),
      [['failover', 'web', 'fired', 2]],
    );
    assert.equal(run.notifications('mail').length, 1, 'one notification per channel');
  });

  it('groups the alerts of one group that fire within the wait into one notification', () => {
    const run = new Run()
      .event('failover.decided', 'web', 0)
      .event('failover.decided', 'db', 500)
      .tick(1000);
    assert.equal(run.notifications().length, 1);
    assert.deepEqual(
      run.notifications()[0]!.alerts.map((a) => a.subject.name),
      ['web', 'db'],
    );
    // Another rule is another group (groupBy: rule).
    run.event('node.down', 'n1', 1200, 'node').tick(2200);
    assert.equal(run.notifications().length, 2);
    assert.equal(run.notifications()[1]!.group.key, 'rule=node-down');
  });

  it('announces an alert that resolved during the group wait as firing once, then its resolution once', () => {
    const run = new Run()
      .event('failover.decided', 'web', 0)
      .event('failover.completed', 'web', 300)
      .tick(1000);
    assert.deepEqual(
      run.notifications().map((n) => [n.status, n.alerts[0]!.change]),
      [['firing', 'fired']],
    );
    run.tick(5999);
    assert.equal(run.notifications().length, 1, 'the resolution waits for the group interval');
    run.tick(6000).tick(7000).tick(100_000);
    assert.deepEqual(
      run.notifications().map((n) => [n.status, n.alerts[0]!.change]),
      [
        ['firing', 'fired'],
        ['resolved', 'resolved'],
      ],
    );
    assert.equal(Object.keys(run.state.alerts).length, 0, 'the alert is closed');
    assert.equal(run.state.recent[0]!.status, 'resolved');
  });

  it('fires a new alert for a subject after its last one resolved and was announced', () => {
    const run = new Run()
      .event('node.down', 'n1', 0, 'node')
      .tick(1000)
      .event('node.up', 'n1', 2000, 'node')
      .tick(6000);
    run.event('node.down', 'n1', 7000, 'node').tick(12_000);
    const changes = run
      .notifications()
      .map((n) => n.alerts.map((a) => `${a.change}:${a.id}`).join());
    assert.equal(changes.length, 3);
    assert.notEqual(run.notifications()[0]!.alerts[0]!.id, run.notifications()[2]!.alerts[0]!.id);
  });

  it('records a silenced alert but sends nothing, and announces it when the silence ends while it fires', () => {
    const silence: Silence = {
      id: 's1',
      matchers: { rule: 'node-down', subject: 'n1' },
      until: 10_000,
      createdAt: 0,
      createdBy: 't',
      comment: '',
    };
    const run = new Run({ silences: [silence] })
      .event('node.down', 'n1', 0, 'node')
      .event('node.down', 'n2', 0, 'node')
      .tick(1000);
    assert.deepEqual(
      run.notifications()[0]!.alerts.map((a) => a.subject.name),
      ['n2'],
    );
    assert.equal(run.state.alerts['node-down/node/n1']!.silencedBy, 's1');
    assert.ok(run.decisions.some((d) => d.type === 'silenced'));
    run.tick(9000);
    assert.equal(run.notifications().length, 1);
    run.tick(10_000).tick(16_000);
    assert.deepEqual(
      run.notifications().map((n) => n.alerts.map((a) => a.subject.name)),
      [['n2'], ['n1']],
    );
  });

  it('closes a silenced alert that resolves without announcing anything', () => {
    const silence: Silence = {
      id: 's1',
      matchers: { subject: 'node/n1' },
      until: 10_000,
      createdAt: 0,
      createdBy: 't',
      comment: '',
    };
    const run = new Run({ silences: [silence] })
      .event('node.down', 'n1', 0, 'node')
      .event('node.up', 'n1', 500, 'node')
      .tick(20_000);
    assert.equal(run.notifications().length, 0);
    assert.equal(Object.keys(run.state.alerts).length, 0);
  });

  it('repeats what still fires every repeatIntervalMs, and nothing else', () => {
    const run = new Run().event('node.down', 'n1', 0, 'node').tick(1000).tick(30_000).tick(61_000);
    assert.deepEqual(
      run.notifications().map((n) => n.alerts[0]!.change),
      ['fired', 'repeat'],
    );
  });

  it('announces a notice (no resolvedBy) once and closes it', () => {
    const run = new Run()
      .event('controller.elected', 'c2', 0, 'controller')
      .tick(1000)
      .tick(100_000);
    assert.deepEqual(
      run.notifications().map((n) => n.alerts[0]!.change),
      ['fired'],
    );
    assert.equal(Object.keys(run.state.alerts).length, 0);
  });

  it('never fires on alert.* events, even for a rule that would match them', () => {
    const run = new Run({ rules: [catchAll] })
      .event('alert.delivery-failed', 'hook', 0, 'alert')
      .event('alert.fired', 'x', 0, 'alert');
    assert.equal(run.decisions.length, 0);
    assert.equal(run.state.cursor, seq, 'the cursor still moves past them');
  });

  it('skips events at or before its cursor, so a replayed journal changes nothing', () => {
    const first = event('node.down', 'n1', 0, 'node');
    const once = applyEvent(emptyAlertState(0), first, ctx(0));
    const twice = applyEvent(once.state, first, ctx(0));
    assert.equal(twice.state, once.state);
    assert.equal(twice.decisions.length, 0);
  });

  it('records delivery outcomes on the alerts and journals a failure after the last attempt', () => {
    const run = new Run().event('node.down', 'n1', 0, 'node').tick(1000);
    const id = run.notifications()[0]!.id;
    let state = applyDelivery(
      run.state,
      { notification: id, channel: 'hook', attempts: 1, ok: false, final: false, error: 'refused' },
      1100,
    ).state;
    assert.equal(state.alerts['node-down/node/n1']!.deliveries.hook!.status, 'retrying');
    const failed = applyDelivery(
      state,
      { notification: id, channel: 'hook', attempts: 3, ok: false, final: true, error: 'refused' },
      1200,
    );
    state = failed.state;
    assert.deepEqual(state.alerts['node-down/node/n1']!.deliveries.hook, {
      status: 'failed',
      notification: id,
      attempts: 3,
      lastError: 'refused',
      at: 1200,
    });
    assert.equal(state.outbox[id], undefined);
    const journaled = failed.decisions.flatMap((d) => (d.type === 'journal' ? [d.event.kind] : []));
    assert.deepEqual(journaled, ['alert.delivery-failed']);
  });

  it('fails a notification at once when its channel queue is full', () => {
    const run = new Run({ delivery: alertDeliverySchema.parse({ queueLengthMax: 1 }) });
    run
      .event('node.down', 'n1', 0, 'node')
      .tick(1000)
      .event('node.down', 'n2', 1500, 'node')
      .tick(6000);
    assert.equal(run.notifications().length, 1);
    assert.ok(
      run.decisions.some((d) => d.type === 'journal' && d.event.kind === 'alert.delivery-failed'),
    );
  });

  it('built-in rules name only kinds outside alert.*', () => {
    for (const rule of builtinAlertRules)
      for (const kind of [...rule.on, ...rule.resolvedBy]) assert.ok(!kind.startsWith('alert'));
  });

  it('property: every alert that fired is announced firing exactly once and, once resolved, resolved exactly once', () => {
    const kinds = [
      'failover.decided',
      'failover.started',
      'failover.completed',
      'node.down',
      'node.up',
      'alert.fired',
    ];
    const step = fc.record({
      kind: fc.constantFrom(...kinds),
      subject: fc.constantFrom('a', 'b', 'c'),
      gapMs: fc.integer({ min: 0, max: 4000 }),
    });
    fc.assert(
      fc.property(fc.array(step, { maxLength: 40 }), (steps) => {
        const run = new Run();
        let now = 0;
        for (const s of steps) {
          now += s.gapMs;
          run.tick(now).event(s.kind, s.subject, now);
        }
        for (let i = 0; i < 20; i++) run.tick((now += 5000));
        const fired = new Map<string, number>();
        const resolved = new Map<string, number>();
        for (const n of run.notifications())
          for (const a of n.alerts) {
            const map =
              a.change === 'fired' ? fired : a.change === 'resolved' ? resolved : undefined;
            map?.set(a.id, (map.get(a.id) ?? 0) + 1);
          }
        const alerts = run.decisions.flatMap((d) => (d.type === 'fired' ? [d.alert.id] : []));
        for (const id of alerts) assert.equal(fired.get(id), 1, `${id} announced firing once`);
        for (const [id, count] of resolved) {
          assert.equal(count, 1, `${id} resolved once`);
          assert.equal(fired.get(id), 1, `${id} resolved after it fired`);
        }
        // Everything settles: only alerts still firing stay, and nothing is owed.
        for (const alert of Object.values(run.state.alerts)) assert.equal(alert.status, 'firing');
        const wake = nextWakeAt(run.state, ctx(now));
        assert.ok(wake === undefined || wake > now, 'nothing overdue');
      }),
      { numRuns: 200 },
    );
  });
});
