// Limits of the block engine and the checks that guard them. Every number the engine relies on is
// named here with its unit last (CONVENTIONS.md item 9), and every value that enters from outside
// (a volume name, a size, a store option) is checked here before anything on disk changes.
import { ContinuumError } from '../../core/errors.js';

/** The unit of allocation and of checksums unless a store is created with another. */
export const blockSizeBytesDefault = 4096;
export const blockSizeBytesMin = 512;
export const blockSizeBytesMax = 65536;

/**
 * Largest volume. The allocation map costs 8 bytes of memory per written block of every open
 * layer (0.2% of the data at 4 KiB blocks), and block numbers are 32-bit in the journal.
 */
export const volumeSizeBytesMaxDefault = 4 * 2 ** 40;
/** Layers a read may fall through: a volume's own snapshots plus the image it was cloned from. */
export const chainDepthMaxDefault = 64;
/** Block numbers are 32-bit in the allocation map and the journal. */
export const blockCountMax = 2 ** 32 - 1;
/** Names of volumes, snapshots and images. */
export const nameLengthMax = 63;
const namePattern = /^[a-z0-9][a-z0-9._-]*$/;

/** Largest single read or write; NBD clients send at most 32 MiB. */
export const requestBytesMax = 32 * 2 ** 20;
/**
 * Blocks changed since the last flush before the engine flushes on its own: bounds the memory of
 * an epoch (about 50 bytes per block) and the slots it holds back from reuse (4 GiB at 4 KiB
 * blocks). Clients flush far sooner; set lower, a long unflushed stream of writes pays for
 * syncing in the middle of it (measured: 1 MiB writes fell from about 1 GB/s to 0.4 GB/s with
 * 262 144).
 */
export const epochBlocksMaxDefault = 2 ** 20;
/**
 * Blocks a flush may carry in its journal record with their data, so that only the journal needs
 * a sync (64 KiB at 4 KiB blocks): the write+flush pattern of databases and file system journals.
 */
export const journaledEpochBlocksMax = 16;
/** Journal size past which the next flush rewrites it as a checkpoint of the whole map. */
export const journalBytesMaxDefault = 64 * 2 ** 20;
/** Entries per journal record; a checkpoint of a large map is split into records this size. */
export const recordEntriesMax = 65536;
/** Unit of work for import, export and scrub: one read and one write of this many bytes. */
export const copyChunkBytes = 2 ** 20;

export interface EngineLimits {
  readonly volumeSizeBytesMax: number;
  readonly chainDepthMax: number;
  readonly epochBlocksMax: number;
  readonly journalBytesMax: number;
}

export function resolveLimits(options: Partial<EngineLimits>): EngineLimits {
  const limits: EngineLimits = {
    volumeSizeBytesMax: options.volumeSizeBytesMax ?? volumeSizeBytesMaxDefault,
    chainDepthMax: options.chainDepthMax ?? chainDepthMaxDefault,
    epochBlocksMax: options.epochBlocksMax ?? epochBlocksMaxDefault,
    journalBytesMax: options.journalBytesMax ?? journalBytesMaxDefault,
  };
  checkIntegerOption('volumeSizeBytesMax', limits.volumeSizeBytesMax, 1, 2 ** 32 * 4096);
  checkIntegerOption('chainDepthMax', limits.chainDepthMax, 1, 1024);
  checkIntegerOption('epochBlocksMax', limits.epochBlocksMax, 1, 2 ** 22);
  checkIntegerOption('journalBytesMax', limits.journalBytesMax, 4096, 2 ** 40);
  return limits;
}

export function checkBlockSize(blockSizeBytes: number): void {
  checkIntegerOption('blockSizeBytes', blockSizeBytes, blockSizeBytesMin, blockSizeBytesMax);
  if ((blockSizeBytes & (blockSizeBytes - 1)) !== 0) {
    throw new ContinuumError(
      'CONTINUUM_ERR_CONFIG',
      `blockSizeBytes must be a power of two, got ${blockSizeBytes}`,
    );
  }
}

function checkIntegerOption(name: string, value: number, min: number, max: number): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new ContinuumError(
      'CONTINUUM_ERR_CONFIG',
      `${name} must be an integer from ${min} to ${max}, got ${String(value)}`,
    );
  }
}

/** `what` says which kind of name it is ("volume", "snapshot", "image") for the message. */
export function checkName(what: string, name: unknown): asserts name is string {
  if (typeof name !== 'string' || name.length === 0 || name.length > nameLengthMax) {
    throw new ContinuumError(
      'CONTINUUM_ERR_VOLUME_BAD_NAME',
      `${what} name must be 1 to ${nameLengthMax} characters, got ${JSON.stringify(name)}`,
    );
  }
  if (!namePattern.test(name)) {
    throw new ContinuumError(
      'CONTINUUM_ERR_VOLUME_BAD_NAME',
      `${what} name ${JSON.stringify(name)} must start with a lowercase letter or digit and ` +
        'contain only lowercase letters, digits, ".", "_" and "-"',
    );
  }
}

export function checkVolumeSize(
  sizeBytes: unknown,
  blockSizeBytes: number,
  limits: EngineLimits,
): asserts sizeBytes is number {
  if (typeof sizeBytes !== 'number' || !Number.isSafeInteger(sizeBytes) || sizeBytes <= 0) {
    throw new ContinuumError(
      'CONTINUUM_ERR_VOLUME_BAD_SIZE',
      `volume size must be a positive whole number of bytes, got ${String(sizeBytes)}`,
    );
  }
  if (sizeBytes % blockSizeBytes !== 0) {
    throw new ContinuumError(
      'CONTINUUM_ERR_VOLUME_BAD_SIZE',
      `volume size ${sizeBytes} is not a multiple of the block size ${blockSizeBytes} bytes`,
    );
  }
  if (sizeBytes / blockSizeBytes > blockCountMax) {
    throw new ContinuumError(
      'CONTINUUM_ERR_VOLUME_BAD_SIZE',
      `volume size ${sizeBytes} is more than ${blockCountMax} blocks of ${blockSizeBytes} bytes`,
    );
  }
  if (sizeBytes > limits.volumeSizeBytesMax) {
    throw new ContinuumError(
      'CONTINUUM_ERR_VOLUME_BAD_SIZE',
      `volume size ${sizeBytes} exceeds the limit of ${limits.volumeSizeBytesMax} bytes`,
    );
  }
}

/** Rounds an image's length up to whole blocks, as qemu-img rounds to sectors. */
export function roundUpToBlock(lengthBytes: number, blockSizeBytes: number): number {
  return Math.ceil(lengthBytes / blockSizeBytes) * blockSizeBytes;
}
