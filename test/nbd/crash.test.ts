// Crash consistency of the whole stack over NBD (docs/nbd-server.md, "Durability"): a write, trim
// or write-zeroes is durable once a FLUSH sent after its reply has been answered, or once it was
// answered itself when it carried FUA.
//
// Every round starts the server in a child process (crash-server.ts) on the same store, reads the
// whole disk back through NBD and checks it against what the previous round may have left (see
// checkDisk), flushes (so what it read is the durable starting point of this round), then runs a
// seeded workload on one or two connections: writes of up to 256 KiB, aligned or not, each with its
// own pattern; write-zeroes and trims; FUA on some; FLUSHes, some after waiting for the
// connection's replies and some while requests are in flight; up to 16 requests in flight per
// connection. After a seeded number of acknowledgements, and while requests are in flight, the
// test SIGKILLs the server. A logical clock records when each request was sent and answered.
// Every other round the server runs with a 16 KiB journal, so its flushes rewrite the journal as
// checkpoints and some kills land in the middle of one.
//
// The model, per byte: the candidates are the starting contents and every operation sent that
// covers the byte; an operation X is ruled out when a durable operation D covering the byte was
// sent after X was answered (X certainly came first, and D is durable), and the starting contents
// are ruled out by any durable operation. The byte must hold one of the candidates that are left:
// a durable value may be replaced by an operation that may have come after it, never by an older
// value or by anything else. A trim zeroes the whole blocks inside its range and leaves partial
// blocks alone (VolumeDevice.trim); the block size is the preferred size the server advertises.
//
// The workload is fixed by the seed; when the server gets killed depends on timing, so a replay
// runs the same requests but may stop at another moment. NBD_CRASH_SEED=<n> replays a run,
// NBD_CRASH_ROUNDS=<n> changes the number of rounds.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { NbdClient, NbdReplyError } from '../../src/storage/nbd/client.js';
import * as P from '../../src/storage/nbd/protocol.js';
import { seededRandom } from '../../src/storage/engine/test-support.js';

const rounds = Number(process.env.NBD_CRASH_ROUNDS ?? '24');
const baseSeed = Number(process.env.NBD_CRASH_SEED ?? '20260311');
const diskBytes = 16 * 2 ** 20;
const exportName = 'disk';
const writeBytesMax = 256 * 1024;
/** Requests per round at most; the kill comes long before in practice. */
const opsPerRoundMax = 2000;
const readChunkBytes = 2 ** 20;
const startDeadlineMs = 20_000;
const roundDeadlineMs = 10_000;

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..');
const serverPath = path.join(here, 'crash-server.ts');

type OpKind = 'write' | 'zero' | 'trim' | 'flush';

interface Op {
  /** Unique in the whole run: round * 65536 + seq; the pattern of a write derives from it. */
  readonly id: number;
  readonly round: number;
  readonly seq: number;
  readonly client: number;
  readonly kind: OpKind;
  readonly offset: number;
  readonly length: number;
  readonly fua: boolean;
  /** The bytes the operation defines: the request range; for a trim the whole blocks inside. */
  readonly effectStart: number;
  readonly effectEnd: number;
  /** Logical clock when the request was sent, and when its reply arrived (Infinity: never). */
  readonly sentAt: number;
  ackedAt: number;
  durable: boolean;
}

// ---------------------------------------------------------------------------------------------
// Patterns: 32-bit words keyed by the operation and the absolute word index, so data that lands
// at the wrong offset, or comes from another write, does not match.

function patternWord(id: number, word: number): number {
  let h = Math.imul(id ^ 0x5bd1e995, 0x9e3779b1) ^ Math.imul(word + 0x7f4a7c15, 0x85ebca6b);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  h ^= h >>> 12;
  h = Math.imul(h, 0x297a2d39);
  h ^= h >>> 15;
  return h >>> 0;
}

/** The bytes operation `id` writes at [start, end) of the disk. */
function patternBytes(id: number, start: number, end: number): Buffer {
  const firstWord = Math.floor(start / 4);
  const words = new Uint32Array(Math.ceil(end / 4) - firstWord);
  for (let i = 0; i < words.length; i++) words[i] = patternWord(id, firstWord + i);
  return Buffer.from(words.buffer, start - firstWord * 4, end - start);
}

function describeOp(op: Op): string {
  const acked = op.ackedAt === Infinity ? 'unanswered' : `answered@${op.ackedAt}`;
  return (
    `#${op.seq} (round ${op.round}, conn ${op.client}) ${op.kind} ` +
    `[${op.offset}, +${op.length})${op.fua ? ' FUA' : ''} sent@${op.sentAt} ${acked}` +
    (op.durable ? ' DURABLE' : '')
  );
}

// ---------------------------------------------------------------------------------------------
// The server child.

interface ServerChild {
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  stderr(): string;
}

/** Server processes still running, with the promise of their exit; `after` kills them. */
const children = new Map<ChildProcess, Promise<void>>();

/** `smallJournal`: the server checkpoints its journal often (every other round does). */
function startServer(
  root: string,
  socketPath: string,
  smallJournal: boolean,
): Promise<ServerChild> {
  const journal = smallJournal ? ['small-journal'] : [];
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', serverPath, root, socketPath, ...journal],
    {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  let stdout = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      children.delete(child);
      resolve();
    });
  });
  children.set(child, exited);
  const server: ServerChild = { child, exited, stderr: () => stderr };
  return new Promise((resolve, reject) => {
    const fail = (why: string) => {
      clearTimeout(deadline);
      child.kill('SIGKILL');
      reject(new Error(`NBD crash server ${why}\nstdout: ${stdout}\nstderr: ${stderr}`));
    };
    const deadline = setTimeout(() => fail('did not get ready in time'), startDeadlineMs);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      stdout += chunk;
      if (stdout.split('\n').includes('ready')) {
        clearTimeout(deadline);
        resolve(server);
      }
    });
    child.once('exit', (code, signal) => fail(`exited (${signal ?? code}) before ready`));
    child.once('error', (error) => fail(`failed to start: ${error.message}`));
  });
}

async function killServer(server: ServerChild): Promise<void> {
  if (server.child.exitCode === null && server.child.signalCode === null) {
    server.child.kill('SIGKILL');
  }
  await server.exited;
}

// ---------------------------------------------------------------------------------------------
// Reading back and checking.

async function readDisk(client: NbdClient): Promise<Buffer> {
  const chunks: Promise<Buffer>[] = [];
  for (let offset = 0; offset < diskBytes; offset += readChunkBytes) {
    chunks.push(client.read(offset, Math.min(readChunkBytes, diskBytes - offset)));
  }
  return Buffer.concat(await Promise.all(chunks));
}

interface CheckStats {
  /** Bytes some durable operation of the round covers: they may not hold the older contents. */
  durableBytes: number;
}

type Candidate = { kind: 'baseline' } | { kind: 'op'; op: Op };

function candidateBytes(candidate: Candidate, baseline: Buffer, start: number, end: number) {
  if (candidate.kind === 'baseline') return baseline.subarray(start, end);
  const { op } = candidate;
  return op.kind === 'write' ? patternBytes(op.id, start, end) : Buffer.alloc(end - start);
}

/** Which of the round's operations (or the starting contents) the bytes at `at` look like. */
function explain(actual: Buffer, baseline: Buffer, ops: readonly Op[], at: number): string {
  const end = Math.min(at + 16, diskBytes);
  const seen = actual.subarray(at, end);
  const lines = [`bytes at ${at}: ${seen.toString('hex')}`];
  if (baseline.subarray(at, end).equals(seen)) lines.push('  = the contents before the round');
  for (const op of ops) {
    if (op.kind === 'flush' || op.effectStart > at || op.effectEnd < end) continue;
    if (candidateBytes({ kind: 'op', op }, baseline, at, end).equals(seen)) {
      lines.push(`  = what ${describeOp(op)} wrote`);
    }
  }
  if (lines.length === 1) lines.push('  = none of the operations of the round');
  return lines.join('\n');
}

/**
 * Checks `actual` against the model (see the top of the file); returns the failures (at most a
 * few, explained) and counts.
 */
function checkDisk(
  actual: Buffer,
  baseline: Buffer,
  ops: readonly Op[],
  stats: CheckStats,
): string[] {
  const effective = ops.filter((op) => op.kind !== 'flush' && op.effectEnd > op.effectStart);
  const bounds = new Set<number>([0, diskBytes]);
  for (const op of effective) {
    bounds.add(op.effectStart);
    bounds.add(op.effectEnd);
  }
  const sorted = [...bounds].sort((a, b) => a - b);
  const failures: string[] = [];
  for (let i = 0; i + 1 < sorted.length && failures.length < 3; i++) {
    const start = sorted[i]!;
    const end = sorted[i + 1]!;
    const covering = effective.filter((op) => op.effectStart <= start && op.effectEnd >= end);
    const durable = covering.filter((op) => op.durable);
    if (durable.length > 0) stats.durableBytes += end - start;
    const candidates: Candidate[] = covering
      .filter((op) => !durable.some((d) => op.ackedAt < d.sentAt))
      .map((op) => ({ kind: 'op', op }));
    if (durable.length === 0) candidates.push({ kind: 'baseline' });
    const seen = actual.subarray(start, end);
    const expected = candidates.map((c) => candidateBytes(c, baseline, start, end));
    if (expected.some((bytes) => bytes.equals(seen))) continue;
    // No single candidate explains the whole range: every byte must match one of them.
    const matched = new Uint8Array(end - start);
    for (const bytes of expected) {
      for (let j = 0; j < bytes.length; j++) if (bytes[j] === seen[j]) matched[j] = 1;
    }
    const bad = matched.indexOf(0);
    if (bad < 0) continue;
    const described = candidates.map((c) =>
      c.kind === 'baseline' ? 'the contents before the round' : describeOp(c.op),
    );
    failures.push(
      `byte ${start + bad} (range [${start}, ${end})) holds a value no history allows\n` +
        `durable operations covering it:\n  ${durable.map(describeOp).join('\n  ') || 'none'}\n` +
        `allowed: ${described.join('; ')}\n` +
        explain(actual, baseline, ops, start + bad),
    );
  }
  return failures;
}

// ---------------------------------------------------------------------------------------------
// The workload.

interface Plan {
  readonly kind: OpKind;
  readonly offset: number;
  readonly length: number;
  readonly fua: boolean;
  readonly noHole: boolean;
  /** FLUSH only: wait for this connection's replies first, so that the flush covers them. */
  readonly barrier: boolean;
}

/** `flushShare`: the share of FLUSH requests, which differs from round to round. */
function planOp(next: () => number, flushShare: number): Plan {
  const pick = (count: number) => Math.floor(next() * count);
  if (next() < flushShare) {
    return {
      kind: 'flush',
      offset: 0,
      length: 0,
      fua: false,
      noHole: false,
      barrier: next() < 0.5,
    };
  }
  const roll = next();
  const kind: OpKind = roll < 0.78 ? 'write' : roll < 0.89 ? 'zero' : 'trim';
  const sizeRoll = next();
  let length =
    sizeRoll < 0.35
      ? 1 + pick(4096)
      : sizeRoll < 0.75
        ? 4096 + pick(61441)
        : 65536 + pick(writeBytesMax - 65536 + 1);
  // Half the operations in the first MiB, so that they overlap and race each other.
  const region = next() < 0.5 ? 2 ** 20 : diskBytes;
  let offset = pick(region);
  if (next() < 0.5) {
    offset -= offset % 4096;
    length = Math.max(4096, length - (length % 4096));
  }
  length = Math.min(length, diskBytes - offset);
  return { kind, offset, length, fua: next() < 0.2, noHole: next() < 0.5, barrier: false };
}

interface RoundState {
  readonly round: number;
  readonly ops: Op[];
  readonly blockBytes: number;
  /** Whether a flush on one connection covers the writes answered on the others. */
  readonly multiConn: boolean;
  clock: number;
  seq: number;
  acks: number;
  inFlight: number;
  stopped: boolean;
  replyErrors: string[];
  onAck(op: Op): void;
  onSent(): void;
}

function effectOf(plan: Plan, blockBytes: number): [number, number] {
  if (plan.kind === 'flush') return [0, 0];
  if (plan.kind !== 'trim') return [plan.offset, plan.offset + plan.length];
  const first = Math.ceil(plan.offset / blockBytes) * blockBytes;
  const last = Math.floor((plan.offset + plan.length) / blockBytes) * blockBytes;
  return first < last ? [first, last] : [0, 0];
}

function send(client: NbdClient, op: Op): Promise<unknown> {
  const fua = op.fua ? P.NBD_CMD_FLAG_FUA : 0;
  switch (op.kind) {
    case 'write':
      return client.write(op.offset, patternBytes(op.id, op.offset, op.offset + op.length), {
        fua: op.fua,
      });
    case 'flush':
      return client.flush();
    case 'trim':
      return client.request(P.NBD_CMD_TRIM, { offset: op.offset, length: op.length, flags: fua });
    case 'zero':
      return client.request(P.NBD_CMD_WRITE_ZEROES, {
        offset: op.offset,
        length: op.length,
        flags: fua,
      });
  }
}

/** Sends one request and records its answer; never rejects. */
async function issue(state: RoundState, client: NbdClient, index: number, plan: Plan) {
  const [effectStart, effectEnd] = effectOf(plan, state.blockBytes);
  const seq = state.seq++;
  const op: Op = {
    id: state.round * 65536 + seq,
    round: state.round,
    seq,
    client: index,
    kind: plan.kind,
    offset: plan.offset,
    length: plan.length,
    fua: plan.fua,
    effectStart,
    effectEnd,
    sentAt: ++state.clock,
    ackedAt: Infinity,
    durable: false,
  };
  state.ops.push(op);
  state.inFlight++;
  const reply = send(client, op);
  state.onSent();
  try {
    await reply;
    op.ackedAt = ++state.clock;
    state.inFlight--;
    state.onAck(op);
  } catch (error) {
    state.inFlight--;
    // After the kill every request left fails with the connection; before, nothing may fail.
    if (error instanceof NbdReplyError || !state.stopped) {
      state.replyErrors.push(`${describeOp(op)}: ${(error as Error).message}`);
    }
  }
}

/** One connection's share of the round: keeps `depth` requests in flight until the kill. */
async function drive(state: RoundState, client: NbdClient, index: number, next: () => number) {
  const depth = 1 + Math.floor(next() * 16);
  const flushShare = 0.02 + next() * 0.18;
  const inFlight = new Set<Promise<void>>();
  while (!state.stopped && state.seq < opsPerRoundMax) {
    const plan = planOp(next, flushShare);
    if (plan.barrier) await Promise.all(inFlight);
    if (state.stopped) break;
    const done: Promise<void> = issue(state, client, index, plan).then(() => {
      inFlight.delete(done);
    });
    inFlight.add(done);
    while (inFlight.size >= depth && !state.stopped) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
}

/** Which operations the answers made durable: FUA, or a FLUSH sent after the reply. */
function markDurable(state: RoundState): void {
  const flushes = state.ops.filter((op) => op.kind === 'flush' && op.ackedAt !== Infinity);
  for (const op of state.ops) {
    if (op.kind === 'flush' || op.ackedAt === Infinity) continue;
    op.durable =
      op.fua ||
      flushes.some(
        (flush) => flush.sentAt > op.ackedAt && (state.multiConn || flush.client === op.client),
      );
  }
}

// ---------------------------------------------------------------------------------------------

const work = mkdtempSync(path.join(tmpdir(), 'continuum-nbd-crash-'));
after(async () => {
  // By process (child.kill signals the child's own pid), then wait until each one is gone.
  for (const child of children.keys()) child.kill('SIGKILL');
  await Promise.all(children.values());
  rmSync(work, { recursive: true, force: true });
});

async function connect(socketPath: string, structuredReplies: boolean): Promise<NbdClient> {
  const client = await NbdClient.connect(
    { kind: 'unix', socketPath },
    { exportName, structuredReplies },
  );
  client.socket.on('error', () => undefined);
  return client;
}

test(
  `NBD: writes covered by an answered FLUSH or FUA survive SIGKILL of the server ` +
    `(${rounds} rounds, NBD_CRASH_SEED=${baseSeed})`,
  { timeout: 180_000 },
  async () => {
    const root = path.join(work, 'store');
    const socketPath = path.join(work, 'nbd.sock');
    let baseline: Buffer = Buffer.alloc(diskBytes);
    let previous: readonly Op[] = [];
    const totals = {
      ops: 0,
      acked: 0,
      durable: 0,
      inFlightAtKill: 0,
      bytesChecked: 0,
      durableBytes: 0,
      twoConnectionRounds: 0,
    };
    for (let round = 0; round <= rounds; round++) {
      const server = await startServer(root, socketPath, round % 2 === 1);
      try {
        const seed = (baseSeed + round * 7919) >>> 0;
        const next = seededRandom(seed);
        const connections = round < rounds && next() < 0.35 ? 2 : 1;
        const clients: NbdClient[] = [];
        for (let i = 0; i < connections; i++) {
          clients.push(await connect(socketPath, next() < 0.5));
        }
        const first = clients[0]!;
        assert.equal(first.sizeBytes, diskBytes);
        const blockBytes = first.blockSizes?.[1];
        assert.ok(blockBytes !== undefined, 'the server advertises its block sizes');

        // What the previous round left: check it, then make it this round's durable start.
        const actual = await readDisk(first);
        const stats: CheckStats = { durableBytes: 0 };
        const failures = checkDisk(actual, baseline, previous, stats);
        totals.bytesChecked += diskBytes;
        totals.durableBytes += stats.durableBytes;
        if (failures.length > 0) {
          assert.fail(
            `${round === 0 ? 'on the new volume' : `after the kill in round ${round - 1}`} ` +
              `(NBD_CRASH_SEED=${baseSeed}):\n` +
              failures.join('\n\n') +
              `\nserver stderr:\n${server.stderr()}`,
          );
        }
        await first.flush();
        baseline = actual;
        if (round === rounds) {
          for (const client of clients) client.socket.destroy();
          break;
        }

        const ops: Op[] = [];
        const state: RoundState = {
          round,
          ops,
          blockBytes,
          multiConn: (first.transmissionFlags & P.NBD_FLAG_CAN_MULTI_CONN) !== 0,
          clock: 0,
          seq: 0,
          acks: 0,
          inFlight: 0,
          stopped: false,
          replyErrors: [],
          onAck: (_op: Op) => undefined,
          onSent: () => undefined,
        };
        const killNext = seededRandom(seed ^ 0x2545f491);
        const killAfterAcks = 1 + Math.floor(killNext() * 250);
        // 0: at once; 1: a turn later; 2: up to 3 ms later; 3: at once, on the first answer to a
        // FLUSH or FUA request from then on (the moment an early answer would be caught).
        const killMode = Math.floor(killNext() * 4);
        let killRequested = false;
        const kill = () => {
          if (state.stopped) return;
          if (state.inFlight === 0) {
            // Kill while the server has work: as soon as the next request is sent.
            state.onSent = kill;
            return;
          }
          state.stopped = true;
          totals.inFlightAtKill += state.inFlight;
          server.child.kill('SIGKILL');
        };
        state.onAck = (op) => {
          state.acks++;
          if (killRequested || state.acks < killAfterAcks) return;
          if (killMode === 3 && op.kind !== 'flush' && !op.fua) return;
          killRequested = true;
          if (killMode === 0 || killMode === 3) kill();
          else if (killMode === 1) setImmediate(kill);
          else setTimeout(kill, killNext() * 3);
        };
        const deadline = setTimeout(kill, roundDeadlineMs);
        await Promise.all(
          clients.map((client, index) => drive(state, client, index, seededRandom(seed + index))),
        );
        clearTimeout(deadline);
        kill();
        await killServer(server);
        for (const client of clients) client.socket.destroy();
        assert.deepEqual(state.replyErrors, [], `round ${round}: requests failed`);

        markDurable(state);
        previous = ops;
        totals.ops += ops.length;
        totals.acked += ops.filter((op) => op.ackedAt !== Infinity).length;
        totals.durable += ops.filter((op) => op.durable).length;
        if (connections === 2) totals.twoConnectionRounds++;
      } finally {
        await killServer(server);
      }
    }
    console.log(
      `NBD crash test: ${rounds} rounds (${totals.twoConnectionRounds} on two connections), ` +
        `${totals.ops} requests sent, ${totals.acked} answered, ${totals.durable} durable, ` +
        `${totals.inFlightAtKill} in flight at the kills; ${totals.bytesChecked} bytes verified, ` +
        `${totals.durableBytes} of them under durable operations`,
    );
    assert.ok(totals.durable > 0, 'some operations were made durable');
  },
);
