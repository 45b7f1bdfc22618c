// Thousands of hostile connections against one live server (seeded: NBD_FUZZ_SEED, NBD_FUZZ_CASES,
// NBD_FUZZ_CASE to replay one), eight at a time, while a well-behaved client writes and verifies
// data on another export throughout and real clients check in now and then. The server must answer
// every well-framed request exactly once, close the connections that break the protocol, leak no
// connection, and never stop serving the good client.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  encodeOption,
  NbdClient,
  openSocket,
  readOptionReply,
} from '../../src/storage/nbd/client.js';
import {
  CapableMemoryBlockDevice,
  MemoryBlockDevice,
} from '../../src/storage/nbd/memory-device.js';
import * as P from '../../src/storage/nbd/protocol.js';
import { type NbdAddress, NbdServer, nbdUri } from '../../src/storage/nbd/server.js';
import { SocketReader } from '../../src/storage/nbd/socket-reader.js';
import { until } from '../../src/storage/nbd/test-support.js';
import {
  encodeFuzzRequest,
  type FuzzTarget,
  fuzzCase,
  type RawCase,
  type SessionCase,
} from './fuzz-cases.js';
import { join } from 'node:path';
import { missingTools, runOk, tempDir } from './harness.js';

const SEED = Number(process.env.NBD_FUZZ_SEED ?? 20261122);
const CASES = Number(process.env.NBD_FUZZ_CASES ?? 5000);
const ONLY =
  process.env.NBD_FUZZ_CASE === undefined ? undefined : Number(process.env.NBD_FUZZ_CASE);
const PARALLEL = 8;
const REPLY_DEADLINE_MS = 5000;
const target: FuzzTarget = { exportName: 'fuzz', sizeBytes: 16 << 20, requestBytesMax: 256 << 10 };

function withDeadline<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no ${what} within ${REPLY_DEADLINE_MS} ms`)),
      REPLY_DEADLINE_MS,
    );
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

async function runRaw(address: NbdAddress, fuzz: RawCase): Promise<void> {
  const socket = await openSocket(address);
  socket.on('error', () => {});
  socket.on('data', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  for (const step of fuzz.steps) {
    if (socket.destroyed) break;
    if (step.kind === 'send') socket.write(step.bytes);
    else await new Promise((resolve) => setImmediate(resolve));
  }
  if (fuzz.finish === 'destroy') socket.destroy();
  else if (fuzz.finish === 'end') socket.end();
  await withDeadline(closed, 'close from the server');
}

/** A real handshake, the requests pipelined, then exactly one well-formed reply for each. */
async function runSession(address: NbdAddress, fuzz: SessionCase): Promise<void> {
  const socket = await openSocket(address);
  socket.on('error', () => {});
  const reader = new SocketReader(socket);
  try {
    await reader.read(18);
    socket.write(Buffer.from([0, 0, 0, 3]));
    if (fuzz.structured) {
      socket.write(encodeOption(P.NBD_OPT_STRUCTURED_REPLY));
      assert.equal((await readOptionReply(reader)).type, P.NBD_REP_ACK);
    }
    if (fuzz.metaContext) {
      const name = Buffer.from(target.exportName);
      const query = Buffer.from(P.BASE_ALLOCATION);
      const data = Buffer.alloc(12 + name.length + query.length);
      data.writeUInt32BE(name.length, 0);
      name.copy(data, 4);
      data.writeUInt32BE(1, 4 + name.length);
      data.writeUInt32BE(query.length, 8 + name.length);
      query.copy(data, 12 + name.length);
      socket.write(encodeOption(P.NBD_OPT_SET_META_CONTEXT, data));
      while ((await readOptionReply(reader)).type === P.NBD_REP_META_CONTEXT);
    }
    const go = Buffer.alloc(6 + target.exportName.length);
    go.writeUInt32BE(target.exportName.length, 0);
    go.write(target.exportName, 4);
    socket.write(encodeOption(P.NBD_OPT_GO, go));
    for (
      let reply = await readOptionReply(reader);
      reply.type !== P.NBD_REP_ACK;
      reply = await readOptionReply(reader)
    ) {
      assert.equal(reply.type, P.NBD_REP_INFO);
    }
    socket.write(Buffer.concat(fuzz.requests.map((r) => encodeFuzzRequest(r))));
    const waiting = new Map(fuzz.requests.map((r) => [r.handleLow, r]));
    while (waiting.size > 0)
      await withDeadline(readReply(reader, waiting, fuzz.structured), 'reply');
    const disc = encodeFuzzRequest({
      type: P.NBD_CMD_DISC,
      flags: 0,
      handleHigh: 0,
      handleLow: 0,
      offset: 0,
      length: 0,
    });
    const closed = new Promise<void>((resolve) =>
      socket.destroyed ? resolve() : socket.once('close', () => resolve()),
    );
    socket.write(disc);
    await withDeadline(closed, 'close after NBD_CMD_DISC');
  } finally {
    socket.destroy();
  }
}

async function readReply(
  reader: SocketReader,
  waiting: Map<number, { type: number; length: number; handleHigh: number }>,
  structured: boolean,
): Promise<void> {
  const head = await reader.read(4);
  const magic = head.readUInt32BE(0);
  if (magic === P.NBD_SIMPLE_REPLY_MAGIC) {
    const rest = await reader.read(12);
    const request = waiting.get(rest.readUInt32BE(8));
    assert.ok(request !== undefined, 'simple reply for a handle not in flight');
    assert.equal(rest.readUInt32BE(4), request.handleHigh, 'the whole 64-bit handle is echoed');
    assert.ok(
      !(structured && request.type === P.NBD_CMD_READ),
      'reads get structured replies once negotiated',
    );
    if (rest.readUInt32BE(0) === 0 && request.type === P.NBD_CMD_READ)
      await reader.read(request.length);
    waiting.delete(rest.readUInt32BE(8));
    return;
  }
  assert.equal(magic, P.NBD_STRUCTURED_REPLY_MAGIC, 'reply magic');
  assert.ok(structured, 'structured reply only after negotiation');
  const rest = await reader.read(16);
  const request = waiting.get(rest.readUInt32BE(8));
  assert.ok(request !== undefined, 'structured reply for a handle not in flight');
  assert.equal(rest.readUInt16BE(0), P.NBD_REPLY_FLAG_DONE, 'single-chunk replies end with DONE');
  const length = rest.readUInt32BE(12);
  if (rest.readUInt16BE(2) === P.NBD_REPLY_TYPE_OFFSET_DATA)
    assert.equal(length, 8 + request.length);
  await reader.read(length);
  waiting.delete(rest.readUInt32BE(8));
}

describe('NBD server under fuzzing', () => {
  const dir = tempDir('nbd-fuzz-');
  const good = new MemoryBlockDevice({ sizeBytes: 1 << 20 });
  const server = new NbdServer({
    lookupExport: (name) =>
      name === 'good'
        ? good
        : name === 'fuzz'
          ? new CapableMemoryBlockDevice({ sizeBytes: target.sizeBytes })
          : undefined,
    listExports: () => [{ name: 'good' }, { name: 'fuzz' }],
    limits: {
      requestBytesMax: target.requestBytesMax,
      inFlightBytesMax: 1 << 20,
      inFlightRequestsMax: 8,
      handshakeOptionsMax: 32,
      optionBytesMax: 8192,
      handshakeTimeoutMs: 3000,
      connectionsMax: 64,
    },
  });
  let address: NbdAddress;
  before(async () => {
    address = await server.listen({ socketPath: join(dir.path, 'nbd.sock') });
  });
  after(async () => {
    await server.close();
    dir.remove();
  });

  it(
    `survives ${ONLY === undefined ? CASES : 1} hostile cases (seed ${SEED}) while serving a good client`,
    { timeout: 120_000 },
    async () => {
      const client = await NbdClient.connect(address, {
        exportName: 'good',
        structuredReplies: true,
      });
      let stop = false;
      let rounds = 0;
      const goodLoop = (async () => {
        while (!stop) {
          const offset = (rounds % 256) * 4096;
          const data = Buffer.alloc(4096, rounds & 255);
          await client.write(offset, data);
          assert.deepEqual(await client.read(offset, 4096), data, `good client round ${rounds}`);
          rounds++;
        }
      })();
      const realClients = missingTools('nbdinfo') === undefined;
      const indices = ONLY === undefined ? Array.from({ length: CASES }, (_, i) => i) : [ONLY];
      for (let at = 0; at < indices.length; at += PARALLEL) {
        await Promise.all(
          indices.slice(at, at + PARALLEL).map(async (index) => {
            const fuzz = fuzzCase(SEED, index, target);
            try {
              await (fuzz.kind === 'raw' ? runRaw(address, fuzz) : runSession(address, fuzz));
            } catch (error) {
              const message = error instanceof Error ? error.message : String(error);
              throw new Error(
                `fuzz case failed (${fuzz.label}); replay: NBD_FUZZ_SEED=${SEED} NBD_FUZZ_CASE=${index}\n${message}`,
              );
            }
          }),
        );
        if (realClients && at % 1000 === 0)
          await runOk('nbdinfo', ['--size', nbdUri(address, 'good')]);
      }
      stop = true;
      await goodLoop;
      assert.ok(rounds > 0, 'the good client made progress');
      await until(
        () => server.counters().connectionsOpen === 1,
        'every fuzz connection closed',
        10_000,
      );
      const counters = server.counters();
      if (ONLY === undefined) {
        assert.ok(
          (counters.closedByServer.CONTINUUM_ERR_NBD_BAD_MAGIC ?? 0) > 0,
          'bad magics were seen',
        );
        assert.ok(
          (counters.closedByServer.CONTINUUM_ERR_NBD_PAYLOAD_TOO_LARGE ?? 0) > 0,
          'huge writes were seen',
        );
        assert.ok(counters.errorReplies > 0, 'invalid requests were answered with errors');
      }
      await client.disconnect();
    },
  );
});
