// The e-mail channel against a real SMTP server on loopback (the smtp-server package) offering
// STARTTLS with a certificate made for the test: the message arrives over the upgraded connection,
// verified through caFile or accepted with tlsRejectUnauthorized: false; a 5xx refusal is final.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SMTPServer } from 'smtp-server';
import { alertChannelSchema } from '../../../core/alerting-spec.js';
import { DeliveryError } from './channel.js';
import { smtpChannel } from './smtp.js';
import { sampleNotification } from './test-support.js';

type SmtpSpec = Extract<ReturnType<typeof alertChannelSchema.parse>, { type: 'smtp' }>;

interface Received {
  from: string;
  to: string[];
  secure: boolean;
  text: string;
}

describe('smtp channel', () => {
  const dir = mkdtempSync(join(tmpdir(), 'continuum-smtp-'));
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  const received: Received[] = [];
  let server: SMTPServer;
  let port = 0;
  const spec = (input: Record<string, unknown>) =>
    alertChannelSchema.parse({
      name: 'mail',
      type: 'smtp',
      host: 'localhost',
      port,
      from: 'continuum@example.test',
      to: ['ops@example.test'],
      timeoutMs: 10_000,
      ...input,
    }) as SmtpSpec;

  before(async () => {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '1',
        '-keyout',
        keyFile,
        '-out',
        certFile,
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1',
      ],
      { stdio: 'ignore' },
    );
    server = new SMTPServer({
      key: readFileSync(keyFile),
      cert: readFileSync(certFile),
      authOptional: true,
      disabledCommands: ['AUTH'],
      logger: false,
      onRcptTo(address, _session, callback) {
        if (address.address.startsWith('nobody@')) {
          const err = new Error('no such mailbox') as Error & { responseCode: number };
          err.responseCode = 550;
          return callback(err);
        }
        callback();
      },
      onData(stream, session, callback) {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          received.push({
            from: session.envelope.mailFrom === false ? '' : session.envelope.mailFrom.address,
            to: session.envelope.rcptTo.map((r) => r.address),
            secure: session.secure,
            text: Buffer.concat(chunks).toString('utf8'),
          });
          callback();
        });
      },
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.server.address() as AddressInfo).port;
  });
  after(async () => {
    await new Promise<void>((resolve) => server.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  const send = (s: SmtpSpec) =>
    smtpChannel(s).send(sampleNotification(), {
      now: Date.now(),
      signal: AbortSignal.timeout(15_000),
    });

  it('upgrades with STARTTLS, verifying the server through caFile', async () => {
    await send(spec({ caFile: certFile, requireTls: true }));
    const mail = received.at(-1)!;
    assert.equal(mail.secure, true, 'the message went over TLS');
    assert.equal(mail.from, 'continuum@example.test');
    assert.deepEqual(mail.to, ['ops@example.test']);
    assert.match(mail.text, /Subject: \[FIRING\] failover: workload\/web/);
    assert.match(mail.text, /X-Continuum-Notification: n-1/);
  });

  it('accepts a self-signed server only when told to, and refuses it otherwise', async () => {
    await send(spec({ tlsRejectUnauthorized: false }));
    assert.equal(received.at(-1)!.secure, true);
    const err = await send(spec({})).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof DeliveryError, 'an unverifiable certificate fails the delivery');
    assert.equal(err.retryable, true);
  });

  it('reports a refused recipient (5xx) as final', async () => {
    const err = await send(
      spec({ tlsRejectUnauthorized: false, to: ['nobody@example.test'] }),
    ).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof DeliveryError);
    assert.equal(err.retryable, false);
    assert.match(err.message, /550/);
  });
});
