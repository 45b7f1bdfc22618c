import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server, Socket } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import {
  connectReceivingInSlabs,
  ReceiveSlabs,
  receiveInSlabs,
  receiveSlabBytes,
} from './slab-receive.js';

describe('ReceiveSlabs', () => {
  it('hands out regions that never overlap, and a new slab when the room left is too small', () => {
    const slabs = new ReceiveSlabs(1000, 300);
    const chunks: Buffer[] = [];
    for (let i = 0; i < 10; i++) {
      const region = slabs.region();
      assert.ok(region.length >= 300, `region ${i} has ${region.length} bytes`);
      const bytes = Math.min(region.length, 250);
      region.fill(i, 0, bytes);
      chunks.push(slabs.took(region, bytes));
    }
    // Every chunk still holds what was written into it: no region was handed out twice.
    for (const [i, chunk] of chunks.entries()) {
      assert.equal(chunk.length, 250);
      assert.ok(
        chunk.every((byte) => byte === i),
        `chunk ${i} was overwritten`,
      );
    }
    // 250 bytes a read in 1000-byte slabs with 300 of room: three reads a slab (750 used, 250
    // left), then a new one.
    assert.equal(chunks[0]!.buffer, chunks[2]!.buffer);
    assert.notEqual(chunks[2]!.buffer, chunks[3]!.buffer);
  });

  it('refuses sizes that cannot work', () => {
    assert.throws(() => new ReceiveSlabs(100, 200), /room 200 exceeds the slab size 100/);
    assert.throws(() => new ReceiveSlabs(100, 0), /expected whole sizes/);
  });
});

describe('receiving into slabs over real sockets', () => {
  const servers: Server[] = [];
  afterEach(() => {
    for (const server of servers.splice(0)) server.close();
  });

  async function listen(onSocket: (socket: Socket) => void): Promise<{ port: number }> {
    const server = createServer({ pauseOnConnect: true }, onSocket);
    servers.push(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return { port: (server.address() as { port: number }).port };
  }

  it('delivers an accepted socket’s bytes in order, in slab chunks that stay intact', async () => {
    const sent = randomBytes(3 * 1024 * 1024 + 17);
    const received: Buffer[] = [];
    let accepted!: Socket;
    const ended = new Promise<void>((resolve) => {
      void listen((socket) => {
        accepted = receiveInSlabs(socket);
        accepted.on('data', (chunk: Buffer) => received.push(chunk));
        accepted.on('end', () => resolve());
      }).then(({ port }) => {
        const client = new Socket();
        client.connect(port, '127.0.0.1', () => {
          for (let at = 0; at < sent.length; at += 100_000)
            client.write(sent.subarray(at, at + 100_000));
          client.end();
        });
      });
    });
    await ended;
    assert.ok(received.length > 1);
    assert.ok(received.every((chunk) => chunk.buffer.byteLength === receiveSlabBytes));
    // Compared only now, after every read: chunks received early were never overwritten.
    assert.ok(Buffer.concat(received).equals(sent));
    accepted.destroy();
  });

  it('lets the server close once a moved connection closes', async () => {
    let moved: Socket | undefined;
    const { port } = await listen((socket) => {
      moved = receiveInSlabs(socket);
      moved.on('data', (chunk: Buffer) => moved!.write(chunk));
    });
    const client = new Socket();
    client.connect(port, '127.0.0.1');
    client.write('ping');
    const [echo] = (await once(client, 'data')) as [Buffer];
    assert.equal(echo.toString(), 'ping');
    const server = servers.pop()!;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    client.end();
    await once(moved!, 'close');
    await closed; // Would never resolve if the server still counted the old socket.
  });

  it('stops delivering while paused and goes on after resume', async () => {
    const received: Buffer[] = [];
    let moved!: Socket;
    const { port } = await listen((socket) => {
      moved = receiveInSlabs(socket);
      moved.on('data', (chunk: Buffer) => {
        received.push(chunk);
        moved.pause();
      });
    });
    const client = new Socket();
    client.connect(port, '127.0.0.1');
    client.write('first');
    await once(client, 'connect');
    while (received.length === 0) await new Promise((resolve) => setImmediate(resolve));
    client.write('second');
    // The second write reaches the kernel's buffer but no chunk while the socket is paused.
    await new Promise<void>((resolve) => client.write('', () => resolve()));
    for (let turn = 0; turn < 50; turn++) await new Promise((resolve) => setImmediate(resolve));
    assert.equal(Buffer.concat(received).toString(), 'first');
    moved.resume();
    while (Buffer.concat(received).length < 'firstsecond'.length) {
      await new Promise((resolve) => setImmediate(resolve));
      moved.resume();
    }
    assert.equal(Buffer.concat(received).toString(), 'firstsecond');
    client.destroy();
    moved.destroy();
  });

  it('receives into slabs on a connecting socket too', async () => {
    const sent = randomBytes(1024 * 1024);
    const { port } = await listen((socket) => {
      socket.resume();
      socket.end(sent);
    });
    const client = connectReceivingInSlabs({ host: '127.0.0.1', port });
    const received: Buffer[] = [];
    client.on('data', (chunk: Buffer) => received.push(chunk));
    await once(client, 'end');
    assert.ok(received.every((chunk) => chunk.buffer.byteLength === receiveSlabBytes));
    assert.ok(Buffer.concat(received).equals(sent));
    client.destroy();
  });

  it('leaves a socket that has no handle to move as it is', () => {
    const socket = new Socket();
    assert.equal(receiveInSlabs(socket), socket);
    socket.destroy();
  });
});
