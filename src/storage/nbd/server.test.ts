// The server in-process over real sockets with the test client: a full session on a unix socket
// and on TCP, several connections, the handshake timeout, connectionsMax, hostile handshakes that
// end only their own connection, drain on close(), and the counters.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { encodeOption, NbdClient, NbdReplyError, openSocket, readOptionReply } from './client.js';
import { MemoryBlockDevice } from './memory-device.js';
import * as P from './protocol.js';
import { type NbdAddress, NbdServer, nbdUri } from './server.js';
import { SocketReader } from './socket-reader.js';
import { until } from './test-support.js';

const dir = mkdtempSync(join(tmpdir(), 'nbd-server-test-'));
let socketCount = 0;
const socketPath = () => join(dir, `s${socketCount++}.sock`);

function newServer(limits: ConstructorParameters<typeof NbdServer>[0]['limits'] = {}) {
  const device = new MemoryBlockDevice({ sizeBytes: 1 << 20 });
  const server = new NbdServer({
    lookupExport: (name) => (name === 'disk' ? device : undefined),
    listExports: () => [{ name: 'disk' }],
    limits,
  });
  return { device, server };
}

/** Resolves when the server has closed the socket (reading on, so that the EOF is seen). */
function closed(socket: Socket): Promise<void> {
  socket.on('data', () => {});
  return new Promise((resolve) =>
    socket.destroyed ? resolve() : socket.once('close', () => resolve()),
  );
}

describe('NBD server', () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  describe('one server, many clients', () => {
    const { device, server } = newServer();
    let unix: NbdAddress;
    before(async () => {
      unix = await server.listen({ socketPath: socketPath() });
    });
    after(() => server.close());

    it('serves reads, writes, flush, trim, zeroes and block status with structured replies', async () => {
      const client = await NbdClient.connect(unix, { exportName: 'disk', blockStatus: true });
      assert.equal(client.sizeBytes, 1 << 20);
      assert.deepEqual(client.blockSizes, [1, 4096, 32 << 20]);
      await client.write(4096, Buffer.alloc(8192, 0xab), { fua: true });
      assert.equal(device.calls.fua, 1);
      assert.deepEqual(await client.read(4096, 8192), Buffer.alloc(8192, 0xab));
      await client.flush();
      await client.trim(4096, 4096);
      await client.writeZeroes(8192, 100);
      assert.deepEqual(
        await client.read(8190, 104),
        Buffer.concat([Buffer.alloc(102), Buffer.alloc(2, 0xab)]),
      );
      const extents = await client.blockStatus(0, 16384);
      assert.deepEqual(
        extents.map((e) => e.hole),
        [true, false, true],
      );
      await client.disconnect();
    });

    it('serves the old EXPORT_NAME handshake with simple replies', async () => {
      const client = await NbdClient.connect(unix, { exportName: 'disk', exportNameOption: true });
      assert.equal(client.sizeBytes, 1 << 20);
      await client.write(0, Buffer.from('hello'));
      assert.equal((await client.read(0, 5)).toString(), 'hello');
      await assert.rejects(client.read(1 << 20, 1), (e: NbdReplyError) => e.errno === P.NBD_EINVAL);
      await client.disconnect();
    });

    it('lets two connections see each other’s writes, and says so with CAN_MULTI_CONN', async () => {
      const [a, b] = await Promise.all(
        [1, 2].map(() => NbdClient.connect(unix, { exportName: 'disk' })),
      );
      assert.ok(a!.transmissionFlags & P.NBD_FLAG_CAN_MULTI_CONN);
      await a!.write(65536, Buffer.alloc(512, 7));
      await a!.flush();
      assert.deepEqual(await b!.read(65536, 512), Buffer.alloc(512, 7));
      await Promise.all([a!.disconnect(), b!.disconnect()]);
    });

    it('refuses GO for an unknown export and keeps the connection for another try', async () => {
      await assert.rejects(
        NbdClient.connect(unix, { exportName: 'nope' }),
        (e: NbdReplyError) => e.errno === P.NBD_REP_ERR_UNKNOWN,
      );
    });

    it('closes a connection with a bad option magic and keeps serving others', async () => {
      const socket = await openSocket(unix);
      const reader = new SocketReader(socket);
      await reader.read(18);
      socket.write(Buffer.concat([Buffer.alloc(4), Buffer.from('IHAVEOPX'), Buffer.alloc(8)]));
      await closed(socket);
      const client = await NbdClient.connect(unix, { exportName: 'disk' });
      await client.read(0, 1);
      await client.disconnect();
      assert.equal(server.counters().closedByServer.CONTINUUM_ERR_NBD_BAD_MAGIC, 1);
    });

    it('skips an oversized option, answers TOO_BIG, then acknowledges ABORT and closes', async () => {
      const socket = await openSocket(unix);
      const reader = new SocketReader(socket);
      await reader.read(18);
      socket.write(Buffer.from([0, 0, 0, 3]));
      socket.write(encodeOption(P.NBD_OPT_INFO, Buffer.alloc(200_000, 1)));
      assert.equal((await readOptionReply(reader)).type, P.NBD_REP_ERR_TOO_BIG);
      socket.write(encodeOption(P.NBD_OPT_ABORT));
      assert.equal((await readOptionReply(reader)).type, P.NBD_REP_ACK);
      await closed(socket);
    });

    it('counts connections, requests and bytes', () => {
      const counters = server.counters();
      assert.ok(counters.connectionsAccepted >= 7);
      assert.ok(counters.handshakesCompleted >= 5);
      assert.ok(counters.bytesWritten >= 8192 + 5 + 512);
      assert.ok(counters.bytesRead >= 8192 + 104 + 5 + 512);
      assert.ok(counters.errorReplies >= 1);
      // By export too: the first test's flush and trim, and every byte of the export "disk".
      const disk = counters.byExport.disk!;
      assert.ok(disk.flushes >= 1 && disk.trims >= 1 && disk.writes >= 1 && disk.reads >= 2);
      assert.equal(disk.bytesWritten, counters.bytesWritten);
      assert.equal(disk.bytesRead, counters.bytesRead);
    });
  });

  it('serves over TCP on a port it picks, with the URI clients take', async () => {
    const { server } = newServer();
    const address = await server.listen({ host: '127.0.0.1', port: 0 });
    assert.equal(address.kind, 'tcp');
    assert.match(nbdUri(address, 'disk'), /^nbd:\/\/127\.0\.0\.1:\d+\/disk$/);
    const client = await NbdClient.connect(address, { exportName: 'disk' });
    await client.write(0, Buffer.from('tcp'));
    assert.equal((await client.read(0, 3)).toString(), 'tcp');
    await client.disconnect();
    await server.close();
  });

  it('closes a client that does not finish the handshake in time', async () => {
    const { server } = newServer({ handshakeTimeoutMs: 50 });
    const address = await server.listen({ socketPath: socketPath() });
    const socket = await openSocket(address);
    await closed(socket);
    assert.equal(server.counters().closedByServer.CONTINUUM_ERR_NBD_HANDSHAKE_TIMEOUT, 1);
    await server.close();
  });

  it('refuses connections beyond connectionsMax', async () => {
    const { server } = newServer({ connectionsMax: 2 });
    const address = await server.listen({ socketPath: socketPath() });
    const clients = await Promise.all(
      [1, 2].map(() => NbdClient.connect(address, { exportName: 'disk' })),
    );
    const third = await openSocket(address);
    await closed(third);
    assert.equal(server.counters().connectionsRefused, 1);
    await clients[0]!.disconnect();
    await until(() => server.counters().connectionsOpen === 1, 'one connection left');
    const fourth = await NbdClient.connect(address, { exportName: 'disk' });
    await Promise.all([clients[1]!.disconnect(), fourth.disconnect()]);
    await server.close();
  });

  it('drains on close(): requests in flight finish, then connections end', async () => {
    const { device, server } = newServer();
    const address = await server.listen({ socketPath: socketPath() });
    const client = await NbdClient.connect(address, { exportName: 'disk' });
    await client.write(0, Buffer.from('kept'));
    device.hold();
    const read = client.read(0, 4);
    await until(() => device.held === 1, 'read at the device');
    let closedAll = false;
    const closing = server.close().then(() => (closedAll = true));
    const gone = closed(client.socket);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(closedAll, false, 'close waits for the request in flight');
    device.release();
    assert.equal((await read).toString(), 'kept');
    await closing;
    await gone;
    await assert.rejects(server.listen({ socketPath: socketPath() }));
  });

  it('validates its limits when created', () => {
    assert.throws(() => newServer({ inFlightRequestsMax: 0 }), /inFlightRequestsMax/);
    assert.throws(
      () => newServer({ requestBytesMax: 1 << 30, inFlightBytesMax: 1 << 20 }),
      /inFlightBytesMax/,
    );
  });
});
