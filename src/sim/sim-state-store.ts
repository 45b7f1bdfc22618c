// The simulator's ReplicationStateStore (types.ts): the replica meta and the primary's dirty
// bitmaps of one volume on one node, kept in a per-node object that survives the node's crashes,
// as the files beside the volume's catalog do (file-state-store.ts). A save is durable once its
// promise resolves, like the real atomic replace, but it takes a tiny delay on the node's clock: a
// crash (NodeClock.reset) before then loses it, so code that acknowledges before its save
// resolved is caught. Saves of one item land in the order they were made, as the real store
// serializes writes of one file.
//
// What is stored is a copy taken when save is called, and loads return fresh copies, so a later
// change to the live object never changes what is on the "disk". DirtyBitmap serializes only to a
// file (save/load by path, which src/sim may not use), so a bitmap is kept as its public shape
// (sizes, start generation and dirty runs) and rebuilt with create() and markRange(). A rebuilt
// bitmap reports hasUnsavedChanges = true (markRange sets it, and nothing public clears it), where
// one loaded from a file reports false: a caller that saves on that flag saves once more, which is
// harmless.
import type { Clock } from '../core/ports.js';
import { DirtyBitmap } from '../storage/replication/dirty-bitmap.js';
import type { ReplicaMeta } from '../storage/replication/replica-meta.js';
import type { ReplicationStateStore } from '../storage/replication/types.js';

/** A bitmap as stored: everything needed to rebuild an equal one. */
export interface SavedBitmap {
  readonly regionSizeBytes: number;
  readonly volumeSizeBytes: number;
  readonly startGeneration: string;
  readonly dirtyRuns: readonly { readonly offsetBytes: number; readonly lengthBytes: number }[];
}

/** What one node's replication state "disk" holds, per volume; keep one per node, across crashes. */
export interface SimStateDisk {
  readonly volumes: Map<string, { meta?: ReplicaMeta; bitmaps: Map<string, SavedBitmap> }>;
}

export function newSimStateDisk(): SimStateDisk {
  return { volumes: new Map() };
}

export interface SimStateStoreOptions {
  readonly disk: SimStateDisk;
  readonly volume: string;
  /** The node's clock: a crash of the node drops saves still waiting on it. */
  readonly clock: Clock;
  /** Time a save or load takes; default 1 ms. */
  readonly delayMs?: number;
}

export class SimStateStore implements ReplicationStateStore {
  private readonly delayMs: number;
  /** Saves made so far, for tests and checkers. */
  saves = 0;

  constructor(private readonly options: SimStateStoreOptions) {
    this.delayMs = options.delayMs ?? 1;
    if (!(this.delayMs >= 0)) throw new RangeError(`delayMs ${this.delayMs} is not valid`);
  }

  loadMeta(): Promise<ReplicaMeta | null> {
    return this.after(() => {
      const meta = this.stored()?.meta;
      return meta === undefined ? null : structuredClone(meta);
    });
  }

  saveMeta(meta: ReplicaMeta): Promise<void> {
    const copy = structuredClone(meta);
    return this.after(() => {
      this.saves++;
      this.volumeEntry().meta = copy;
    });
  }

  loadBitmap(peer: string): Promise<DirtyBitmap | null> {
    return this.after(() => {
      const saved = this.stored()?.bitmaps.get(peer);
      return saved === undefined ? null : rebuild(saved);
    });
  }

  saveBitmap(peer: string, bitmap: DirtyBitmap): Promise<void> {
    const saved = snapshot(bitmap);
    return this.after(() => {
      this.saves++;
      this.volumeEntry().bitmaps.set(peer, saved);
    });
  }

  deleteBitmap(peer: string): Promise<void> {
    return this.after(() => {
      this.saves++;
      this.stored()?.bitmaps.delete(peer);
    });
  }

  private stored(): { meta?: ReplicaMeta; bitmaps: Map<string, SavedBitmap> } | undefined {
    return this.options.disk.volumes.get(this.options.volume);
  }

  private volumeEntry(): { meta?: ReplicaMeta; bitmaps: Map<string, SavedBitmap> } {
    let entry = this.stored();
    if (entry === undefined) {
      entry = { bitmaps: new Map() };
      this.options.disk.volumes.set(this.options.volume, entry);
    }
    return entry;
  }

  /**
   * Runs `effect` after the delay on the node's clock. Timers of equal delay fire in the order
   * they were set, so saves land in call order; a crash that resets the clock drops the effect and
   * leaves the promise pending, as the process that waited is gone.
   */
  private after<T>(effect: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.options.clock.setTimeout(() => {
        try {
          resolve(effect());
        } catch (error) {
          reject(error instanceof Error ? error : new Error(String(error)));
        }
      }, this.delayMs);
    });
  }
}

/** The bitmap's content now, independent of the live object. */
export function snapshot(bitmap: DirtyBitmap): SavedBitmap {
  return {
    regionSizeBytes: bitmap.regionSizeBytes,
    volumeSizeBytes: bitmap.volumeSizeBytes,
    startGeneration: bitmap.startGeneration,
    dirtyRuns: [...bitmap.dirtyRuns()].map(({ offsetBytes, lengthBytes }) => ({
      offsetBytes,
      lengthBytes,
    })),
  };
}

function rebuild(saved: SavedBitmap): DirtyBitmap {
  const bitmap = DirtyBitmap.create(saved);
  for (const run of saved.dirtyRuns) bitmap.markRange(run.offsetBytes, run.lengthBytes);
  return bitmap;
}
