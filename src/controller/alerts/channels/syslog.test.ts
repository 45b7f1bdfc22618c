// The syslog channel against real listeners on loopback: a UDP socket (one datagram, one message)
// and a TCP server reading octet-counted frames, each message parsed as RFC 5424 (PRI, version,
// timestamp, hostname, app-name, procid, msgid, structured data with escaped values, BOM + text).
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { createServer, type AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { alertChannelSchema } from '../../../core/alerting-spec.js';
import { escapeParamValue, formatSyslog, syslogChannel } from './syslog.js';
import { sampleNotification } from './test-support.js';

type SyslogSpec = Extract<ReturnType<typeof alertChannelSchema.parse>, { type: 'syslog' }>;

const rfc5424 =
  /^<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) (-|\[(?:[^\]\\]|\\.)*\]) \uFEFF([\s\S]*)$/;

interface Parsed {
  pri: number;
  timestamp: string;
  hostname: string;
  appName: string;
  procId: string;
  msgId: string;
  sd: string;
  params: Record<string, string>;
  text: string;
}

function parse(message: string): Parsed {
  const m = rfc5424.exec(message);
  assert.ok(m !== null, `an RFC 5424 message: ${message}`);
  const params: Record<string, string> = {};
  for (const p of m[7]!.matchAll(/ ([^=\s]+)="((?:[^"\\]|\\.)*)"/g))
    params[p[1]!] = p[2]!.replace(/\\(["\\\]])/g, '$1');
  return {
    pri: Number(m[1]),
    timestamp: m[2]!,
    hostname: m[3]!,
    appName: m[4]!,
    procId: m[5]!,
    msgId: m[6]!,
    sd: m[7]!,
    params,
    text: m[8]!,
  };
}

/** Reads octet-counted frames (RFC 6587 3.4.1) from a byte stream. */
function deframe(bytes: Buffer): string[] {
  const messages: string[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    const space = bytes.indexOf(0x20, offset);
    const length = Number(bytes.subarray(offset, space).toString('ascii'));
    messages.push(bytes.subarray(space + 1, space + 1 + length).toString('utf8'));
    offset = space + 1 + length;
  }
  return messages;
}

const spec = (input: Record<string, unknown>) =>
  alertChannelSchema.parse({
    name: 'log',
    type: 'syslog',
    host: '127.0.0.1',
    facility: 'local3',
    appName: 'continuum-test',
    ...input,
  }) as SyslogSpec;
const send = (s: SyslogSpec, now: number) =>
  syslogChannel(s).send(sampleNotification(), { now, signal: AbortSignal.timeout(5000) });

describe('syslog channel', () => {
  it('formats RFC 5424 with the PRI of facility and severity and escaped structured data', () => {
    assert.equal(escapeParamValue('a"b\\c]d'), 'a\\"b\\\\c\\]d');
    const text = formatSyslog({
      facility: 16,
      severity: 2,
      timestamp: Date.UTC(2026, 0, 2, 3, 4, 5, 6),
      hostname: 'h 1',
      appName: 'app',
      procId: '42',
      msgId: 'FIRING',
      data: { group: 'x="1"]' },
      message: 'héllo',
    });
    assert.equal(
      text,
      '<130>1 2026-01-02T03:04:05.006Z h1 app 42 FIRING [continuum@32473 group="x=\\"1\\"\\]"] \uFEFFhéllo',
    );
  });

  it('sends one message per notification over UDP', async () => {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    const got = new Promise<string>((resolve) =>
      socket.once('message', (m) => resolve(m.toString('utf8'))),
    );
    const now = Date.now();
    await send(spec({ port: socket.address().port, protocol: 'udp' }), now);
    const message = parse(await got);
    socket.close();
    assert.equal(message.pri, 19 * 8 + 4, 'local3.warning');
    assert.equal(message.timestamp, new Date(now).toISOString());
    assert.equal(message.appName, 'continuum-test');
    assert.equal(message.procId, String(process.pid));
    assert.equal(message.msgId, 'FIRING');
    assert.equal(message.params.notification, 'n-1');
    assert.equal(message.params.group, 'rule=failover');
    assert.match(message.text, /\[FIRING\] failover: workload\/web/);
    assert.match(message.text, /"quoted" \[bracketed\] \\ back-slashed, café/);
  });

  it('sends octet-counted frames over TCP', async () => {
    const chunks: Buffer[] = [];
    let closed!: () => void;
    const done = new Promise<void>((resolve) => (closed = resolve));
    const server = createServer((connection) => {
      connection.on('data', (c: Buffer) => chunks.push(c));
      connection.on('end', () => closed());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    await send(spec({ port, protocol: 'tcp' }), Date.now());
    await done;
    server.close();
    const [frame, ...rest] = deframe(Buffer.concat(chunks));
    assert.equal(rest.length, 0);
    const message = parse(frame!);
    assert.equal(message.pri, 19 * 8 + 4);
    assert.equal(message.params.status, 'firing');
  });

  it('fails a TCP delivery to a port nobody listens on, as retryable', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    await new Promise((resolve) => server.close(resolve));
    await assert.rejects(
      send(spec({ port, protocol: 'tcp' }), Date.now()),
      (err: Error & { retryable?: boolean }) => err.retryable === true,
    );
  });
});
