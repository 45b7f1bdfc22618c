// Alerts end to end, on real processes: a node crash makes the controller send exactly one alert
// for the failover per channel, and one resolved notification, to a real webhook receiver (whose
// signature verifies), a real SMTP server (smtp-server on loopback) and a syslog listener (UDP,
// RFC 5424); a webhook channel whose port refuses connections is retried and reported as failed,
// and the failover completes meanwhile.
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SMTPServer } from 'smtp-server';
import { closedPort, startReceiver } from '../src/controller/alerts/channels/test-support.js';
import { verifyWebhookSignature } from '../src/controller/alerts/channels/webhook.js';
import type { Notification } from '../src/controller/alerts/model.js';
import { waitFor } from './harness/cluster.js';
import { activeOn, startDemo, type Demo } from './harness/demo.js';

type Received = { channel: string; status: string; rules: string[]; text: string };

async function startSmtp(): Promise<{ port: number; mails: string[]; close: () => Promise<void> }> {
  const mails: string[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, _session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        mails.push(Buffer.concat(chunks).toString('utf8'));
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.server.address() as { port: number };
  return { port, mails, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

async function startSyslog(): Promise<{ port: number; lines: string[]; close: () => void }> {
  const lines: string[] = [];
  const socket = createSocket('udp4');
  socket.on('message', (message) => lines.push(message.toString('utf8')));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { port: socket.address().port, lines, close: () => socket.close() };
}

/** The failover rule's notifications each channel received, by status. */
function failoverNotices(received: Received[], channel: string, status: string): Received[] {
  return received.filter(
    (r) => r.channel === channel && r.status === status && r.rules.includes('failover'),
  );
}

describe('alerts on a node crash', () => {
  let demo: Demo;
  let webhook: Awaited<ReturnType<typeof startReceiver>>;
  let smtp: Awaited<ReturnType<typeof startSmtp>>;
  let syslog: Awaited<ReturnType<typeof startSyslog>>;
  const secret = 'test-hmac-key-0123456789';

  before(async () => {
    webhook = await startReceiver();
    smtp = await startSmtp();
    syslog = await startSyslog();
    demo = await startDemo();
    const secretFile = join(demo.cluster.dir, 'webhook.key');
    writeFileSync(secretFile, `${secret}\n`, { mode: 0o600 });
    const applied = await demo.cluster.api('POST', '/v1/apply', {
      alerting: {
        channels: [
          { name: 'hook', type: 'webhook', url: webhook.url, secretFile },
          {
            name: 'mail',
            type: 'smtp',
            host: '127.0.0.1',
            port: smtp.port,
            from: 'continuum@localhost',
            to: ['oncall@localhost'],
          },
          { name: 'siem', type: 'syslog', host: '127.0.0.1', port: syslog.port },
          { name: 'dead', type: 'webhook', url: `http://127.0.0.1:${await closedPort()}/hook` },
        ],
        routing: { groupBy: ['rule'], groupWaitMs: 1000, groupIntervalMs: 2000 },
        delivery: { attemptsMax: 3, backoffInitialMs: 500, backoffMaxMs: 1000 },
      },
    });
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
  });
  after(async () => {
    await demo?.cluster.close();
    await webhook?.close();
    await smtp?.close();
    syslog?.close();
  });

  /** What every live channel received so far, read back into (channel, status, rules). */
  function received(): Received[] {
    const hook = webhook.received.map((r) => {
      const n = JSON.parse(r.body) as Notification;
      return {
        channel: 'hook',
        status: n.status,
        rules: n.alerts.map((a) => a.rule),
        text: r.body,
      };
    });
    const mail = smtp.mails.map((text) => {
      const subject = /^Subject: (.*)$/m.exec(text)?.[1] ?? '';
      const status = /\[RESOLVED\]/.test(subject) ? 'resolved' : 'firing';
      return { channel: 'mail', status, rules: [/\] ([a-z-]+):/.exec(subject)?.[1] ?? ''], text };
    });
    const sys = syslog.lines.map((text) => {
      const msgId = text.split(' ')[5] ?? '';
      const rule = /\] ([a-z-]+):/.exec(text)?.[1] ?? '';
      return { channel: 'siem', status: msgId.toLowerCase(), rules: [rule], text };
    });
    return [...hook, ...mail, ...sys];
  }

  it('sends one alert per channel for the failover and one resolution; a dead channel is retried and reported', async () => {
    const before = await demo.cluster.workload('kv');
    demo.cluster.signalGroup(before.node!, 'SIGKILL');
    const after = await activeOn(demo.cluster, (w) => w.node !== before.node, 'kv failed over');
    assert.notEqual(after.node, before.node);
    for (const channel of ['hook', 'mail', 'siem'])
      await waitFor(`the failover's resolution on ${channel}`, 30_000, () =>
        failoverNotices(received(), channel, 'resolved').length > 0 ? true : undefined,
      );
    // The dead channel: retried, then reported in the journal, while the others delivered.
    const failed = await waitFor('the dead channel to be reported', 30_000, async () =>
      (await demo.cluster.events('alert.delivery-failed')).find((e) =>
        JSON.stringify(e).includes('dead'),
      ),
    );
    assert.match(failed.message, /ECONNREFUSED|refused/);
    // Settled: the failover alert is resolved and nothing waits in any channel's queue, so
    // nothing more will be sent for it (only firing alerts repeat).
    const settled = await waitFor('alerting to settle', 30_000, async () => {
      const { body } = await demo.cluster.api<{
        items: { rule: string; status: string }[];
        recent: { rule: string; status: string }[];
        pending: unknown[];
      }>('GET', '/v1/alerts');
      const failover = [...body.items, ...body.recent].find((a) => a.rule === 'failover');
      return body.pending.length === 0 && failover?.status === 'resolved' ? failover : undefined;
    });
    assert.match(JSON.stringify(settled), /"dead"/, 'the alert shows the dead channel');
    const all = received();
    for (const channel of ['hook', 'mail', 'siem']) {
      assert.equal(failoverNotices(all, channel, 'firing').length, 1, `one firing on ${channel}`);
      assert.equal(
        failoverNotices(all, channel, 'resolved').length,
        1,
        `one resolved on ${channel}`,
      );
    }
    // The webhook's signature verifies with the shared key, and fails with another.
    for (const request of webhook.received) {
      const input = {
        body: request.body,
        timestamp: request.headers['x-continuum-timestamp'] as string | undefined,
        signature: request.headers['x-continuum-signature'] as string | undefined,
        now: Date.now(),
      };
      assert.ok(verifyWebhookSignature({ ...input, secret }), 'signature verifies');
      assert.ok(!verifyWebhookSignature({ ...input, secret: 'another key' }));
    }
    const mail = failoverNotices(all, 'mail', 'firing')[0]!.text;
    assert.match(mail, /^To: oncall@localhost/m);
    assert.match(mail, /kv/);
    const line = failoverNotices(all, 'siem', 'firing')[0]!.text;
    assert.match(
      line,
      /^<\d{1,3}>1 \d{4}-\d\d-\d\dT[\d:.]+Z \S+ continuum \d+ FIRING \[continuum@32473 /,
    );
  });
});
