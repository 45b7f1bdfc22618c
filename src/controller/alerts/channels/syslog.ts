// The syslog channel: RFC 5424 messages written by hand (the format is one line), sent over UDP
// (RFC 5426, one datagram each) or TCP with octet-counting framing (RFC 6587 section 3.4.1).
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { hostname } from 'node:os';
import type { AlertChannelSpec, AlertSeverity } from '../../../core/alerting-spec.js';
import { syslogFacilities } from '../../../core/alerting-spec.js';
import type { Notification } from '../model.js';
import {
  abortError,
  DeliveryError,
  notificationTitle,
  type AlertChannel,
  type SendOptions,
} from './channel.js';

type SyslogSpec = Extract<AlertChannelSpec, { type: 'syslog' }>;

/** RFC 5426: every receiver takes 2048 bytes; a longer datagram may be cut or dropped. */
export const syslogUdpBytesMax = 2048;
/** Documentation enterprise number (RFC 5612) in the SD-ID: no IANA number is registered. */
export const syslogSdId = 'continuum@32473';

const severityCodes: Record<AlertSeverity, number> = { critical: 2, warning: 4, info: 6 };
/** notice: a resolution is normal but significant. */
const resolvedSeverityCode = 5;

export interface SyslogMessage {
  facility: number;
  severity: number;
  timestamp: number;
  hostname: string;
  appName: string;
  procId: string;
  msgId: string;
  data: Record<string, string>;
  message: string;
}

/** A header field: printable US-ASCII without spaces, cut to its length, or "-" (NILVALUE). */
function headerField(value: string, max: number): string {
  const cleaned = value.replace(/[^!-~]/g, '').slice(0, max);
  return cleaned === '' ? '-' : cleaned;
}

/** PARAM-VALUE escaping (RFC 5424 section 6.3.3): '"', '\' and ']' take a backslash. */
export function escapeParamValue(value: string): string {
  return value.replace(/["\\\]]/g, (c) => `\\${c}`);
}

export function formatSyslog(m: SyslogMessage): string {
  const pri = m.facility * 8 + m.severity;
  const params = Object.entries(m.data)
    .map(
      ([name, value]) =>
        ` ${headerField(name.replace(/[= \]"]/g, ''), 32)}="${escapeParamValue(value)}"`,
    )
    .join('');
  const data = params === '' ? '-' : `[${syslogSdId}${params}]`;
  return [
    `<${pri}>1`,
    new Date(m.timestamp).toISOString(),
    headerField(m.hostname, 255),
    headerField(m.appName, 48),
    headerField(m.procId, 128),
    headerField(m.msgId, 32),
    data,
    // The BOM says the free-form message is UTF-8 (section 6.4).
    `\uFEFF${m.message}`,
  ].join(' ');
}

export function syslogMessageOf(spec: SyslogSpec, notification: Notification, now: number): string {
  const firing = notification.alerts.filter((a) => a.status === 'firing');
  const severity =
    firing.length === 0
      ? resolvedSeverityCode
      : Math.min(...firing.map((a) => severityCodes[a.severity]));
  return formatSyslog({
    facility: syslogFacilities[spec.facility],
    severity,
    timestamp: now,
    hostname: hostname(),
    appName: spec.appName,
    procId: String(process.pid),
    msgId: notification.test ? 'TEST' : notification.status === 'resolved' ? 'RESOLVED' : 'FIRING',
    data: {
      notification: notification.id,
      group: notification.group.key,
      status: notification.status,
      alerts: String(notification.alerts.length + notification.omitted),
    },
    message: `${notificationTitle(notification)}: ${notification.alerts.map((a) => `${a.change} ${a.rule} ${a.subject.name}: ${a.message}`).join('; ')}`,
  });
}

/** Cuts a message to a byte length without splitting a UTF-8 character. */
function cutBytes(text: string, bytesMax: number): Buffer {
  const bytes = Buffer.from(text);
  if (bytes.length <= bytesMax) return bytes;
  let end = bytesMax;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end);
}

export function syslogChannel(spec: SyslogSpec): AlertChannel {
  return {
    name: spec.name,
    type: 'syslog',
    send(notification: Notification, options: SendOptions): Promise<void> {
      const text = syslogMessageOf(spec, notification, options.now);
      return spec.protocol === 'udp' ? sendUdp(spec, text, options) : sendTcp(spec, text, options);
    },
  };
}

function sendUdp(spec: SyslogSpec, text: string, options: SendOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = createSocket(spec.host.includes(':') ? 'udp6' : 'udp4');
    const done = (err?: Error) => {
      socket.close();
      if (err === undefined) resolve();
      else
        reject(
          err instanceof DeliveryError
            ? err
            : new DeliveryError(err.message, { retryable: true, cause: err }),
        );
    };
    options.signal.addEventListener('abort', () => done(abortError(spec.timeoutMs)), {
      once: true,
    });
    socket.on('error', done);
    socket.send(cutBytes(text, syslogUdpBytesMax), spec.port, spec.host, (err) =>
      done(err ?? undefined),
    );
  });
}

function sendTcp(spec: SyslogSpec, text: string, options: SendOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const frame = Buffer.from(text);
    const socket = connect({ host: spec.host, port: spec.port });
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      reject(
        err instanceof DeliveryError
          ? err
          : new DeliveryError(err.message, { retryable: true, cause: err }),
      );
    };
    options.signal.addEventListener('abort', () => fail(abortError(spec.timeoutMs)), {
      once: true,
    });
    socket.on('error', fail);
    socket.on('connect', () => {
      // Octet counting: the length in bytes, a space, the message; no trailer.
      socket.end(Buffer.concat([Buffer.from(`${frame.length} `), frame]), () => {
        if (settled) return;
        settled = true;
        resolve();
      });
    });
  });
}
