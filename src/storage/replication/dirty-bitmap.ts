// The dirty bitmap a primary keeps for one absent peer of one volume (docs/replication.md, "A
// replica that stops answering" and "Resync"): one bit per fixed-size region of the volume, set
// when a mutation the peer has not received touches the region. The primary creates it when the
// controller drops the peer from the ISR, at the generation the peer's data stopped at, marks every
// mutation the peer never acked, and saves it before releasing held replies; from then on every
// `onChange` from the engine marks regions, and the bitmap is saved (`saveIfChanged`) before the
// next flush reply, so "persist, then acknowledge" holds (CONVENTIONS.md item 2). When the peer
// returns with that generation as its newest, a delta resync walks `dirtyRuns` from its cursor and
// clears each run before reading it for the copy, so a write that lands during the copy sets the
// bit again and the copy visits it once more. The file carries a CRC-32 over its header and bits:
// a torn or damaged bitmap is reported as VOLUME_CORRUPT, and the caller falls back to a full
// resync rather than trust it.
import { readFile } from 'node:fs/promises';
import zlib from 'node:zlib';
import { ContinuumError } from '../../core/errors.js';
import { replaceFileAtomically } from '../engine/file-io.js';
import { generationIdPattern } from './replica-meta.js';

export const regionSizeBytesMin = 512;
export const regionSizeBytesMax = 2 ** 30;
/**
 * Regions one bitmap may hold: 32 MiB of bits, a 16 TiB volume (the engine's largest) at 64 KiB
 * regions. Region numbers then stay below 2^31, so the bit arithmetic below is exact.
 */
export const dirtyBitmapRegionCountMax = 2 ** 28;

// File layout, little-endian. The CRC covers everything after itself, header fields included, so
// a flipped bit in the region size or the volume size is caught like one in the bits.
//   0   4  magic "CDBM"          16  8  volume size in bytes
//   4   2  format version (1)    24  8  generation the bitmap started at (64-bit id)
//   6   2  header bytes (40)     32  4  region count, ceil(volume size / region size)
//   8   4  CRC-32 of bytes 12..  36  4  dirty region count (checked against the bits)
//  12   4  region size in bytes  40  …  bits: region r is bit (r & 7) of byte (r >> 3)
const magic = Buffer.from('CDBM', 'latin1');
const formatVersion = 1;
const headerBytes = 40;

export interface DirtyBitmapOptions {
  readonly regionSizeBytes: number;
  readonly volumeSizeBytes: number;
  /** The generation the peer's data stopped at: a delta resync applies only from there. */
  readonly startGeneration: string;
}

/** A maximal run of dirty regions, also as the bytes it covers (the last region may be short). */
export interface DirtyRun {
  readonly startRegion: number;
  readonly regionCount: number;
  readonly offsetBytes: number;
  readonly lengthBytes: number;
}

const bitsSet = new Uint8Array(256);
for (let byte = 1; byte < 256; byte++) bitsSet[byte] = (byte & 1) + bitsSet[byte >>> 1]!;

export class DirtyBitmap {
  // Bytes of bits in a buffer rounded up to whole 32-bit words, so that `words` can skip 32 clean
  // or dirty regions at a time. Bits past the last region are always zero.
  private bits: Uint8Array;
  private words: Uint32Array;
  private sizeBytes: number;
  private regions: number;
  private dirtyCount = 0;
  private changedSinceSave = false;
  private saving: Promise<void> = Promise.resolve();

  private constructor(
    readonly regionSizeBytes: number,
    readonly startGeneration: string,
    volumeSizeBytes: number,
  ) {
    this.sizeBytes = volumeSizeBytes;
    this.regions = regionCountFor(volumeSizeBytes, regionSizeBytes);
    this.bits = new Uint8Array(wordAlignedBytes(this.regions));
    this.words = new Uint32Array(this.bits.buffer);
  }

  /** A clean bitmap over `volumeSizeBytes`; throws RangeError on a bad option. */
  static create(options: DirtyBitmapOptions): DirtyBitmap {
    checkOptions(options);
    const { regionSizeBytes, volumeSizeBytes, startGeneration } = options;
    return new DirtyBitmap(regionSizeBytes, startGeneration, volumeSizeBytes);
  }

  /** The bitmap saved at `filePath`, or null when there is none; damage is VOLUME_CORRUPT. */
  static async load(filePath: string): Promise<DirtyBitmap | null> {
    let contents: Buffer;
    try {
      contents = await readFile(filePath);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
    const saved = parseFile(contents, filePath);
    const { regionSizeBytes, startGeneration, volumeSizeBytes } = saved.header;
    const bitmap = new DirtyBitmap(regionSizeBytes, startGeneration, volumeSizeBytes);
    bitmap.bits.set(saved.bits);
    bitmap.dirtyCount = saved.dirtyCount;
    return bitmap;
  }

  get volumeSizeBytes(): number {
    return this.sizeBytes;
  }

  get regionCount(): number {
    return this.regions;
  }

  /** Whether bits or size changed since the last save began (a failed save sets it again). */
  get hasUnsavedChanges(): boolean {
    return this.changedSinceSave;
  }

  /** Marks every region the byte range touches, partly or wholly. */
  markRange(offsetBytes: number, lengthBytes: number): void {
    this.checkRange(offsetBytes, lengthBytes);
    if (lengthBytes === 0) return;
    const start = Math.floor(offsetBytes / this.regionSizeBytes);
    const end = Math.ceil((offsetBytes + lengthBytes) / this.regionSizeBytes);
    this.setRegions(start, end, true);
  }

  /**
   * Clears only the regions the byte range covers wholly (the last region of the volume counts as
   * whole when the range reaches the end): a region copied in part still has bytes to copy.
   */
  clearRange(offsetBytes: number, lengthBytes: number): void {
    this.checkRange(offsetBytes, lengthBytes);
    const endBytes = offsetBytes + lengthBytes;
    const start = Math.ceil(offsetBytes / this.regionSizeBytes);
    const end =
      endBytes === this.sizeBytes ? this.regions : Math.floor(endBytes / this.regionSizeBytes);
    if (end > start) this.setRegions(start, end, false);
  }

  isDirty(region: number): boolean {
    if (!Number.isSafeInteger(region) || region < 0 || region >= this.regions) {
      throw new RangeError(`region must be from 0 to ${this.regions - 1}, got ${String(region)}`);
    }
    return this.bit(region);
  }

  /**
   * Maximal runs of dirty regions from `startRegion` on (a run that covers it starts there), in
   * order. Bits are read as each run is produced, so runs cleared meanwhile are not repeated.
   */
  *dirtyRuns(startRegion = 0): Generator<DirtyRun> {
    if (!Number.isSafeInteger(startRegion) || startRegion < 0 || startRegion > this.regions) {
      throw new RangeError(
        `startRegion must be from 0 to ${this.regions}, got ${String(startRegion)}`,
      );
    }
    let region = startRegion;
    for (;;) {
      const first = this.nextRegion(region, true);
      if (first >= this.regions) return;
      const end = this.nextRegion(first, false);
      const offsetBytes = first * this.regionSizeBytes;
      const endBytes = Math.min(end * this.regionSizeBytes, this.sizeBytes);
      yield {
        startRegion: first,
        regionCount: end - first,
        offsetBytes,
        lengthBytes: endBytes - offsetBytes,
      };
      region = end;
    }
  }

  countDirty(): number {
    return this.dirtyCount;
  }

  /** Follows the volume's growth. New regions start clean: past the old end both copies read zeroes. */
  grow(volumeSizeBytes: number): void {
    checkVolumeSize(volumeSizeBytes, this.regionSizeBytes);
    if (volumeSizeBytes < this.sizeBytes) {
      throw new RangeError(
        `a volume never shrinks: ${volumeSizeBytes} bytes is below ${this.sizeBytes}`,
      );
    }
    if (volumeSizeBytes === this.sizeBytes) return;
    const regions = regionCountFor(volumeSizeBytes, this.regionSizeBytes);
    if (wordAlignedBytes(regions) > this.bits.length) {
      const bits = new Uint8Array(wordAlignedBytes(regions));
      bits.set(this.bits);
      this.bits = bits;
      this.words = new Uint32Array(bits.buffer);
    }
    this.sizeBytes = volumeSizeBytes;
    this.regions = regions;
    this.changedSinceSave = true;
  }

  /**
   * Writes the bitmap as it is now, atomically (temporary file, fdatasync, rename, directory
   * fsync). Saves of one bitmap are written in the order they were called, so the last one wins.
   */
  save(filePath: string): Promise<void> {
    const contents = this.encode();
    this.changedSinceSave = false;
    const write = this.saving
      .catch(() => undefined)
      .then(() => replaceFileAtomically(filePath, contents));
    this.saving = write;
    return write.catch((error: unknown) => {
      // What the file holds is unknown now; the next saveIfChanged must write, not wait on this.
      this.changedSinceSave = true;
      throw error;
    });
  }

  /**
   * Makes every change so far durable: saves if something changed since the last save began, and
   * otherwise still waits for the save in flight, which holds those changes. The flush path calls
   * this before answering.
   */
  saveIfChanged(filePath: string): Promise<void> {
    return this.changedSinceSave ? this.save(filePath) : this.saving;
  }

  private bit(region: number): boolean {
    return (this.bits[region >>> 3]! & (1 << (region & 7))) !== 0;
  }

  /** Sets regions [start, end) to `dirty`, a byte at a time in the middle, keeping the count. */
  private setRegions(start: number, end: number, dirty: boolean): void {
    let region = start;
    for (; region < end && (region & 7) !== 0; region++) this.setRegion(region, dirty);
    const fill = dirty ? 0xff : 0;
    for (; region + 8 <= end; region += 8) {
      const index = region >>> 3;
      const before = this.bits[index]!;
      if (before === fill) continue;
      this.dirtyCount += dirty ? 8 - bitsSet[before]! : -bitsSet[before]!;
      this.bits[index] = fill;
      this.changedSinceSave = true;
    }
    for (; region < end; region++) this.setRegion(region, dirty);
  }

  private setRegion(region: number, dirty: boolean): void {
    if (this.bit(region) === dirty) return;
    this.bits[region >>> 3]! ^= 1 << (region & 7);
    this.dirtyCount += dirty ? 1 : -1;
    this.changedSinceSave = true;
  }

  /** The first region at or after `from` whose bit is `dirty`, or the region count. */
  private nextRegion(from: number, dirty: boolean): number {
    const skip = dirty ? 0 : 0xffffffff;
    let region = from;
    while (region < this.regions) {
      if ((region & 31) === 0 && this.words[region >>> 5] === skip) {
        region += 32;
        continue;
      }
      if (this.bit(region) === dirty) return region;
      region++;
    }
    return this.regions;
  }

  private checkRange(offsetBytes: number, lengthBytes: number): void {
    const whole = (value: number): boolean => Number.isSafeInteger(value) && value >= 0;
    if (!whole(offsetBytes) || !whole(lengthBytes) || offsetBytes + lengthBytes > this.sizeBytes) {
      throw new RangeError(
        `range of ${String(lengthBytes)} bytes at ${String(offsetBytes)} is not within the ` +
          `volume of ${this.sizeBytes} bytes`,
      );
    }
  }

  private encode(): Buffer {
    const bitsBytes = Math.ceil(this.regions / 8);
    const out = Buffer.alloc(headerBytes + bitsBytes);
    magic.copy(out, 0);
    out.writeUInt16LE(formatVersion, 4);
    out.writeUInt16LE(headerBytes, 6);
    out.writeUInt32LE(this.regionSizeBytes, 12);
    out.writeBigUInt64LE(BigInt(this.sizeBytes), 16);
    out.write(this.startGeneration, 24, 8, 'hex');
    out.writeUInt32LE(this.regions, 32);
    out.writeUInt32LE(this.dirtyCount, 36);
    out.set(this.bits.subarray(0, bitsBytes), headerBytes);
    out.writeUInt32LE(zlib.crc32(out.subarray(12)), 8);
    return out;
  }
}

/**
 * Checks a saved bitmap in the order that gives the clearest message: the magic and version, the
 * length the header promises (a torn write is short), the CRC, then what the fields must agree on.
 */
function parseFile(
  contents: Buffer,
  filePath: string,
): { header: DirtyBitmapOptions; bits: Uint8Array; dirtyCount: number } {
  const fail = (what: string): never => {
    throw new ContinuumError('CONTINUUM_ERR_VOLUME_CORRUPT', `dirty bitmap ${filePath} ${what}`, {
      details: { path: filePath },
    });
  };
  if (contents.length < headerBytes) {
    fail(`is truncated: ${contents.length} bytes, shorter than its ${headerBytes}-byte header`);
  }
  if (!contents.subarray(0, 4).equals(magic)) fail('does not start with the magic CDBM');
  const version = contents.readUInt16LE(4);
  if (version !== formatVersion) fail(`has format version ${version}, expected ${formatVersion}`);
  if (contents.readUInt16LE(6) !== headerBytes) fail(`has a header size other than ${headerBytes}`);
  const regionCount = contents.readUInt32LE(32);
  const expectedBytes = headerBytes + Math.ceil(regionCount / 8);
  if (contents.length !== expectedBytes) {
    fail(`is ${contents.length} bytes, but its ${regionCount} regions need ${expectedBytes}`);
  }
  const recorded = contents.readUInt32LE(8);
  const computed = zlib.crc32(contents.subarray(12));
  if (recorded !== computed) {
    fail(`fails its CRC-32 (recorded ${hex32(recorded)}, computed ${hex32(computed)})`);
  }
  // The CRC matched, so what follows can only fail for a file this code did not write.
  const regionSizeBytes = contents.readUInt32LE(12);
  const volumeSizeBytes = Number(contents.readBigUInt64LE(16));
  const startGeneration = contents.toString('hex', 24, 32);
  const header: DirtyBitmapOptions = { regionSizeBytes, volumeSizeBytes, startGeneration };
  try {
    checkOptions(header);
  } catch (error) {
    fail(`has an impossible header: ${(error as Error).message}`);
  }
  if (regionCount !== regionCountFor(volumeSizeBytes, regionSizeBytes)) {
    fail(`records ${regionCount} regions for ${volumeSizeBytes} bytes of ${regionSizeBytes}`);
  }
  const bits = contents.subarray(headerBytes);
  if (regionCount % 8 !== 0 && bits[bits.length - 1]! >>> (regionCount % 8) !== 0) {
    fail('has bits set past its last region');
  }
  let dirtyCount = 0;
  for (const byte of bits) dirtyCount += bitsSet[byte]!;
  const recordedDirty = contents.readUInt32LE(36);
  if (dirtyCount !== recordedDirty) {
    fail(`records ${recordedDirty} dirty regions but its bits hold ${dirtyCount}`);
  }
  return { header, bits, dirtyCount };
}

function checkOptions(options: DirtyBitmapOptions): void {
  const { regionSizeBytes, volumeSizeBytes, startGeneration } = options;
  const powerOfTwo = (regionSizeBytes & (regionSizeBytes - 1)) === 0;
  if (!Number.isSafeInteger(regionSizeBytes) || !powerOfTwo) {
    throw new RangeError(`regionSizeBytes must be a power of two, got ${String(regionSizeBytes)}`);
  }
  if (regionSizeBytes < regionSizeBytesMin || regionSizeBytes > regionSizeBytesMax) {
    throw new RangeError(
      `regionSizeBytes must be from ${regionSizeBytesMin} to ${regionSizeBytesMax}, ` +
        `got ${regionSizeBytes}`,
    );
  }
  checkVolumeSize(volumeSizeBytes, regionSizeBytes);
  if (!generationIdPattern.test(startGeneration)) {
    throw new RangeError(
      `startGeneration must be 16 lowercase hex digits, got ${JSON.stringify(startGeneration)}`,
    );
  }
}

function regionCountFor(volumeSizeBytes: number, regionSizeBytes: number): number {
  return Math.ceil(volumeSizeBytes / regionSizeBytes);
}

function wordAlignedBytes(regions: number): number {
  return Math.ceil(regions / 32) * 4;
}

function checkVolumeSize(volumeSizeBytes: number, regionSizeBytes: number): void {
  if (!Number.isSafeInteger(volumeSizeBytes) || volumeSizeBytes <= 0) {
    throw new RangeError(
      `volumeSizeBytes must be a positive whole number, got ${String(volumeSizeBytes)}`,
    );
  }
  const regions = regionCountFor(volumeSizeBytes, regionSizeBytes);
  if (regions > dirtyBitmapRegionCountMax) {
    throw new ContinuumError(
      'CONTINUUM_ERR_VOLUME_LIMIT',
      `a volume of ${volumeSizeBytes} bytes needs ${regions} regions of ${regionSizeBytes} ` +
        `bytes, more than dirtyBitmapRegionCountMax (${dirtyBitmapRegionCountMax})`,
    );
  }
}

function hex32(value: number): string {
  return value.toString(16).padStart(8, '0');
}
