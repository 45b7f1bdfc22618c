// The alert shell on a real store and real channels: an event from the journal reaches a real
// webhook receiver once; a channel that refuses connections is retried with backoff and its
// failure is journaled and shown on the alert, while the other channel delivers at once; a new
// leader taking over the same state sends the resolution once and never the firing again.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { alertingSpecSchema } from '../../core/alerting-spec.js';
import type { NewEvent } from '../../core/model.js';
import { silentLogger } from '../../core/ports.js';
import { systemClock } from '../../platform/real-ports.js';
import { MemoryStore } from '../../store/memory.js';
import { closedPort, startReceiver } from './channels/test-support.js';
import type { AlertState } from './model.js';
import { AlertShell } from './shell.js';
import { alertingConfigKey, alertStateKey } from './store-keys.js';

/** Waits for a condition with a deadline (never a fixed sleep standing in for it). */
async function until<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  deadlineMs = 10_000,
): Promise<T> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const nodeDown = (at: number): NewEvent => ({
  at,
  kind: 'node.down',
  subject: { kind: 'node', name: 'n1' },
  message: 'node n1 is down',
});
const nodeUp = (at: number): NewEvent => ({
  at,
  kind: 'node.up',
  subject: { kind: 'node', name: 'n1' },
  message: 'node n1 is up',
});

describe('alert shell', () => {
  const closers: (() => Promise<void>)[] = [];
  after(async () => {
    for (const close of closers.reverse()) await close();
  });

  it('delivers at once to a working channel while a refusing one is retried, reported, and a new leader resumes without re-sending', async () => {
    const store = new MemoryStore({ clock: systemClock });
    closers.push(() => store.close());
    const good = await startReceiver();
    closers.push(good.close);
    const downPort = await closedPort();
    const spec = alertingSpecSchema.parse({
      channels: [
        { name: 'good', type: 'webhook', url: good.url },
        { name: 'down', type: 'webhook', url: `http://127.0.0.1:${downPort}/` },
      ],
      rules: [
        { name: 'node-down', on: ['node.down'], resolvedBy: ['node.up'], severity: 'critical' },
      ],
      routing: { groupWaitMs: 0, groupIntervalMs: 200 },
      delivery: { attemptsMax: 3, backoffInitialMs: 200, backoffMaxMs: 1000 },
    });
    await store.txn({
      puts: [{ key: alertingConfigKey, value: { spec, appliedAt: 0, appliedBy: 'test' } }],
    });
    const first = new AlertShell({
      store,
      clock: systemClock,
      logger: silentLogger,
      isLeader: () => true,
      tickMs: 20,
    });
    first.start();
    closers.push(() => first.stop());
    await until('the shell to take office', () => first.isActive && store.get(alertStateKey));

    await store.appendEvents([nodeDown(Date.now())]);
    await good.next(1);
    const deliveredAt = Date.now();
    const firing = JSON.parse(good.received[0]!.body) as {
      status: string;
      alerts: { change: string; rule: string }[];
    };
    assert.equal(firing.status, 'firing');
    assert.deepEqual(
      firing.alerts.map((a) => [a.rule, a.change]),
      [['node-down', 'fired']],
    );

    const failed = await until(
      'the failure to be journaled',
      async () => (await store.readEvents({ kinds: ['alert.delivery-failed'] }))[0],
    );
    assert.ok(deliveredAt <= failed.at, 'the good channel did not wait for the failing one');
    assert.ok(failed.at - deliveredAt >= 200, 'the failing channel was retried with backoff');
    assert.match(failed.message, /after 3 attempt\(s\).*ECONNREFUSED/);
    const state = await until('the failure on the alert', async () => {
      const s = (await store.get<AlertState>(alertStateKey))?.value;
      return s?.alerts['node-down/node/n1']?.deliveries.down?.status === 'failed' ? s : undefined;
    });
    assert.equal(state.alerts['node-down/node/n1']!.deliveries.down!.attempts, 3);
    assert.equal(state.alerts['node-down/node/n1']!.deliveries.good!.status, 'delivered');

    // Leadership moves: the first shell stops, the journal moves on, a second shell takes over.
    await first.stop();
    await store.appendEvents([nodeUp(Date.now())]);
    const second = new AlertShell({
      store,
      clock: systemClock,
      logger: silentLogger,
      isLeader: () => true,
      tickMs: 20,
    });
    second.start();
    closers.push(() => second.stop());
    await good.next(2);
    await until('the second shell to settle', async () => {
      const s = (await store.get<AlertState>(alertStateKey))?.value;
      return s !== undefined &&
        Object.keys(s.alerts).length === 0 &&
        Object.keys(s.outbox).length === 0
        ? true
        : undefined;
    });
    await second.settled();
    const statuses = good.received.map((r) => (JSON.parse(r.body) as { status: string }).status);
    assert.deepEqual(
      statuses,
      ['firing', 'resolved'],
      'the firing was not sent again, the resolution once',
    );
  });

  it('does nothing while this controller does not lead', async () => {
    const store = new MemoryStore({ clock: systemClock });
    closers.push(() => store.close());
    let leader = false;
    const shell = new AlertShell({
      store,
      clock: systemClock,
      logger: silentLogger,
      isLeader: () => leader,
      tickMs: 20,
    });
    shell.start();
    closers.push(() => shell.stop());
    await store.appendEvents([nodeDown(Date.now())]);
    await until('a few ticks', async () => (await store.readEvents({})).length > 0);
    assert.equal(shell.isActive, false);
    assert.equal(await store.get(alertStateKey), undefined, 'a follower writes nothing');
    leader = true;
    await until('the shell to take office', () => shell.isActive && store.get(alertStateKey));
  });

  it('takes a configuration applied while it runs, and sends with it', async () => {
    const store = new MemoryStore({ clock: systemClock });
    closers.push(() => store.close());
    const receiver = await startReceiver();
    closers.push(receiver.close);
    const shell = new AlertShell({
      store,
      clock: systemClock,
      logger: silentLogger,
      isLeader: () => true,
      tickMs: 20,
    });
    shell.start();
    closers.push(() => shell.stop());
    await until('the shell to take office', () => shell.isActive && store.get(alertStateKey));
    const spec = alertingSpecSchema.parse({
      channels: [{ name: 'hook', type: 'webhook', url: receiver.url }],
      routing: { groupWaitMs: 0 },
    });
    await store.txn({
      puts: [{ key: alertingConfigKey, value: { spec, appliedAt: 0, appliedBy: 'test' } }],
    });
    await store.appendEvents([nodeDown(Date.now())]);
    await receiver.next(1);
    const body = JSON.parse(receiver.received[0]!.body) as { alerts: { rule: string }[] };
    assert.deepEqual(
      body.alerts.map((a) => a.rule),
      ['node-down'],
      'the built-in rules apply when the section names none',
    );
  });
});
