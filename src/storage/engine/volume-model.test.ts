// Model-based property test: random sequences of writes (aligned or not), reads, trims,
// write-zeroes, flushes, snapshots, clones, grows, snapshot deletes and store reopens, run against
// the engine and against a plain Buffer per volume. After every read, and at the end for every
// volume and snapshot, the engine must return exactly what the model holds.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ContinuumError } from '../../core/errors.js';
import type { Volume } from './volume-handle.js';
import { pattern, tempStore, type TempStore } from './test-support.js';

const blockSize = 4096;
const initialBlocks = 24;

interface Span {
  readonly at: number;
  readonly length: number;
  /** Snap to whole blocks: the common case for real clients, and what trim acts on. */
  readonly aligned: boolean;
}

type Operation =
  | ({ kind: 'write'; volume: number; seed: number; fua: boolean } & Span)
  | ({ kind: 'read'; volume: number; seed: number } & Span)
  | ({ kind: 'trim' | 'zero'; volume: number } & Span)
  | { kind: 'flush' | 'snapshot'; volume: number }
  | { kind: 'clone' | 'readSnapshot' | 'deleteSnapshot'; snapshot: number }
  | { kind: 'grow'; volume: number; blocks: number }
  | { kind: 'reopen' };

const span = {
  at: fc.nat({ max: 2 ** 20 }),
  length: fc.integer({ min: 1, max: 3 * blockSize + 700 }),
  aligned: fc.boolean(),
};
const operation: fc.Arbitrary<Operation> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('write' as const),
      volume: fc.nat(),
      seed: fc.nat(),
      fua: fc.boolean(),
      ...span,
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('read' as const),
      volume: fc.nat(),
      seed: fc.nat(),
      ...span,
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constantFrom('trim' as const, 'zero' as const),
      volume: fc.nat(),
      ...span,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constantFrom('flush' as const, 'snapshot' as const),
      volume: fc.nat(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constantFrom('clone' as const, 'readSnapshot' as const, 'deleteSnapshot' as const),
      snapshot: fc.nat(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('grow' as const),
      volume: fc.nat(),
      blocks: fc.integer({ min: 1, max: 8 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('reopen' as const) }) },
);

interface Model {
  volumes: Map<string, Buffer>;
  snapshots: Map<string, { volume: string; name: string; data: Buffer; clones: number }>;
  handles: Map<string, Volume>;
  counter: number;
}

/** Places a span inside a device of `size` bytes: any byte offset, or whole blocks. */
function range(size: number, span: Span): [number, number] {
  let offset = span.at % size;
  let length = span.length;
  if (span.aligned) {
    offset -= offset % blockSize;
    length = Math.ceil(length / blockSize) * blockSize;
  }
  return [offset, Math.min(length, size - offset)];
}

async function apply(temp: TempStore, model: Model, op: Operation): Promise<void> {
  const names = [...model.volumes.keys()];
  const snapshots = [...model.snapshots.keys()];
  if (op.kind === 'reopen') {
    for (const handle of model.handles.values()) await handle.close();
    model.handles.clear();
    await temp.reopen();
    for (const name of names) model.handles.set(name, await temp.store.open(name));
    return;
  }
  if ('snapshot' in op) {
    const key = snapshots[op.snapshot % Math.max(1, snapshots.length)];
    const snapshot = key === undefined ? undefined : model.snapshots.get(key);
    if (key === undefined || snapshot === undefined) return;
    const ref = { volume: snapshot.volume, snapshot: snapshot.name };
    if (op.kind === 'readSnapshot') {
      const reader = await temp.store.openSource(ref);
      const offset = 0;
      const length = snapshot.data.length;
      const actual = await reader.read(offset, length);
      await reader.close();
      assert.ok(actual.equals(snapshot.data.subarray(offset, offset + length)), `${key} differs`);
    } else if (op.kind === 'clone') {
      const name = `c${model.counter++}`;
      await temp.store.clone(name, ref);
      snapshot.clones += 1;
      model.volumes.set(name, Buffer.from(snapshot.data));
      model.handles.set(name, await temp.store.open(name));
    } else {
      // Deleting a snapshot folds its layer into the next one: nothing may read through it.
      for (const handle of model.handles.values()) await handle.close();
      const outcome = await temp.store.deleteSnapshot(snapshot.volume, snapshot.name).then(
        () => 'deleted',
        (error: unknown) => {
          assert.ok(error instanceof ContinuumError, String(error));
          return error.code;
        },
      );
      for (const volume of model.volumes.keys()) {
        model.handles.set(volume, await temp.store.open(volume));
      }
      if (snapshot.clones > 0) assert.equal(outcome, 'CONTINUUM_ERR_VOLUME_HAS_DEPENDENTS');
      else {
        assert.equal(outcome, 'deleted');
        model.snapshots.delete(key);
      }
    }
    return;
  }
  const name = names[op.volume % names.length]!;
  const data = model.volumes.get(name)!;
  const volume = model.handles.get(name)!;
  switch (op.kind) {
    case 'write': {
      const [offset, length] = range(data.length, op);
      const bytes = pattern(op.seed, length);
      await volume.write(offset, bytes, { fua: op.fua });
      bytes.copy(data, offset);
      return;
    }
    case 'read': {
      const [offset, length] = range(data.length, op);
      // Half the reads go through readInto, the NBD server's pooled-buffer path.
      let actual: Buffer;
      if (op.seed % 2 === 0) actual = await volume.read(offset, length);
      else {
        actual = Buffer.alloc(length, 0xee);
        await volume.readInto(offset, actual);
      }
      assert.ok(
        actual.equals(data.subarray(offset, offset + length)),
        `${name} @${offset}+${length}`,
      );
      return;
    }
    case 'trim': {
      const [offset, length] = range(data.length, op);
      await volume.trim(offset, length);
      const first = Math.ceil(offset / blockSize) * blockSize;
      const last = Math.floor((offset + length) / blockSize) * blockSize;
      if (first < last) data.fill(0, first, last);
      return;
    }
    case 'zero': {
      const [offset, length] = range(data.length, op);
      await volume.writeZeroes(offset, length);
      data.fill(0, offset, offset + length);
      return;
    }
    case 'flush':
      return volume.flush();
    case 'snapshot': {
      const snapshot = `s${model.counter++}`;
      await temp.store.snapshot(name, snapshot);
      model.snapshots.set(`${name}@${snapshot}`, {
        volume: name,
        name: snapshot,
        data: Buffer.from(data),
        clones: 0,
      });
      return;
    }
    case 'grow': {
      const size = data.length + op.blocks * blockSize;
      await temp.store.grow(name, size);
      assert.equal(volume.sizeBytes, size);
      model.volumes.set(name, Buffer.concat([data, Buffer.alloc(op.blocks * blockSize)]));
      return;
    }
  }
}

async function checkEverything(temp: TempStore, model: Model): Promise<void> {
  for (const [name, data] of model.volumes) {
    const actual = await model.handles.get(name)!.read(0, data.length);
    assert.ok(actual.equals(data), `volume ${name} differs at the end`);
  }
  for (const [key, snapshot] of model.snapshots) {
    const reader = await temp.store.openSource({
      volume: snapshot.volume,
      snapshot: snapshot.name,
    });
    assert.ok((await reader.read(0, snapshot.data.length)).equals(snapshot.data), `${key} differs`);
    await reader.close();
  }
}

test('the engine behaves like a buffer per volume under random operations', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(operation, { minLength: 1, maxLength: 50 }),
      // A small journal limit makes flushes write checkpoints; the default keeps plain batches.
      fc.constantFrom(4096, 64 * 2 ** 20),
      async (operations, journalBytesMax) => {
        const temp = await tempStore({ journalBytesMax });
        const model: Model = {
          volumes: new Map(),
          snapshots: new Map(),
          handles: new Map(),
          counter: 0,
        };
        try {
          await temp.store.create('a', initialBlocks * blockSize);
          model.volumes.set('a', Buffer.alloc(initialBlocks * blockSize));
          model.handles.set('a', await temp.store.open('a'));
          for (const op of operations) await apply(temp, model, op);
          await checkEverything(temp, model);
          for (const handle of model.handles.values()) await handle.close();
          await temp.reopen();
          for (const name of model.volumes.keys())
            model.handles.set(name, await temp.store.open(name));
          await checkEverything(temp, model);
        } finally {
          await temp.cleanup();
        }
      },
    ),
    { numRuns: 100 },
  );
});
