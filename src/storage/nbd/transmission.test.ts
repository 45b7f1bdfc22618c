// The transmission parser and executor over a fake socket: request streams cut at any byte give
// the same replies, the in-flight and reply-queue limits pause and resume reading, violations and
// DISC end the connection the right way, and device errors become the right NBD error values.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { silentLogger } from '../../core/ports.js';
import { newCounters } from './counters.js';
import type { NbdProtocolError } from './errors.js';
import { type NbdLimits, resolveNbdLimits } from './limits.js';
import { CapableMemoryBlockDevice, MemoryBlockDevice } from './memory-device.js';
import * as P from './protocol.js';
import {
  encodeRequest,
  FakeSocket,
  parseReplies,
  type RequestFields,
  testSession,
  until,
} from './test-support.js';
import { Transmission, type TransmissionSocket } from './transmission.js';

const SIZE = 1024 * 1024;

function setup(
  options: {
    structured?: boolean;
    blockStatus?: boolean;
    readOnly?: boolean;
    limits?: Partial<NbdLimits>;
    capable?: boolean;
  } = {},
) {
  const deviceOptions = { sizeBytes: SIZE, blockSizeBytes: 4096 };
  const device =
    options.capable === true
      ? new CapableMemoryBlockDevice(deviceOptions)
      : new MemoryBlockDevice(deviceOptions);
  const socket = new FakeSocket();
  const events = {
    violations: [] as NbdProtocolError[],
    finished: 0,
    pollKicks: [] as number[],
    /** Requests in flight at each hold, and what each release got back. */
    pollHolds: [] as number[],
    pollReleases: [] as boolean[],
  };
  const counters = newCounters();
  const transmission = new Transmission(socket as unknown as TransmissionSocket, {
    session: testSession(device, options),
    limits: resolveNbdLimits(options.limits),
    counters,
    logger: silentLogger,
    loopPoll: {
      kick: (batchReplies) => events.pollKicks.push(batchReplies),
      hold: (requestsInFlight) => {
        events.pollHolds.push(requestsInFlight);
        return requestsInFlight !== 2; // Answers differ, so each release shows which it got.
      },
      release: (held) => events.pollReleases.push(held),
    },
    onViolation: (error) => events.violations.push(error),
    onFinished: () => events.finished++,
  });
  return { device, socket, transmission, events, counters };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

/** Each request of a generated stream gets its own slot, so results do not depend on timing. */
const SLOT = 80 * 1024;
const requestArbitrary: fc.Arbitrary<RequestFields> = fc.oneof(
  fc.record({
    type: fc.constant(P.NBD_CMD_WRITE),
    handle: fc.constant(0),
    offset: fc.integer({ min: 0, max: 9000 }),
    data: fc.uint8Array({ minLength: 1, maxLength: 70000 }).map((a) => Buffer.from(a)),
  }),
  fc.record({
    type: fc.constant(P.NBD_CMD_READ),
    handle: fc.constant(0),
    offset: fc.integer({ min: 0, max: 9000 }),
    length: fc.integer({ min: 0, max: 70000 }),
  }),
  fc.constant<RequestFields>({ type: P.NBD_CMD_FLUSH, handle: 0 }),
  fc.constant<RequestFields>({ type: 99, handle: 0 }),
);

async function prefill(device: MemoryBlockDevice): Promise<void> {
  const pattern = Buffer.alloc(SIZE);
  for (let i = 0; i < SIZE; i++) pattern[i] = (i * 7 + (i >> 12)) & 255;
  await device.write(0, pattern);
}

describe('transmission', () => {
  it('gives the same replies and data however the request stream is cut', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(requestArbitrary, { minLength: 1, maxLength: 12 }),
        fc.array(fc.integer({ min: 1, max: 70000 }), { minLength: 1, maxLength: 40 }),
        fc.boolean(),
        fc.boolean(),
        async (requests, cuts, structured, capable) => {
          const numbered = requests.map((r, i) => ({
            ...r,
            handle: i + 1,
            offset: i * SLOT + (r.offset ?? 0),
          }));
          const stream = Buffer.concat(numbered.map(encodeRequest));
          const readLengths = new Map(
            numbered.filter((r) => r.type === P.NBD_CMD_READ).map((r) => [r.handle, r.length ?? 0]),
          );
          const whole = setup({ structured });
          const pieces = setup({ structured, capable });
          await Promise.all([prefill(whole.device), prefill(pieces.device)]);
          whole.transmission.consume(stream);
          let at = 0;
          for (let i = 0; at < stream.length; i++) {
            const step = cuts[i % cuts.length]!;
            pieces.transmission.consume(stream.subarray(at, at + step));
            at += step;
          }
          await settle();
          const byHandle = (s: FakeSocket) =>
            parseReplies(s.bytes(), readLengths).sort((a, b) => a.handle - b.handle);
          const expected = byHandle(whole.socket);
          assert.equal(expected.length, numbered.length);
          assert.deepEqual(byHandle(pieces.socket), expected);
          const all = async (d: MemoryBlockDevice) => d.read(0, SIZE);
          assert.deepEqual(await all(pieces.device), await all(whole.device));
        },
      ),
      { numRuns: 150 },
    );
  });

  it('answers a read after a write with the written bytes, simple and structured', async () => {
    for (const [structured, capable] of [
      [false, false],
      [true, false],
      [true, true],
    ] as const) {
      const { socket, transmission, device } = setup({ structured, capable });
      const data = Buffer.alloc(100000, 0x5a);
      // The payload arrives in three pieces, so a capable device gets it as parts.
      const stream = encodeRequest({ type: P.NBD_CMD_WRITE, handle: 1, offset: 100, data });
      transmission.consume(stream.subarray(0, 30000));
      transmission.consume(stream.subarray(30000, 70000));
      transmission.consume(stream.subarray(70000));
      await settle();
      transmission.consume(
        encodeRequest({ type: P.NBD_CMD_READ, handle: 2, offset: 100, length: 100000 }),
      );
      await settle();
      const replies = parseReplies(socket.bytes(), new Map([[2, 100000]]));
      assert.deepEqual(
        replies.map((r) => [r.handle, r.errno]),
        [
          [1, 0],
          [2, 0],
        ],
      );
      assert.deepEqual(replies[1]!.data, data);
      if (structured) assert.equal(replies[1]!.offset, 100);
      if (device instanceof CapableMemoryBlockDevice) {
        assert.deepEqual(device.capabilityCalls, { readInto: 1, writev: 1 });
      }
    }
  });

  it('sends the replies of one turn of the event loop in one flush, then polls once', async () => {
    const { socket, transmission, events } = setup({ structured: true });
    const requests = [1, 2, 3, 4, 5].map((handle) =>
      encodeRequest({
        type: handle % 2 === 0 ? P.NBD_CMD_FLUSH : P.NBD_CMD_READ,
        handle,
        length: 100,
      }),
    );
    transmission.consume(Buffer.concat(requests));
    await settle();
    assert.equal(parseReplies(socket.bytes(), new Map()).length, 5);
    assert.equal(socket.flushes, 1);
    assert.equal(socket.corked, 0);
    // The poll hears of the batch once, with its size (five replies: it will not turn).
    assert.deepEqual(events.pollKicks, [5]);
    // A lone read (header and data): a batch of one, after which the loop polls.
    transmission.consume(encodeRequest({ type: P.NBD_CMD_READ, handle: 6, length: 100 }));
    await settle();
    assert.deepEqual(events.pollKicks, [5, 1]);
  });

  it('holds the poll over each device call with the requests in flight, and releases it', async () => {
    const { device, socket, transmission, events } = setup();
    device.hold();
    const requests = [1, 2, 3].map((handle) =>
      encodeRequest({ type: handle === 2 ? P.NBD_CMD_FLUSH : P.NBD_CMD_READ, handle, length: 8 }),
    );
    transmission.consume(Buffer.concat(requests));
    await until(() => device.held === 3, 'three requests at the device');
    assert.deepEqual(events.pollHolds, [1, 2, 3], 'each call holds, counting those before it');
    assert.deepEqual(events.pollReleases, [], 'nothing released while the device works');
    device.release();
    const lengths = new Map([
      [1, 8],
      [3, 8],
    ]);
    await until(() => parseReplies(socket.bytes(), lengths).length === 3, 'three replies');
    assert.deepEqual(events.pollReleases, [true, false, true], 'each release gets its answer');
  });

  it('stops reading at inFlightRequestsMax and resumes as requests finish', async () => {
    const { device, socket, transmission } = setup({ limits: { inFlightRequestsMax: 4 } });
    device.hold();
    const reads = Array.from({ length: 10 }, (_, i) =>
      encodeRequest({ type: P.NBD_CMD_READ, handle: i + 1, length: 512 }),
    );
    transmission.consume(Buffer.concat(reads));
    await until(() => device.held === 4, 'four reads at the device');
    assert.equal(socket.paused, true);
    assert.equal(transmission.requestsInFlight, 4);
    device.release();
    const readLengths = new Map(Array.from({ length: 10 }, (_, i) => [i + 1, 512]));
    await until(() => parseReplies(socket.bytes(), readLengths).length === 10, 'ten replies');
    assert.equal(socket.paused, false);
  });

  it('stops reading while the client leaves replies unread, until the socket drains', async () => {
    const { socket, transmission } = setup({ limits: { replyQueueBytesMax: 65536 } });
    socket.writableLength = 100000;
    transmission.consume(
      Buffer.concat([1, 2].map((handle) => encodeRequest({ type: P.NBD_CMD_FLUSH, handle }))),
    );
    await settle();
    assert.equal(
      socket.written.length,
      0,
      'nothing parsed while the reply queue is over its limit',
    );
    assert.equal(socket.paused, true);
    socket.writableLength = 0;
    socket.emit('drain');
    await until(() => socket.written.length === 2, 'both flushes answered');
  });

  it('reports a bad magic as a violation and parses nothing after it', async () => {
    const { socket, transmission, events } = setup();
    transmission.consume(
      Buffer.concat([
        encodeRequest({ type: P.NBD_CMD_FLUSH, handle: 1, magic: 0x12345678 }),
        encodeRequest({ type: P.NBD_CMD_FLUSH, handle: 2 }),
      ]),
    );
    await settle();
    assert.equal(events.violations[0]?.code, 'CONTINUUM_ERR_NBD_BAD_MAGIC');
    assert.equal(socket.written.length, 0);
  });

  it('treats a write payload above requestBytesMax as a violation before reading it', () => {
    const { transmission, events } = setup({ limits: { requestBytesMax: 65536 } });
    transmission.consume(encodeRequest({ type: P.NBD_CMD_WRITE, handle: 1, length: 65537 }));
    assert.equal(events.violations[0]?.code, 'CONTINUUM_ERR_NBD_PAYLOAD_TOO_LARGE');
  });

  it('finishes the requests in flight before ending on DISC', async () => {
    const { device, socket, transmission, events } = setup();
    device.hold();
    transmission.consume(
      Buffer.concat([
        encodeRequest({ type: P.NBD_CMD_READ, handle: 1, length: 16 }),
        encodeRequest({ type: P.NBD_CMD_DISC, handle: 2 }),
        encodeRequest({ type: P.NBD_CMD_READ, handle: 3, length: 16 }),
      ]),
    );
    await until(() => device.held === 1, 'the read at the device');
    assert.equal(events.finished, 0);
    device.release();
    await until(() => events.finished === 1, 'finished');
    assert.deepEqual(
      parseReplies(socket.bytes(), new Map([[1, 16]])).map((r) => r.handle),
      [1],
    );
  });

  it('refuses new requests with ESHUTDOWN while draining and finishes when idle', async () => {
    const { device, socket, transmission, events } = setup({ structured: true });
    device.hold();
    transmission.consume(encodeRequest({ type: P.NBD_CMD_READ, handle: 1, length: 8 }));
    await until(() => device.held === 1, 'read held');
    transmission.drain();
    transmission.consume(encodeRequest({ type: P.NBD_CMD_FLUSH, handle: 2 }));
    await settle();
    assert.equal(events.finished, 0);
    device.release();
    await until(() => events.finished === 1, 'drained');
    const replies = parseReplies(socket.bytes(), new Map());
    assert.deepEqual(
      replies.map((r) => [r.handle, r.errno]),
      [
        [2, P.NBD_ESHUTDOWN],
        [1, 0],
      ],
    );
  });

  it('maps refusals and device failures to NBD error values', async () => {
    const { device, socket, transmission, counters } = setup({ structured: true });
    device.failNext('read', 'io');
    device.failNext('flush', 'no-space');
    const requests: RequestFields[] = [
      { type: P.NBD_CMD_READ, handle: 1, length: 8 },
      { type: P.NBD_CMD_FLUSH, handle: 2 },
      { type: P.NBD_CMD_READ, handle: 3, offset: SIZE - 4, length: 8 },
      { type: P.NBD_CMD_WRITE, handle: 4, offset: SIZE - 4, data: Buffer.alloc(8) },
      { type: P.NBD_CMD_READ, handle: 5, length: 8, flags: P.NBD_CMD_FLAG_NO_HOLE },
      { type: P.NBD_CMD_BLOCK_STATUS, handle: 6, length: 8 },
      { type: 5, handle: 7 },
    ];
    transmission.consume(Buffer.concat(requests.map(encodeRequest)));
    await settle();
    const errors = parseReplies(socket.bytes(), new Map())
      .sort((a, b) => a.handle - b.handle)
      .map((r) => r.errno);
    assert.deepEqual(errors, [
      P.NBD_EIO,
      P.NBD_ENOSPC,
      P.NBD_EINVAL,
      P.NBD_ENOSPC,
      P.NBD_EINVAL,
      P.NBD_EINVAL,
      P.NBD_EINVAL,
    ]);
    assert.equal(counters.errorReplies, 7);
  });

  it('refuses writes, trims and zeroes on a read-only export with EPERM', async () => {
    const { socket, transmission } = setup({ readOnly: true });
    const types = [P.NBD_CMD_WRITE, P.NBD_CMD_TRIM, P.NBD_CMD_WRITE_ZEROES];
    transmission.consume(
      Buffer.concat(
        types.map((type, i) =>
          encodeRequest({
            type,
            handle: i + 1,
            length: 4,
            data: type === P.NBD_CMD_WRITE ? Buffer.alloc(4) : undefined,
          }),
        ),
      ),
    );
    await settle();
    assert.deepEqual(
      parseReplies(socket.bytes(), new Map()).map((r) => r.errno),
      [P.NBD_EPERM, P.NBD_EPERM, P.NBD_EPERM],
    );
  });

  it('reports holes left by trim and write-zeroes, and honours REQ_ONE', async () => {
    const { device, socket, transmission } = setup({ structured: true, blockStatus: true });
    await device.write(0, Buffer.alloc(SIZE, 1));
    transmission.consume(
      Buffer.concat([
        encodeRequest({ type: P.NBD_CMD_TRIM, handle: 1, offset: 8192, length: 8192 }),
        encodeRequest({
          type: P.NBD_CMD_WRITE_ZEROES,
          handle: 2,
          offset: 16384,
          length: 4096,
          flags: P.NBD_CMD_FLAG_NO_HOLE,
        }),
      ]),
    );
    await settle();
    transmission.consume(
      Buffer.concat([
        encodeRequest({ type: P.NBD_CMD_BLOCK_STATUS, handle: 3, offset: 4096, length: 20000 }),
        encodeRequest({
          type: P.NBD_CMD_BLOCK_STATUS,
          handle: 4,
          offset: 8192,
          length: 20000,
          flags: P.NBD_CMD_FLAG_REQ_ONE,
        }),
      ]),
    );
    await settle();
    const replies = parseReplies(socket.bytes(), new Map());
    const hole = P.NBD_STATE_HOLE | P.NBD_STATE_ZERO;
    assert.deepEqual(replies[2]!.extents, [
      { length: 4096, flags: 0 },
      { length: 8192, flags: hole },
      { length: 20000 - 12288, flags: 0 },
    ]);
    assert.deepEqual(replies[3]!.extents, [{ length: 8192, flags: hole }]);
  });
});
