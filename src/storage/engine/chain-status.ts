// What a chain of layers says about blocks without reading their data: allocation extents for
// NBD_CMD_BLOCK_STATUS and sparse copies, and the effective checksum of every block for a resync
// that compares two replicas block by block. Whole chunks that no layer touches are skipped.
import type { Extent } from '../block-device.js';
import { BlockMap, entryAbsent, isDataEntry } from './block-map.js';
import type { Layer } from './layer.js';
import { zeroChecksum } from './zero-block.js';

/** Blocks a single block-status answer may cover; the client asks again for the rest. */
export const statusBlocksMax = 2 ** 24;

/** Whether no layer in the chain has an entry in the chunk holding `block`. */
export function chainChunkIsEmpty(chain: readonly Layer[], block: number): boolean {
  for (const layer of chain) if (!layer.map.chunkIsEmpty(block)) return false;
  return true;
}

/** True where the block reads from a data slot of some layer, false for zeroes and holes. */
function holdsData(chain: readonly Layer[], block: number): boolean {
  for (const layer of chain) {
    const entry = layer.map.entry(block);
    if (entry !== entryAbsent) return isDataEntry(entry);
  }
  return false;
}

export function chainExtents(
  chain: readonly Layer[],
  range: { offsetBytes: number; lengthBytes: number },
): Extent[] {
  const { offsetBytes, lengthBytes } = range;
  const blockSize = chain[0]!.blockSizeBytes;
  const endBytes = offsetBytes + lengthBytes;
  const startBlock = Math.floor(offsetBytes / blockSize);
  const endBlock = Math.min(Math.ceil(endBytes / blockSize), startBlock + statusBlocksMax);
  const extents: Extent[] = [];
  let runStart = offsetBytes;
  let runData: boolean | null = null;
  const close = (endAt: number): void => {
    if (runData === null || endAt <= runStart) return;
    extents.push({ lengthBytes: endAt - runStart, hole: !runData, zero: !runData });
    runStart = endAt;
  };
  let block = startBlock;
  while (block < endBlock) {
    let data: boolean;
    let next: number;
    if (chainChunkIsEmpty(chain, block)) {
      data = false;
      next = Math.min(BlockMap.nextChunkStart(block), endBlock);
    } else {
      data = holdsData(chain, block);
      next = block + 1;
    }
    if (runData !== data) {
      close(Math.max(block * blockSize, offsetBytes));
      runData = data;
    }
    block = next;
  }
  close(Math.min(endBlock * blockSize, endBytes));
  return extents;
}

export interface BlockChecksums {
  /** CRC-32 of every block as it reads now; a hole or zeroed block has the CRC of zeroes. */
  readonly checksums: Uint32Array;
  /** 1 where the block reads from stored data, 0 where it reads as zeroes without any. */
  readonly allocated: Uint8Array;
}

export function chainChecksums(
  chain: readonly Layer[],
  range: { startBlock: number; blockCount: number },
): BlockChecksums {
  const { startBlock, blockCount } = range;
  const zero = zeroChecksum(chain[0]!.blockSizeBytes);
  const checksums = new Uint32Array(blockCount).fill(zero);
  const allocated = new Uint8Array(blockCount);
  for (let index = 0; index < blockCount; index++) {
    const block = startBlock + index;
    for (const layer of chain) {
      const entry = layer.map.entry(block);
      if (entry === entryAbsent) continue;
      if (isDataEntry(entry)) {
        checksums[index] = layer.map.checksum(block);
        allocated[index] = 1;
      }
      break;
    }
  }
  return { checksums, allocated };
}
