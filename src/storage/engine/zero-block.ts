// Recognising all-zero blocks cheaply. Every written block is checksummed anyway, so a block is
// only compared with zeroes when its CRC-32 equals the CRC-32 of a zero block; such blocks are
// recorded as "zero" entries in the map and take no space in the data file.
import zlib from 'node:zlib';

const zeroBlocks = new Map<number, { block: Buffer; checksum: number }>();

function zeroBlockOf(blockSizeBytes: number): { block: Buffer; checksum: number } {
  let known = zeroBlocks.get(blockSizeBytes);
  if (known === undefined) {
    const block = Buffer.alloc(blockSizeBytes);
    known = { block, checksum: zlib.crc32(block) };
    zeroBlocks.set(blockSizeBytes, known);
  }
  return known;
}

/** CRC-32 of a block of zeroes: what a hole "holds" when checksums are compared in bulk. */
export function zeroChecksum(blockSizeBytes: number): number {
  return zeroBlockOf(blockSizeBytes).checksum;
}

/** Whether `block` (one block, already checksummed as `checksum`) is all zeroes. */
export function isZeroBlock(block: Buffer, checksum: number): boolean {
  const zero = zeroBlockOf(block.length);
  return checksum === zero.checksum && block.equals(zero.block);
}
