// The webhook channel against a real node:http receiver on loopback: the body is the notification,
// the signature verifies with the shared secret (and fails with another, a changed body or an old
// timestamp), 5xx and connection errors are retryable and 4xx are not.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { alertChannelSchema } from '../../../core/alerting-spec.js';
import { DeliveryError } from './channel.js';
import { closedPort, sampleNotification, startReceiver } from './test-support.js';
import {
  signatureHeader,
  timestampHeader,
  verifyWebhookSignature,
  webhookChannel,
} from './webhook.js';

type WebhookSpec = Extract<ReturnType<typeof alertChannelSchema.parse>, { type: 'webhook' }>;
const spec = (input: Record<string, unknown>) =>
  alertChannelSchema.parse({ name: 'hook', type: 'webhook', ...input }) as WebhookSpec;
const send = (channel: ReturnType<typeof webhookChannel>, now = Date.now()) =>
  channel.send(sampleNotification(), { now, signal: AbortSignal.timeout(5000) });

describe('webhook channel', () => {
  const dir = mkdtempSync(join(tmpdir(), 'continuum-webhook-'));
  const secretFile = join(dir, 'secret');
  writeFileSync(secretFile, 's3cret-key\n');
  const closers: (() => Promise<void>)[] = [];
  after(async () => {
    for (const close of closers) await close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('posts the notification as JSON with a signature the receiver verifies', async () => {
    const receiver = await startReceiver();
    closers.push(receiver.close);
    const now = Date.now();
    await send(
      webhookChannel(spec({ url: receiver.url, secretFile, headers: { 'x-team': 'ops' } })),
      now,
    );
    const [request] = receiver.received;
    assert.ok(request !== undefined);
    const body = JSON.parse(request.body) as {
      id: string;
      version: string;
      alerts: { rule: string }[];
    };
    assert.equal(body.id, 'n-1');
    assert.equal(body.version, 'continuum.alerts/v1');
    assert.equal(body.alerts[0]!.rule, 'failover');
    assert.equal(request.headers['x-team'], 'ops');
    const timestamp = request.headers[timestampHeader] as string;
    const signature = request.headers[signatureHeader] as string;
    assert.match(signature, /^sha256=[0-9a-f]{64}$/);
    assert.equal(timestamp, String(now));
    const check = { body: request.body, timestamp, signature, now: Date.now() };
    assert.equal(verifyWebhookSignature({ ...check, secret: 's3cret-key' }), true);
    assert.equal(verifyWebhookSignature({ ...check, secret: 'other-key' }), false);
    assert.equal(
      verifyWebhookSignature({ ...check, secret: 's3cret-key', body: `${request.body} ` }),
      false,
    );
    assert.equal(
      verifyWebhookSignature({ ...check, secret: 's3cret-key', now: now + 600_000 }),
      false,
      'too old',
    );
  });

  it('takes the key from an environment variable, and signs nothing without a key', async () => {
    const receiver = await startReceiver();
    closers.push(receiver.close);
    await webhookChannel(spec({ url: receiver.url, secretEnv: 'HOOK_KEY' }), {
      HOOK_KEY: 'env-key',
    }).send(sampleNotification(), {
      now: Date.now(),
      signal: AbortSignal.timeout(5000),
    });
    await send(webhookChannel(spec({ url: receiver.url })));
    const [signed, unsigned] = receiver.received;
    assert.equal(
      verifyWebhookSignature({
        body: signed!.body,
        timestamp: signed!.headers[timestampHeader] as string,
        signature: signed!.headers[signatureHeader] as string,
        secret: 'env-key',
        now: Date.now(),
      }),
      true,
    );
    assert.equal(unsigned!.headers[signatureHeader], undefined);
  });

  it('reports 5xx and 429 as retryable, 4xx as final, and a refused connection as retryable', async () => {
    const receiver = await startReceiver([503, 429, 404]);
    closers.push(receiver.close);
    const channel = webhookChannel(spec({ url: receiver.url }));
    for (const [code, retryable] of [
      [503, true],
      [429, true],
      [404, false],
    ] as const) {
      const err = await send(channel).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err instanceof DeliveryError, `HTTP ${code} fails`);
      assert.match(err.message, new RegExp(`HTTP ${code}`));
      assert.equal(err.retryable, retryable);
    }
    const down = webhookChannel(spec({ url: `http://127.0.0.1:${await closedPort()}/` }));
    const err = await send(down).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof DeliveryError && err.retryable && /ECONNREFUSED/.test(err.message));
  });
});
