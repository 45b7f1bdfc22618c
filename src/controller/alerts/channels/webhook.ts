// The webhook channel: the notification as JSON in a POST, signed with HMAC-SHA256 over the
// timestamp and the raw body so a receiver can check who sent it and when (docs/alerts.md shows
// the verification). Connection errors, timeouts, 5xx and 429 are retried; other answers are not.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AlertChannelSpec } from '../../../core/alerting-spec.js';
import type { Notification } from '../model.js';
import { abortError, DeliveryError, type AlertChannel, type SendOptions } from './channel.js';

type WebhookSpec = Extract<AlertChannelSpec, { type: 'webhook' }>;

export const signatureHeader = 'x-continuum-signature';
export const timestampHeader = 'x-continuum-timestamp';
/** How far a receiver should accept a timestamp from its own clock, by default. */
export const signatureToleranceMsDefault = 300_000;
/** Response bodies read for an error message, at most. */
const responseExcerptBytesMax = 512;

/** "sha256=<hex>": HMAC-SHA256 with the secret over `${timestamp}.${body}`. */
export function signWebhook(body: string, timestamp: string, secret: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/**
 * What a receiver does: recompute the signature over the raw body and compare in constant time,
 * and refuse a timestamp (ms since the epoch) too far from its own clock, which stops replays.
 */
export function verifyWebhookSignature(input: {
  body: string;
  timestamp: string | undefined;
  signature: string | undefined;
  secret: string;
  now: number;
  toleranceMs?: number;
}): boolean {
  const { body, timestamp, signature, secret } = input;
  if (timestamp === undefined || signature === undefined || !/^\d{1,16}$/.test(timestamp))
    return false;
  if (Math.abs(input.now - Number(timestamp)) > (input.toleranceMs ?? signatureToleranceMsDefault))
    return false;
  const expected = Buffer.from(signWebhook(body, timestamp, secret));
  const given = Buffer.from(signature);
  return expected.length === given.length && timingSafeEqual(expected, given);
}

/** The key, read at each send so that a rotated file or a fixed mistake takes effect at once. */
function secretOf(spec: WebhookSpec, env: NodeJS.ProcessEnv): string | undefined {
  if (spec.secretFile !== undefined) {
    try {
      return readFileSync(spec.secretFile, 'utf8').trim();
    } catch (err) {
      throw new DeliveryError(`cannot read secretFile: ${(err as Error).message}`, {
        retryable: true,
      });
    }
  }
  if (spec.secretEnv !== undefined) {
    const value = env[spec.secretEnv];
    if (value === undefined || value === '')
      throw new DeliveryError(`environment variable ${spec.secretEnv} is not set`, {
        retryable: true,
      });
    return value;
  }
  return undefined;
}

export function webhookChannel(
  spec: WebhookSpec,
  env: NodeJS.ProcessEnv = process.env,
): AlertChannel {
  const url = new URL(spec.url);
  const ca = spec.caFile === undefined ? undefined : readFileSync(spec.caFile);
  return {
    name: spec.name,
    type: 'webhook',
    async send(notification: Notification, options: SendOptions): Promise<void> {
      const body = JSON.stringify({ version: 'continuum.alerts/v1', ...notification });
      const timestamp = String(options.now);
      const secret = secretOf(spec, env);
      const headers: Record<string, string> = {
        ...spec.headers,
        'content-type': 'application/json',
        'content-length': String(Buffer.byteLength(body)),
        'user-agent': 'continuum-alerts',
        'x-continuum-notification': notification.id,
        [timestampHeader]: timestamp,
        ...(secret === undefined
          ? {}
          : { [signatureHeader]: signWebhook(body, timestamp, secret) }),
      };
      const status = await post(url, body, headers, {
        signal: options.signal,
        timeoutMs: spec.timeoutMs,
        rejectUnauthorized: spec.tlsRejectUnauthorized,
        ...(ca === undefined ? {} : { ca }),
      });
      if (status.code >= 200 && status.code < 300) return;
      const retryable = status.code >= 500 || status.code === 429 || status.code === 408;
      throw new DeliveryError(
        `HTTP ${status.code}${status.excerpt === '' ? '' : `: ${status.excerpt}`}`,
        { retryable },
      );
    },
  };
}

function post(
  url: URL,
  body: string,
  headers: Record<string, string>,
  options: { signal: AbortSignal; timeoutMs: number; rejectUnauthorized: boolean; ca?: Buffer },
): Promise<{ code: number; excerpt: string }> {
  return new Promise((resolve, reject) => {
    const request = (url.protocol === 'https:' ? httpsRequest : httpRequest)(
      url,
      {
        method: 'POST',
        headers,
        signal: options.signal,
        ...(url.protocol === 'https:'
          ? {
              rejectUnauthorized: options.rejectUnauthorized,
              ...(options.ca === undefined ? {} : { ca: options.ca }),
            }
          : {}),
      },
      (response) => {
        let excerpt = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          if (excerpt.length < responseExcerptBytesMax) excerpt += chunk;
        });
        response.on('end', () =>
          resolve({
            code: response.statusCode ?? 0,
            excerpt: excerpt.slice(0, responseExcerptBytesMax).trim(),
          }),
        );
        response.on('error', (err) =>
          reject(new DeliveryError(err.message, { retryable: true, cause: err })),
        );
      },
    );
    request.on('error', (err) =>
      reject(
        options.signal.aborted
          ? abortError(options.timeoutMs)
          : new DeliveryError(err.message, { retryable: true, cause: err }),
      ),
    );
    request.end(body);
  });
}
