// The model-based property of the store contract: random sequences of transactions (puts,
// deletes, compares that hold and compares that do not) applied to a backend agree with a plain
// Map that follows the port's documented rules. Split from store.contract.ts only for size.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import fc from 'fast-check';
import { FakeClock } from '../sim/fake-clock.js';
import type { StateStore, TxnRequest } from './port.js';

interface ModelEntry {
  value: unknown;
  modRevision: number;
  createRevision: number;
  version: number;
}

interface Step {
  ops: { key: string; kind: 'put' | 'delete'; value: unknown }[];
  compares: { key: string; holds: boolean }[];
  withEvent: boolean;
}

const keyArbitrary = fc.constantFrom('a', 'b', 'c', 'nodes/a', 'nodes/b');
const valueArbitrary = fc.oneof(
  fc.integer(),
  fc.string({ maxLength: 8 }),
  fc.record({ n: fc.integer(), tags: fc.array(fc.string({ maxLength: 3 }), { maxLength: 2 }) }),
);
const stepArbitrary: fc.Arbitrary<Step> = fc.record({
  ops: fc.uniqueArray(
    fc.record({
      key: keyArbitrary,
      kind: fc.constantFrom<'put' | 'delete'>('put', 'delete'),
      value: valueArbitrary,
    }),
    { selector: (op) => op.key, maxLength: 3 },
  ),
  compares: fc.array(fc.record({ key: keyArbitrary, holds: fc.boolean() }), { maxLength: 2 }),
  withEvent: fc.boolean(),
});

/** The port's rules, stated as simply as possible. */
class MapModel {
  readonly entries = new Map<string, ModelEntry>();

  /** The store's revision when the run began: 0 for the local backends. */
  constructor(public revision: number) {}

  /** Turns a step into a request whose compares hold or fail as the step says. */
  request(step: Step): TxnRequest {
    const compares = step.compares.map(({ key, holds }) => {
      const current = this.entries.get(key)?.modRevision ?? 0;
      return { key, modRevision: holds ? current : current + 1 };
    });
    const puts = step.ops.filter((op) => op.kind === 'put');
    const deletes = step.ops.filter((op) => op.kind === 'delete').map((op) => op.key);
    const events = step.withEvent
      ? [{ at: 0, kind: 'step', subject: { kind: 'node' as const, name: 'n' }, message: 'step' }]
      : [];
    return { compares, puts: puts.map(({ key, value }) => ({ key, value })), deletes, events };
  }

  apply(step: Step): { ok: boolean; revision: number } {
    if (!step.compares.every((compare) => compare.holds)) {
      return { ok: false, revision: this.revision };
    }
    const changes = step.ops.filter((op) => op.kind === 'put' || this.entries.has(op.key));
    if (changes.length === 0 && !step.withEvent) return { ok: true, revision: this.revision };
    this.revision += 1;
    for (const op of changes) {
      const existing = this.entries.get(op.key);
      if (op.kind === 'delete') {
        this.entries.delete(op.key);
        continue;
      }
      this.entries.set(op.key, {
        value: JSON.parse(JSON.stringify(op.value)) as unknown,
        modRevision: this.revision,
        createRevision: existing?.createRevision ?? this.revision,
        version: (existing?.version ?? 0) + 1,
      });
    }
    return { ok: true, revision: this.revision };
  }
}

export function runStoreModelProperty(open: (clock: FakeClock) => Promise<StateStore>): void {
  it('agrees with a Map model over random transactions (property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(stepArbitrary, { maxLength: 25 }), async (steps) => {
        const store = await open(new FakeClock());
        const model = new MapModel((await store.range('')).revision);
        for (const step of steps) {
          const result = await store.txn(model.request(step));
          const expected = model.apply(step);
          assert.equal(result.ok, expected.ok);
          assert.equal(result.revision, expected.revision);
        }
        const { entries, revision } = await store.range('');
        assert.equal(revision, model.revision);
        const modelKeys = [...model.entries.keys()].sort();
        assert.deepEqual(
          entries.map((entry) => entry.key),
          modelKeys,
        );
        for (const entry of entries) {
          const { key: _key, ...rest } = entry;
          assert.deepEqual(rest, model.entries.get(entry.key));
        }
      }),
      { numRuns: 60 },
    );
  });
}
