// Reading through a chain of layers: each block comes from the topmost layer that has an entry
// for it. Consecutive blocks held in consecutive slots of one layer are read with one call, and
// every block is checked against its CRC-32 before any of it is returned (CONVENTIONS.md item 11:
// checksummed when written, checked again when read).
import zlib from 'node:zlib';
import { entryAbsent, isDataEntry, slotOf } from './block-map.js';
import { corruptBlock } from './engine-errors.js';
import type { Layer } from './layer.js';

/** The topmost layer with an entry for `block` and that entry, or null where none has one. */
export function resolveBlock(
  chain: readonly Layer[],
  block: number,
): { layer: Layer; entry: number } | null {
  for (const layer of chain) {
    const entry = layer.map.entry(block);
    if (entry !== entryAbsent) return { layer, entry };
  }
  return null;
}

export interface ChainRead {
  /** For messages: "vol", "vol@snap" or "image:name". */
  readonly volumeName: string;
  readonly startBlock: number;
  readonly endBlock: number;
  readonly target: Buffer;
  readonly targetOffset: number;
}

/** Reads blocks [startBlock, endBlock) into `target` at `targetOffset`; zeroes for holes. */
export async function readChain(chain: readonly Layer[], request: ChainRead): Promise<void> {
  const { volumeName, startBlock, endBlock, target, targetOffset } = request;
  const blockSize = chain[0]!.blockSizeBytes;
  const depth = chain.length;
  const reads: Promise<void>[] = [];
  let runLayer: Layer | null = null;
  let runSlot = 0;
  let runStart = 0;
  let runCount = 0;
  const endRun = (): void => {
    if (runLayer === null) return;
    const at = targetOffset + (runStart - startBlock) * blockSize;
    reads.push(readRun(runLayer, volumeName, runSlot, runStart, runCount, target, at));
    runLayer = null;
  };
  for (let block = startBlock; block < endBlock; block++) {
    let layer: Layer | null = null;
    let entry = entryAbsent;
    for (let index = 0; index < depth; index++) {
      entry = chain[index]!.map.entry(block);
      if (entry !== entryAbsent) {
        layer = chain[index]!;
        break;
      }
    }
    if (layer === null || !isDataEntry(entry)) {
      endRun();
      const at = targetOffset + (block - startBlock) * blockSize;
      target.fill(0, at, at + blockSize);
      continue;
    }
    const slot = slotOf(entry);
    if (layer === runLayer && slot === runSlot + runCount) {
      runCount += 1;
      continue;
    }
    endRun();
    runLayer = layer;
    runSlot = slot;
    runStart = block;
    runCount = 1;
  }
  endRun();
  if (reads.length === 1) await reads[0];
  else if (reads.length > 1) await Promise.all(reads);
}

async function readRun(
  layer: Layer,
  volumeName: string,
  slot: number,
  startBlock: number,
  count: number,
  target: Buffer,
  targetOffset: number,
): Promise<void> {
  await layer.readSlots(slot, count, target, targetOffset);
  const blockSize = layer.blockSizeBytes;
  for (let index = 0; index < count; index++) {
    const at = targetOffset + index * blockSize;
    const actual = zlib.crc32(target.subarray(at, at + blockSize));
    const expected = layer.map.checksum(startBlock + index);
    if (actual !== expected) {
      throw corruptBlock(
        `volume ${volumeName} (layer ${layer.id}, slot ${slot + index})`,
        startBlock + index,
        `data does not match its checksum (recorded ${hex(expected)}, found ${hex(actual)})`,
      );
    }
  }
}

function hex(value: number): string {
  return `0x${value.toString(16).padStart(8, '0')}`;
}
