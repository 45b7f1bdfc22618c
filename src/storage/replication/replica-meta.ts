// The replication state one node keeps for one volume (docs/replication.md, "Generations" and
// "Promotion"): the highest epoch it accepted and the generations its data went through. A replica
// loads it when the volume server opens the volume, refuses any replication message below
// `highestEpoch`, and on `accept-epoch(E)` persists the raised epoch (saveReplicaMeta syncs file and
// directory) before it answers. A node that is promoted, or a primary whose ISR shrinks, starts a
// new generation and persists it before serving at it; a returning replica sends its history and
// the primary's compareHistories decides between a delta and a full resync. The decisions here
// are pure (CONVENTIONS.md item 1): ids come from an injected random source, and only
// loadReplicaMeta and saveReplicaMeta touch the disk. The file sits beside the volume's catalog
// and is replaced atomically, like the catalog.
import { z } from 'zod';
import { ContinuumError } from '../../core/errors.js';
// Imported from the module rather than the engine's index: the atomic-replace idiom is shared
// infrastructure, not part of the engine's public surface for the NBD server and the CLI.
import { readJsonFile, replaceFileAtomically } from '../engine/file-io.js';

/** Generations a node remembers; a replica whose newest one dropped off needs a full resync. */
export const generationHistoryMax = 64;

/** A generation id: a random 64-bit number as 16 lowercase hex digits. */
export const generationIdPattern = /^[0-9a-f]{16}$/;

/** The generation of a copy with no history: a replica announcing it has no data we know. */
export const noGeneration = '0000000000000000';

export interface ReplicaMeta {
  readonly volume: string;
  /** The highest epoch this node accepted; messages below it are refused (REPL_FENCED). */
  readonly highestEpoch: number;
  /** Newest first, at most `generationHistoryMax`, no repeats. */
  readonly generations: readonly string[];
  /** The engine's `volume.dataGeneration` when the newest generation began. */
  readonly dataGeneration: number;
  /**
   * The copy may have lost writes it acknowledged (docs/replication.md, "A copy that was not
   * closed cleanly"). Set whenever a primary or a replica opens the copy, so a crash (power loss,
   * a killed process) leaves it set; cleared only by a clean close (everything flushed first) of a
   * copy known to hold every write it acknowledged: one opened clean, a primary that served, or a
   * replica a primary verified meanwhile. Absent (files written before it existed) means clean.
   */
  readonly unclean?: boolean;
}

export type EpochDecision =
  /** `changed`: the epoch was raised, so persist the meta before answering. */
  | { readonly kind: 'accepted'; readonly meta: ReplicaMeta; readonly changed: boolean }
  | { readonly kind: 'refused'; readonly highestEpoch: number };

export type HistoryComparison =
  | { readonly kind: 'same' }
  /** Copy what the primary's dirty bitmap that began at `since` marks, if it still has it. */
  | { readonly kind: 'delta'; readonly since: string }
  | { readonly kind: 'full'; readonly reason: 'empty-history' | 'unknown-history' };

/** Volume names as the engine allows them (src/storage/engine/limits.ts). */
const volumeNameSchema = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-z0-9][a-z0-9._-]*$/);
const counterSchema = z.int().min(0).max(Number.MAX_SAFE_INTEGER);

/** The file: the meta plus a format number, so a later layout can be told apart. */
const fileSchema = z.strictObject({
  format: z.literal(1),
  volume: volumeNameSchema,
  highestEpoch: counterSchema,
  generations: z
    .array(z.string().regex(generationIdPattern, 'expected 16 lowercase hex digits'))
    .max(generationHistoryMax)
    .refine((ids) => new Set(ids).size === ids.length, 'expected no generation twice'),
  dataGeneration: counterSchema,
  /** Optional, so files written before it existed still load (as clean). */
  unclean: z.boolean().optional(),
});

/** Whether the copy may have lost writes it acknowledged (`ReplicaMeta.unclean`). */
export function isUnclean(meta: ReplicaMeta | null): boolean {
  return meta?.unclean === true;
}

/** The meta of a node that holds the volume but has no history yet (a new replica). */
export function emptyReplicaMeta(volume: string): ReplicaMeta {
  return { volume, highestEpoch: 0, generations: [], dataGeneration: 0 };
}

/**
 * The meta at `filePath`, or null when there is none; a damaged file is VOLUME_CORRUPT, and so is
 * one that names another volume than `options.volume` (a file copied to the wrong place).
 */
export async function loadReplicaMeta(
  filePath: string,
  options: { volume?: string } = {},
): Promise<ReplicaMeta | null> {
  const parsed = await readJsonFile(filePath, `replica meta ${filePath}`);
  if (parsed === undefined) return null;
  const result = fileSchema.safeParse(parsed);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue === undefined || issue.path.length === 0 ? 'the top' : issue.path.join('.');
    throw corrupt(filePath, `is malformed at ${where}: ${issue?.message ?? 'invalid'}`);
  }
  const { volume, highestEpoch, generations, dataGeneration, unclean } = result.data;
  if (options.volume !== undefined && volume !== options.volume) {
    throw corrupt(filePath, `names volume ${volume}, but was expected for ${options.volume}`);
  }
  return {
    volume,
    highestEpoch,
    generations,
    dataGeneration,
    ...(unclean === undefined ? {} : { unclean }),
  };
}

/**
 * Replaces the file atomically (temporary sibling, fdatasync, rename, directory fsync), so a crash
 * leaves the old or the new meta. Callers serialize saves of one path: they share the temporary.
 */
export async function saveReplicaMeta(filePath: string, meta: ReplicaMeta): Promise<void> {
  const file = { format: 1 as const, ...meta, generations: [...meta.generations] };
  // Check before writing what loading would check after: never persist a file we would refuse.
  const result = fileSchema.safeParse(file);
  if (!result.success) {
    throw new RangeError(`refusing to save an invalid replica meta: ${result.error.message}`);
  }
  await replaceFileAtomically(filePath, Buffer.from(`${JSON.stringify(file, null, 2)}\n`));
}

/**
 * Decides on a message or an `accept-epoch` at `epoch`: below the highest accepted it is refused;
 * otherwise accepted, and if higher the caller persists the returned meta before answering.
 */
export function acceptEpoch(meta: ReplicaMeta, epoch: number): EpochDecision {
  checkCounter('epoch', epoch);
  if (epoch < meta.highestEpoch) return { kind: 'refused', highestEpoch: meta.highestEpoch };
  if (epoch === meta.highestEpoch) return { kind: 'accepted', meta, changed: false };
  return { kind: 'accepted', meta: { ...meta, highestEpoch: epoch }, changed: true };
}

/** Begins generation `id` at the engine's `dataGeneration`; the oldest beyond 64 drop off. */
export function startGeneration(
  meta: ReplicaMeta,
  id: string,
  dataGeneration: number,
): ReplicaMeta {
  if (!generationIdPattern.test(id)) {
    throw new RangeError(
      `generation id must be 16 lowercase hex digits, got ${JSON.stringify(id)}`,
    );
  }
  // A repeated id would make a history ambiguous; with 64 random bits it means a broken source.
  if (meta.generations.includes(id)) {
    throw new RangeError(`generation ${id} is already in the history of ${meta.volume}`);
  }
  checkCounter('dataGeneration', dataGeneration);
  // The engine's counter never goes back (volume-device.ts); a lower one means another volume.
  if (dataGeneration < meta.dataGeneration) {
    throw new RangeError(
      `dataGeneration ${dataGeneration} of ${meta.volume} is below the recorded ` +
        `${meta.dataGeneration}`,
    );
  }
  const generations = [id, ...meta.generations].slice(0, generationHistoryMax);
  return { ...meta, generations, dataGeneration };
}

/**
 * A fresh generation id from `random` (numbers in [0, 1), such as `Rng.next`): two draws of 32
 * bits each, so a seeded source gives the simulator the same ids on every run.
 */
export function newGenerationId(random: () => number): string {
  let id = '';
  for (let draw = 0; draw < 2; draw++) {
    const value = random();
    if (!(value >= 0 && value < 1)) {
      throw new RangeError(`random source must return a number in [0, 1), got ${String(value)}`);
    }
    id += Math.floor(value * 2 ** 32)
      .toString(16)
      .padStart(8, '0');
  }
  return id;
}

/**
 * How a returning replica catches up with the primary, from both histories (newest first). Delta
 * also needs the primary's dirty bitmap for that replica to have begun at `since`; the caller
 * checks that, and falls back to a full resync if the bitmap is missing or damaged.
 */
export function compareHistories(
  replica: readonly string[],
  primary: readonly string[],
): HistoryComparison {
  const newest = replica[0];
  if (newest === undefined || primary.length === 0)
    return { kind: 'full', reason: 'empty-history' };
  if (newest === primary[0]) return { kind: 'same' };
  if (primary.includes(newest)) return { kind: 'delta', since: newest };
  return { kind: 'full', reason: 'unknown-history' };
}

function checkCounter(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${name} must be a whole number of at least 0, got ${String(value)}`);
  }
}

function corrupt(filePath: string, what: string, cause?: unknown): ContinuumError {
  return new ContinuumError('CONTINUUM_ERR_VOLUME_CORRUPT', `replica meta ${filePath} ${what}`, {
    details: { path: filePath },
    ...(cause === undefined ? {} : { cause }),
  });
}
