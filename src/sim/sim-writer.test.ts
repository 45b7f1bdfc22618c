import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PrimaryHandle } from '../storage/replication/types.js';
import { SimWriter, simWriterBlocks, type SimWriterTarget } from './sim-writer.js';

const blockBytes = 4096;

/** A copy of the writer's blocks: a cache and what a flush made durable (a power loss keeps only that). */
class Copy {
  cache = Buffer.alloc(simWriterBlocks * blockBytes);
  durable = Buffer.alloc(simWriterBlocks * blockBytes);

  powerLoss(): void {
    this.cache = Buffer.from(this.durable);
  }

  /** Another node's copy, resynced from this one (its data as it is now, durable there). */
  resynced(): Copy {
    const copy = new Copy();
    copy.cache = Buffer.from(this.cache);
    copy.durable = Buffer.from(this.cache);
    return copy;
  }

  /** A primary serving this copy (only what the writer calls). */
  primary(): PrimaryHandle {
    const handle = {
      fenced: false,
      blockSizeBytes: blockBytes,
      read: (offset: number, length: number) =>
        Promise.resolve(Buffer.from(this.cache.subarray(offset, offset + length))),
      write: (offset: number, data: Buffer) => {
        data.copy(this.cache, offset);
        return Promise.resolve();
      },
      flush: () => {
        this.durable = Buffer.from(this.cache);
        return Promise.resolve();
      },
    };
    return handle as unknown as PrimaryHandle;
  }
}

function harness() {
  let now = 0;
  const violations: string[] = [];
  const crashes = new Map<string, number>();
  const writer = new SimWriter(
    {
      now: () => now,
      note: () => {},
      violate: (message) => violations.push(message),
      lastCrashAt: (node) => crashes.get(node) ?? 0,
    },
    'w1',
    'v1',
  );
  return {
    writer,
    violations,
    crash(node: string, copy: Copy) {
      now += 10;
      crashes.set(node, now);
      copy.powerLoss();
    },
    /** `count` steps of the writer (each one operation), 50 ms apart. */
    async steps(target: SimWriterTarget, count: number) {
      for (let i = 0; i < count; i++) {
        now += 50;
        writer.step(target);
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    },
  };
}

describe('SimWriter', () => {
  it('a write lost unflushed in a power loss is not counted as flushed by a later flush', async () => {
    // SEED=488 and SEED=855 --replicated 1: write 4 acknowledged, never flushed; the only node
    // holding it lost power; the next primary (same node, new epoch) read the block without it
    // (allowed) and flushed; the copy promoted next, resynced from it, was reported as having lost
    // a flushed write.
    const h = harness();
    const a = new Copy();
    // Read back at epoch 1, writes 1, 2, 3, a flush, write 4 (acknowledged, not flushed).
    await h.steps({ node: 'a', epoch: 1, primary: a.primary() }, 6);
    h.crash('a', a);
    // Read back at epoch 2 (block 4 lost: allowed), writes 5 and 6, a flush.
    await h.steps({ node: 'a', epoch: 2, primary: a.primary() }, 4);
    assert.deepEqual(h.violations, []);
    const b = a.resynced();
    await h.steps({ node: 'b', epoch: 3, primary: b.primary() }, 1);
    assert.deepEqual(h.violations, []);
    assert.equal(h.writer.checks, 3);
  });

  it('still reports a flushed write that a later copy lost', async () => {
    const h = harness();
    const a = new Copy();
    await h.steps({ node: 'a', epoch: 1, primary: a.primary() }, 6);
    h.crash('a', a);
    await h.steps({ node: 'a', epoch: 2, primary: a.primary() }, 4);
    // The copy promoted next lacks write 5, which the flush at epoch 2 covered.
    const b = a.resynced();
    b.cache.fill(0, 5 * blockBytes, 6 * blockBytes);
    await h.steps({ node: 'b', epoch: 3, primary: b.primary() }, 1);
    assert.deepEqual(h.violations, [
      'v1 block 5 read at epoch 3 on b: value 0, but 5 was flushed and acknowledged',
      'v1 block 5 read at epoch 3 on b: value 0, but 5 (sent at t=410) was acknowledged and b has not lost power since',
    ]);
  });

  it('reports an unflushed write lost by a node that did not lose power', async () => {
    const h = harness();
    const a = new Copy();
    await h.steps({ node: 'a', epoch: 1, primary: a.primary() }, 6);
    const b = new Copy();
    b.cache = Buffer.from(a.durable); // without write 4, and b never lost power
    await h.steps({ node: 'b', epoch: 2, primary: b.primary() }, 1);
    assert.deepEqual(h.violations, [
      'v1 block 4 read at epoch 2 on b: value 0, but 4 (sent at t=300) was acknowledged and b has not lost power since',
    ]);
  });
});
