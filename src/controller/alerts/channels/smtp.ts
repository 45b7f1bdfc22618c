// The e-mail channel, through nodemailer: plain SMTP upgraded with STARTTLS when the server offers
// it (or required, or implicit TLS on 465), optional login with a password read from a file. A
// 5xx answer is permanent (a refused address); everything else is retried.
import { readFileSync } from 'node:fs';
import { createTransport } from 'nodemailer';
import type { AlertChannelSpec } from '../../../core/alerting-spec.js';
import type { Notification } from '../model.js';
import {
  abortError,
  DeliveryError,
  notificationText,
  notificationTitle,
  type AlertChannel,
  type SendOptions,
} from './channel.js';

type SmtpSpec = Extract<AlertChannelSpec, { type: 'smtp' }>;

function passwordOf(spec: SmtpSpec): string | undefined {
  if (spec.passwordFile === undefined) return undefined;
  try {
    return readFileSync(spec.passwordFile, 'utf8').trim();
  } catch (err) {
    throw new DeliveryError(`cannot read passwordFile: ${(err as Error).message}`, {
      retryable: true,
    });
  }
}

export function smtpChannel(spec: SmtpSpec): AlertChannel {
  const ca = spec.caFile === undefined ? undefined : readFileSync(spec.caFile);
  return {
    name: spec.name,
    type: 'smtp',
    async send(notification: Notification, options: SendOptions): Promise<void> {
      const password = passwordOf(spec);
      // One connection per notification: alerts are rare, and a pool would hold a socket open to a
      // server that may be gone by the next one.
      const transport = createTransport({
        host: spec.host,
        port: spec.port,
        secure: spec.secure,
        ignoreTLS: !spec.starttls && !spec.requireTls,
        requireTLS: spec.requireTls,
        connectionTimeout: spec.timeoutMs,
        greetingTimeout: spec.timeoutMs,
        socketTimeout: spec.timeoutMs,
        tls: {
          rejectUnauthorized: spec.tlsRejectUnauthorized,
          ...(ca === undefined ? {} : { ca }),
        },
        ...(spec.username === undefined
          ? {}
          : { auth: { user: spec.username, pass: password ?? '' } }),
      });
      const aborted = new Promise<never>((_, reject) => {
        const onAbort = () => {
          transport.close();
          reject(abortError(spec.timeoutMs));
        };
        if (options.signal.aborted) onAbort();
        else options.signal.addEventListener('abort', onAbort, { once: true });
      });
      try {
        await Promise.race([
          transport.sendMail({
            from: spec.from,
            to: spec.to,
            subject: notificationTitle(notification),
            text: notificationText(notification),
            headers: { 'X-Continuum-Notification': notification.id },
          }),
          aborted,
        ]);
      } catch (err) {
        if (err instanceof DeliveryError) throw err;
        const code = (err as { responseCode?: number }).responseCode;
        const permanent = code !== undefined && code >= 500 && code < 600;
        throw new DeliveryError(`SMTP: ${(err as Error).message}`, {
          retryable: !permanent,
          cause: err,
        });
      } finally {
        aborted.catch(() => undefined);
        transport.close();
      }
    },
  };
}
