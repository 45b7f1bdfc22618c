// The replication link over real loopback TCP: a primary's connectLink and a replica node's
// ReplicationListener carry messages both ways in order, a 4 MiB write included; every way a
// connection can go wrong (a malformed frame, a first frame other than REPL_OPEN, none at all, a
// refused route, a refused connect, a peer that stops reading, too many connections) ends that
// connection alone, with a reason that names what happened.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import type { Logger, LogLevel } from '../../core/ports.js';
import {
  connectLink,
  parseLinkAddress,
  ReplicationListener,
  type ReplicationListenerOptions,
  SocketLink,
} from './tcp-link.js';
import type { ReplicationLink, ReplOpenInfo } from './types.js';
import { encode, type ReplicationMessage } from './wire.js';

const host = '127.0.0.1';
const MiB = 2 ** 20;

interface LogEntry {
  readonly level: LogLevel;
  readonly message: string;
  readonly fields: Record<string, unknown>;
}

function capturingLogger(entries: LogEntry[] = [], bound: Record<string, unknown> = {}): Logger {
  return {
    log: (level, message, fields = {}) =>
      entries.push({ level, message, fields: { ...bound, ...fields } }),
    child: (fields) => capturingLogger(entries, { ...bound, ...fields }),
  };
}

/** Waits for a condition with a deadline, never for a fixed time (CONVENTIONS.md item 19). */
async function waitFor(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** What a link delivers, and the reason it closed with once it has. */
function watch(link: ReplicationLink, options: { deliver?: boolean } = {}) {
  const seen = { messages: [] as ReplicationMessage[], reason: undefined as string | undefined };
  if (options.deliver !== false) link.onMessage((message) => seen.messages.push(message));
  link.onClose((reason) => {
    assert.equal(seen.reason, undefined, 'onClose called twice');
    seen.reason = reason;
  });
  return seen;
}

interface Routed {
  readonly open: ReplOpenInfo;
  readonly link: ReplicationLink;
}

async function startListener(t: TestContext, options: Partial<ReplicationListenerOptions> = {}) {
  const routed: Routed[] = [];
  const logs: LogEntry[] = [];
  const listener = await ReplicationListener.listen({
    host,
    port: 0,
    logger: capturingLogger(logs),
    route: (open, link) => {
      routed.push({ open, link });
    },
    firstFrameTimeoutMs: 5_000,
    connectionsMax: 16,
    ...options,
  });
  t.after(() => listener.close());
  const address = `${host}:${listener.address().port}`;
  const refusals = () => logs.filter((entry) => entry.message.startsWith('refusing'));
  return { listener, routed, logs, address, refusals };
}

/** A raw client socket, for bytes no well-behaved primary would send. */
async function rawClient(t: TestContext, port: number) {
  const socket = connect({ host, port });
  t.after(() => socket.destroy());
  const state = { received: 0, closed: false };
  socket.on('data', (chunk: Buffer) => (state.received += chunk.length));
  socket.on('error', () => {});
  socket.on('close', () => (state.closed = true));
  await once(socket, 'connect');
  return { socket, state };
}

const open = (volume = 'db-1'): ReplicationMessage => ({
  type: 'REPL_OPEN',
  volume,
  primaryNode: 'node-a',
  epoch: 12,
});
const frameOf = (message: ReplicationMessage): Buffer => Buffer.concat(encode(message));
const garbage = Buffer.from('this is not a replication frame');

function primaryLink(t: TestContext, address: string, options: { queuedBytesMax?: number } = {}) {
  const link = connectLink(
    { volume: 'db-1', node: 'node-b', address },
    { connectTimeoutMs: 5_000, logger: capturingLogger(), ...options },
  );
  t.after(() => link.close('test over'));
  return link;
}

describe('SocketLink and ReplicationListener over loopback TCP', () => {
  it('carries messages both ways in order, a 4 MiB write included', async (t) => {
    const { routed, address } = await startListener(t);
    const primary = primaryLink(t, address);
    const fromReplica = watch(primary);
    // 4 MiB cannot arrive in one chunk (a socket reads at most 64 KiB at a time), so the replica's
    // decoder gathers this write across many; the pattern shows that every byte came in order.
    const data = Buffer.alloc(4 * MiB);
    for (let at = 0; at < data.length; at += 4) data.writeUInt32BE(at, at);
    const sent: ReplicationMessage[] = [
      {
        type: 'REPL_WRITE',
        seq: 1n,
        epoch: 12,
        offset: 0,
        fua: false,
        data: data.subarray(0, 4096),
      },
      { type: 'REPL_WRITE', seq: 2n, epoch: 12, offset: 8 * MiB, fua: true, data },
      { type: 'REPL_TRIM', seq: 3n, epoch: 12, offset: 4096, length: 65536, fua: false },
      { type: 'REPL_FLUSH', seq: 4n, epoch: 12 },
    ];
    // Sent before the connection is up: the link holds them in order until it is.
    primary.send(open());
    for (const message of sent) primary.send(message);

    await waitFor(() => routed.length === 1, 'the link to be routed');
    const { open: opened, link: replica } = routed[0]!;
    assert.deepEqual(opened, { volume: 'db-1', primaryNode: 'node-a', epoch: 12 });
    const fromPrimary = watch(replica);
    const hello: ReplicationMessage = {
      type: 'REPL_HELLO',
      volume: 'db-1',
      replicaNode: 'node-b',
      acceptedEpoch: 12,
      generation: '00000000000000aa',
      dataGenerationCounter: 3,
    };
    replica.send(hello);
    for (const seq of [1n, 2n, 3n]) replica.send({ type: 'REPL_ACK', seq, kind: 'written' });
    replica.send({ type: 'REPL_ACK', seq: 4n, kind: 'durable' });

    await waitFor(() => fromPrimary.messages.length === sent.length, 'the primary’s messages');
    assert.deepEqual(fromPrimary.messages, sent);
    await waitFor(() => fromReplica.messages.length === 5, 'the replica’s answers');
    assert.deepEqual(fromReplica.messages[0], hello);
    assert.deepEqual(
      fromReplica.messages.slice(1).map((message) => message.type === 'REPL_ACK' && message.seq),
      [1n, 2n, 3n, 4n],
    );
    assert.equal(fromReplica.reason, undefined);
    assert.equal(fromPrimary.reason, undefined);

    primary.close('primary stepping down');
    assert.equal(fromReplica.reason, 'primary stepping down');
    assert.equal(primary.closed, true);
    await waitFor(() => fromPrimary.reason !== undefined, 'the replica side to close');
    assert.match(fromPrimary.reason!, /node-a \(127\.0\.0\.1:\d+\) closed the connection$/);
  });

  it('sends the frames of one turn in one writev: at once after it (microtask) or at its end (check), then polls', async (t) => {
    const server = createServer((socket) => socket.resume());
    server.listen(0, host);
    await once(server, 'listening');
    t.after(() => server.close());
    const { port } = server.address() as { port: number };
    for (const sendBatch of ['microtask', 'check'] as const) {
      const socket = connect({ host, port });
      t.after(() => socket.destroy());
      await once(socket, 'connect');
      const pollKicks: number[] = [];
      const link = new SocketLink(socket, {
        sendBatch,
        loopPoll: { kick: (batchMessages) => pollKicks.push(batchMessages) },
      });
      const writes = { writev: 0, write: 0 };
      // Writable's own hooks: a corked batch reaches _writev at once, a lone frame _write.
      const hooks = socket as unknown as Record<'_writev' | '_write', (...args: unknown[]) => void>;
      for (const hook of ['_writev', '_write'] as const) {
        const original = hooks[hook];
        t.mock.method(hooks, hook, (...args: unknown[]) => {
          writes[hook === '_writev' ? 'writev' : 'write']++;
          original.apply(socket, args);
        });
      }
      for (const seq of [1n, 2n, 3n]) link.send({ type: 'REPL_ACK', seq, kind: 'written' });
      assert.ok(socket.writableLength > 0, `${sendBatch}: held while the turn runs`);
      await Promise.resolve();
      const afterMicrotask = socket.writableLength;
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(socket.writableLength, 0, `${sendBatch}: sent by the end of the turn`);
      if (sendBatch === 'microtask') assert.equal(afterMicrotask, 0, 'sent before later reactions');
      else assert.ok(afterMicrotask > 0, 'check: still held after the promise reactions');
      assert.deepEqual(writes, { writev: 1, write: 0 }, `${sendBatch}: three frames, one writev`);
      // The poll hears of each batch once, with its size.
      assert.deepEqual(pollKicks, [3], `${sendBatch}: one kick for the batch of three`);
      link.destroy('test over');
    }
  });

  it('keeps what follows REPL_OPEN in the same chunk, held until the owner listens', async (t) => {
    const { listener, routed } = await startListener(t);
    const { socket } = await rawClient(t, listener.address().port);
    const flush: ReplicationMessage = { type: 'REPL_FLUSH', seq: 9n, epoch: 12 };
    const accept: ReplicationMessage = { type: 'REPL_ACCEPT_EPOCH', epoch: 13 };
    socket.end(Buffer.concat([frameOf(open()), frameOf(flush), frameOf(accept)]));
    await waitFor(() => routed.length === 1, 'the link to be routed');
    const link = routed[0]!.link;
    // The owner is not listening yet; the link holds the messages and the peer's close behind them.
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(link.closed, false);
    const seen = watch(link);
    assert.deepEqual(seen.messages, [flush, accept]);
    await waitFor(() => seen.reason !== undefined, 'the peer’s close');
    assert.match(seen.reason!, /closed the connection$/);
  });

  it('closes only the connection that sent a malformed frame, and keeps accepting', async (t) => {
    const { listener, routed, address, refusals } = await startListener(t);
    const broken = await rawClient(t, listener.address().port);
    broken.socket.write(frameOf(open()));
    await waitFor(() => routed.length === 1, 'the first link to be routed');
    const seen = watch(routed[0]!.link);
    broken.socket.write(garbage);
    await waitFor(
      () => seen.reason !== undefined && broken.state.closed,
      'the malformed link to close',
    );
    assert.match(
      seen.reason!,
      /^malformed frame: replication frame 2 \(stream byte \d+\): magic is 0x74686973/,
    );

    // A malformed first frame: refused before any link exists.
    const early = await rawClient(t, listener.address().port);
    early.socket.write(garbage);
    await waitFor(() => early.state.closed, 'the connection with a malformed first frame to close');
    assert.match(String(refusals().at(-1)?.fields.reason), /^malformed frame: replication frame 1/);

    // And the listener still serves others.
    const healthy = primaryLink(t, address);
    healthy.send(open('db-2'));
    await waitFor(() => routed.length === 2, 'a later link to be routed');
    assert.equal(routed[1]!.open.volume, 'db-2');
    assert.equal(healthy.closed, false);
  });

  it('refuses a connection whose first frame is not REPL_OPEN', async (t) => {
    const { listener, routed, refusals } = await startListener(t);
    const client = await rawClient(t, listener.address().port);
    client.socket.write(frameOf({ type: 'REPL_FLUSH', seq: 1n, epoch: 12 }));
    await waitFor(() => client.state.closed, 'the connection to close');
    assert.equal(routed.length, 0);
    assert.equal(client.state.received, 0);
    assert.equal(
      refusals().at(-1)?.fields.reason,
      'the first frame is REPL_FLUSH, expected REPL_OPEN',
    );
  });

  it('refuses a connection that sends no first frame within firstFrameTimeoutMs', async (t) => {
    const { listener, refusals } = await startListener(t, { firstFrameTimeoutMs: 50 });
    const client = await rawClient(t, listener.address().port);
    await waitFor(() => client.state.closed, 'the silent connection to close');
    assert.equal(refusals().at(-1)?.fields.reason, 'no REPL_OPEN within firstFrameTimeoutMs 50');
  });

  it('closes the link, sending nothing, when the route refuses it', async (t) => {
    const reason = 'no replica of volume db-9 on this node';
    const { listener, logs } = await startListener(t, {
      route: (opened) => (opened.volume === 'db-9' ? reason : undefined),
    });
    const client = await rawClient(t, listener.address().port);
    client.socket.write(frameOf(open('db-9')));
    await waitFor(() => client.state.closed, 'the refused connection to close');
    assert.equal(client.state.received, 0);
    const entry = logs.find((logged) => logged.message === 'refusing replication link');
    assert.equal(entry?.fields.reason, reason);
    assert.equal(entry?.fields.volume, 'db-9');

    // The same through connectLink: the primary sees the replica end the connection.
    const primary = primaryLink(t, `${host}:${listener.address().port}`);
    const seen = watch(primary);
    primary.send(open('db-9'));
    await waitFor(() => seen.reason !== undefined, 'the primary’s link to close');
    assert.match(seen.reason!, /node-b \(127\.0\.0\.1:\d+\) closed the connection/);
  });

  it('closes a link whose connect is refused, with ECONNREFUSED in the reason', async (t) => {
    const server = createServer();
    server.listen(0, host);
    await once(server, 'listening');
    const { port } = server.address() as { port: number };
    await new Promise((resolve) => server.close(resolve));
    const link = primaryLink(t, `${host}:${port}`);
    const seen = watch(link);
    link.send(open());
    await waitFor(() => seen.reason !== undefined, 'the link to close');
    assert.match(
      seen.reason!,
      new RegExp(`^connect to node-b \\(127\\.0\\.0\\.1:${port}\\) failed: .*ECONNREFUSED`),
    );
    assert.equal(link.closed, true);
  });

  it('closes a link with a bad address instead of throwing', async () => {
    const link = connectLink(
      { volume: 'db-1', node: 'node-b', address: 'node-b.example:7400' },
      { connectTimeoutMs: 1_000, logger: capturingLogger() },
    );
    assert.equal(link.closed, true);
    link.send(open()); // Dropped, as on any closed link.
    const reason = await new Promise<string>((resolve) => link.onClose(resolve));
    assert.match(
      reason,
      /^cannot connect to node-b: address "node-b\.example:7400" is malformed|is not an IPv4 address/,
    );
  });

  it('parses IPv4 and bracketed IPv6 addresses, and says what is wrong with others', () => {
    assert.deepEqual(parseLinkAddress('127.0.0.1:7400'), { host: '127.0.0.1', port: 7400 });
    assert.deepEqual(parseLinkAddress('[::1]:7400'), { host: '::1', port: 7400 });
    assert.deepEqual(parseLinkAddress('[fe80::1:2]:1'), { host: 'fe80::1:2', port: 1 });
    const bad = {
      '127.0.0.1': /malformed/,
      '::1:7400': /malformed/,
      '[::1]': /malformed/,
      'localhost:7400': /localhost is not an IPv4 address/,
      '256.0.0.1:7400': /not an IPv4 address/,
      '[127.0.0.1]:7400': /not an IPv6 address/,
      '127.0.0.1:0': /port 0, expected 1 to 65535/,
      '127.0.0.1:65536': /port 65536/,
      '127.0.0.1:123456': /malformed/,
      '': /malformed/,
    };
    for (const [address, expected] of Object.entries(bad)) {
      const result = parseLinkAddress(address);
      assert.equal(typeof result, 'string', address);
      assert.match(result as string, expected, address);
    }
  });

  it('closes a link whose peer stops reading once queued bytes pass the limit', async (t) => {
    const accepted: Socket[] = [];
    const server = createServer((socket) => {
      socket.pause(); // Never reads: the kernel's buffers fill, then the link's queue.
      accepted.push(socket);
    });
    server.listen(0, host);
    await once(server, 'listening');
    t.after(() => {
      for (const socket of accepted) socket.destroy();
      server.close();
    });
    const { port } = server.address() as { port: number };
    const link = primaryLink(t, `${host}:${port}`, { queuedBytesMax: MiB });
    const seen = watch(link);
    await waitFor(() => accepted.length === 1, 'the connection');
    const data = Buffer.alloc(256 * 1024);
    let seq = 0n;
    await waitFor(
      () => {
        for (let burst = 0; burst < 16 && !link.closed; burst++) {
          link.send({ type: 'REPL_WRITE', seq: seq++, epoch: 1, offset: 0, fua: false, data });
        }
        return link.closed;
      },
      'the queue limit to close the link',
      20_000,
    );
    assert.match(seen.reason!, /exceed linkQueuedBytesMax 1048576: the peer is not reading$/);
    assert.ok(link instanceof SocketLink);
    assert.ok(link.queuedBytes <= MiB, `the queue stayed within its limit (${link.queuedBytes})`);
  });

  it('bounds what is queued before the connection is up', async (t) => {
    const { address } = await startListener(t);
    const link = primaryLink(t, address, { queuedBytesMax: 64 * 1024 });
    const seen = watch(link);
    const data = Buffer.alloc(40 * 1024);
    link.send({ type: 'REPL_WRITE', seq: 1n, epoch: 1, offset: 0, fua: false, data });
    assert.equal(link.closed, false);
    link.send({ type: 'REPL_WRITE', seq: 2n, epoch: 1, offset: 0, fua: false, data });
    assert.equal(link.closed, true);
    await waitFor(() => seen.reason !== undefined, 'the close to be reported');
    assert.match(seen.reason!, /exceed linkQueuedBytesMax 65536/);
  });

  it('refuses connections beyond connectionsMax', async (t) => {
    const { listener, routed, refusals } = await startListener(t, { connectionsMax: 1 });
    const first = await rawClient(t, listener.address().port);
    first.socket.write(frameOf(open()));
    await waitFor(() => routed.length === 1, 'the first link');
    const second = await rawClient(t, listener.address().port);
    await waitFor(() => second.state.closed, 'the second connection to be refused');
    assert.equal(refusals().at(-1)?.fields.reason, 'connectionsMax 1 reached');
    assert.equal(routed[0]!.link.closed, false);
  });

  it('ends every accepted link when the listener closes', async (t) => {
    const { listener, routed, address } = await startListener(t);
    const primaries = ['db-1', 'db-2'].map((volume) => {
      const link = primaryLink(t, address);
      link.send(open(volume));
      return watch(link);
    });
    const waiting = await rawClient(t, listener.address().port); // Never sends REPL_OPEN.
    await waitFor(() => routed.length === 2, 'both links');
    const replicas = routed.map(({ link }) => watch(link));
    await listener.close();
    for (const replica of replicas) assert.equal(replica.reason, 'replication listener closed');
    await waitFor(
      () => primaries.every((seen) => seen.reason !== undefined) && waiting.state.closed,
      'the primaries and the waiting connection to see the close',
    );
    await assert.rejects(
      new Promise((resolve, reject) => {
        const socket = connect({ host, port: listener.address().port });
        socket.on('connect', () => resolve(socket.destroy()));
        socket.on('error', reject);
      }),
      /ECONNREFUSED/,
    );
  });

  it('reports a peer that closes inside a frame', async (t) => {
    const { listener, routed } = await startListener(t);
    const client = await rawClient(t, listener.address().port);
    client.socket.write(frameOf(open()));
    await waitFor(() => routed.length === 1, 'the link');
    const seen = watch(routed[0]!.link);
    client.socket.end(frameOf({ type: 'REPL_FLUSH', seq: 1n, epoch: 12 }).subarray(0, 13));
    await waitFor(() => seen.reason !== undefined, 'the close');
    assert.match(
      seen.reason!,
      /closed the connection inside a frame: .*the stream ended after 13 of its 26 bytes/,
    );
  });
});
