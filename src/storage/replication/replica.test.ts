// The replica core driven message by message over an in-memory link, as a primary (or a broken
// peer) would: epochs refused and persisted before answers, mutations applied in arrival order
// and acked, flushes after earlier mutations, generations adopted, one primary link at a time,
// and a bad frame or message closing only that link.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Logger } from '../../core/ports.js';
import { FakeClock } from '../../sim/fake-clock.js';
import { mulberry32 } from '../../sim/rng.js';
import { eventually, settled, tick } from './cluster-harness.js';
import { replicationLimits } from './limits.js';
import { openReplica } from './replica.js';
import {
  ChecksumMemoryDevice,
  linkPair,
  MemoryStateStore,
  type TestLinkEnd,
} from './test-support.js';
import type { ReplicaHandle } from './types.js';
import type { ReplicationMessage } from './wire.js';

const volume = 'vol-1';

function recordingLogger(lines: string[]): Logger {
  const logger: Logger = {
    log: (level, message, fields) =>
      lines.push(`${level} ${message} ${JSON.stringify(fields ?? {})}`),
    child: () => logger,
  };
  return logger;
}

async function replicaOf(
  options: { epoch?: number; state?: MemoryStateStore; logs?: string[] } = {},
) {
  const device = new ChecksumMemoryDevice({ sizeBytes: 1024 * 1024 });
  const state = options.state ?? new MemoryStateStore();
  const context = {
    node: 'b',
    clock: new FakeClock(),
    random: mulberry32(1),
    logger: recordingLogger(options.logs ?? []),
    limits: replicationLimits(),
  };
  const handle = await openReplica({ context, volume, device, state, epoch: options.epoch ?? 3 });
  return { device, state, handle };
}

/** A link from a pretend primary at `epoch`; returns the primary's end and what it received. */
function connect(handle: ReplicaHandle, epoch: number, encoded = true) {
  const [primaryEnd, replicaEnd] = linkPair({ encoded });
  const received: ReplicationMessage[] = [];
  primaryEnd.onMessage((message) => received.push(message));
  handle.accept(replicaEnd, { volume, primaryNode: 'a', epoch });
  return { primaryEnd, replicaEnd, received };
}

const ofType = <T extends ReplicationMessage['type']>(messages: ReplicationMessage[], type: T) =>
  messages.filter((m): m is Extract<ReplicationMessage, { type: T }> => m.type === type);

describe('replica', () => {
  it('persists the assigned epoch at open and answers REPL_HELLO', async () => {
    const { state, handle } = await replicaOf({ epoch: 3 });
    assert.equal(state.meta?.highestEpoch, 3);
    const { received } = connect(handle, 3);
    await eventually(() => received.length > 0);
    assert.deepEqual(received[0], {
      type: 'REPL_HELLO',
      volume,
      replicaNode: 'b',
      acceptedEpoch: 3,
      generation: '0000000000000000',
      dataGenerationCounter: 0,
    });
  });

  it('refuses an open below the accepted epoch with REPL_FENCED and closes the link', async () => {
    const { handle } = await replicaOf({ epoch: 3 });
    const { primaryEnd, received } = connect(handle, 2);
    await eventually(() => primaryEnd.closed && received.length > 0);
    assert.equal(received.length, 1, 'no REPL_HELLO for an older primary');
    const [fenced] = ofType(received, 'REPL_FENCED');
    assert.equal(fenced?.acceptedEpoch, 3);
    assert.match(fenced.message, /accepted epoch 3; open at epoch 2 from a is refused/);
  });

  it('persists REPL_ACCEPT_EPOCH before answering, then fences the older link', async () => {
    const { state, handle } = await replicaOf({ epoch: 3 });
    const old = connect(handle, 3);
    await eventually(() => old.received.length === 1);
    const newer = connect(handle, 4);
    await eventually(() => old.primaryEnd.closed, { what: 'older link replaced' });
    state.holdSaves();
    newer.primaryEnd.send({ type: 'REPL_ACCEPT_EPOCH', epoch: 4 });
    await settled(Promise.resolve());
    assert.equal(
      ofType(newer.received, 'REPL_EPOCH_ACCEPTED').length,
      0,
      'answered before persisting',
    );
    state.releaseSaves();
    await eventually(() => ofType(newer.received, 'REPL_EPOCH_ACCEPTED').length === 1);
    assert.equal(state.meta?.highestEpoch, 4);
    assert.equal(handle.highestEpoch, 4);
    // A mutation from a link at the old epoch is refused.
    const stale = connect(handle, 3);
    await eventually(() => stale.primaryEnd.closed && stale.received.length > 0);
    assert.equal(ofType(stale.received, 'REPL_FENCED').length, 1);
  });

  it('applies overlapping mutations in arrival order and acks each once written', async () => {
    const { device, handle } = await replicaOf();
    const { primaryEnd, received } = connect(handle, 3);
    const write = (seq: bigint, byte: number, offset: number, length: number) =>
      primaryEnd.send({
        type: 'REPL_WRITE',
        seq,
        epoch: 3,
        offset,
        fua: false,
        data: Buffer.alloc(length, byte),
      });
    device.hold();
    write(1n, 1, 0, 8192);
    write(2n, 2, 4096, 8192);
    primaryEnd.send({
      type: 'REPL_WRITE_ZEROES',
      seq: 3n,
      epoch: 3,
      offset: 0,
      length: 2048,
      fua: false,
    });
    primaryEnd.send({ type: 'REPL_FLUSH', seq: 3n, epoch: 3 });
    await eventually(() => device.held > 0);
    assert.equal(ofType(received, 'REPL_ACK').length, 0, 'nothing acked before it is written');
    device.release();
    await eventually(() => ofType(received, 'REPL_ACK').length === 4);
    const acks = ofType(received, 'REPL_ACK').map((ack) => `${ack.seq}:${ack.kind}`);
    assert.deepEqual(acks.at(-1), '3:durable', 'the flush answers after every earlier mutation');
    const data = await device.read(0, 12288);
    assert.deepEqual(data.subarray(0, 2048), Buffer.alloc(2048));
    assert.deepEqual(data.subarray(2048, 4096), Buffer.alloc(2048, 1));
    assert.deepEqual(data.subarray(4096), Buffer.alloc(8192, 2));
  });

  it('adopts REPL_GENERATION (persisted) and announces it on the next link', async () => {
    const { state, handle } = await replicaOf();
    const first = connect(handle, 3);
    first.primaryEnd.send({ type: 'REPL_GENERATION', epoch: 3, generation: '00000000000000ab' });
    await eventually(() => state.meta?.generations[0] === '00000000000000ab');
    const second = connect(handle, 3);
    await eventually(() => first.primaryEnd.closed && second.received.length === 1);
    assert.equal(ofType(second.received, 'REPL_HELLO')[0]?.generation, '00000000000000ab');
  });

  it('answers REPL_READ_CHECKSUMS with the blocks asked', async () => {
    const { device, handle } = await replicaOf();
    await device.write(4096, Buffer.alloc(4096, 7));
    const { primaryEnd, received } = connect(handle, 3);
    primaryEnd.send({ type: 'REPL_READ_CHECKSUMS', epoch: 3, startBlock: 0, blockCount: 3 });
    await eventually(() => ofType(received, 'REPL_CHECKSUMS').length === 1);
    const [answer] = ofType(received, 'REPL_CHECKSUMS');
    assert.deepEqual([...answer!.allocated], [0, 1, 0]);
    assert.deepEqual([...answer!.checksums], [...(await device.readChecksums(0, 3)).checksums]);
  });

  describe('a bad frame or message closes that link only, with a logged reason', () => {
    const cases: [string, (end: TestLinkEnd) => void, RegExp][] = [
      [
        'garbage bytes',
        (end) => end.sendRaw(Buffer.from('GET / HTTP/1.1\r\n\r\n')),
        /malformed frame: .*magic/,
      ],
      [
        'a message only a replica sends',
        (end) => end.send({ type: 'REPL_ACK', seq: 1n, kind: 'written' }),
        /unexpected REPL_ACK/,
      ],
      [
        'a write past the end',
        (end) =>
          end.send({
            type: 'REPL_WRITE',
            seq: 1n,
            epoch: 3,
            offset: 1024 * 1024 - 1,
            fua: false,
            data: Buffer.alloc(2),
          }),
        /past the end/,
      ],
      [
        'an epoch other than the link’s',
        (end) => end.send({ type: 'REPL_FLUSH', seq: 1n, epoch: 4 }),
        /REPL_FLUSH at epoch 4 on a link opened at 3/,
      ],
      [
        'checksums of blocks past the end',
        (end) =>
          end.send({ type: 'REPL_READ_CHECKSUMS', epoch: 3, startBlock: 255, blockCount: 2 }),
        /checksums of blocks 255\+2 of 256/,
      ],
    ];
    for (const [what, send, reason] of cases) {
      it(what, async () => {
        const logs: string[] = [];
        const { device, handle } = await replicaOf({ logs });
        const bad = connect(handle, 3);
        send(bad.primaryEnd);
        await eventually(() => bad.primaryEnd.closed, { what: 'link closed' });
        assert.match(bad.primaryEnd.reason ?? '', reason);
        assert.ok(logs.some((line) => /closing a primary link|primary link closed/.test(line)));
        // The replica still serves the next link.
        const good = connect(handle, 3);
        good.primaryEnd.send({
          type: 'REPL_WRITE',
          seq: 1n,
          epoch: 3,
          offset: 0,
          fua: false,
          data: Buffer.alloc(10, 1),
        });
        await eventually(() => ofType(good.received, 'REPL_ACK').length === 1);
        assert.deepEqual(await device.read(0, 10), Buffer.alloc(10, 1));
      });
    }
  });

  it('keeps the higher epoch when the assigned one is older, and refuses a meta of another volume', async () => {
    const state = new MemoryStateStore();
    state.meta = { volume, highestEpoch: 9, generations: [], dataGeneration: 0 };
    const { handle } = await replicaOf({ epoch: 3, state });
    assert.equal(handle.highestEpoch, 9);
    state.meta = { volume: 'other', highestEpoch: 1, generations: [], dataGeneration: 0 };
    await assert.rejects(replicaOf({ state }), /names volume other/);
    await handle.close();
    await tick();
  });
});
