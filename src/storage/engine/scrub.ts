// Scrub: read every stored block of every layer under a volume, snapshot or image and compare it
// with the checksum recorded when it was written. Reads go through the device's ordering, so a
// scrub of a volume in use never mistakes a block being rewritten for damage.
//
// Repair needs a good copy of what the scrubbed source reads (a replica, a backup image). A damaged
// block is repaired only where it is what the source reads (no newer layer hides it), and only
// with data whose checksum is the recorded one, so a wrong "good copy" cannot make things worse.
// Damage in a layer hidden by a newer one is reported; scrub the snapshot that reads it to repair.
import zlib from 'node:zlib';
import { entryAbsent, isDataEntry, slotOf } from './block-map.js';
import { fromBlockError } from './engine-errors.js';
import type { Layer } from './layer.js';
import type { ProgressListener } from './progress.js';
import { formatSourceRef, type SourceRef } from './source-ref.js';
import type { StoreContext } from './store-context.js';
import type { VolumeDevice } from './volume-device.js';

/** Anything that can supply a good copy of the scrubbed source's bytes (a BlockDevice can). */
export interface BlockReader {
  read(offsetBytes: number, lengthBytes: number): Promise<Buffer>;
}

export interface ScrubOptions {
  readonly repairFrom?: BlockReader;
  readonly onProgress?: ProgressListener;
}

export interface ScrubFinding {
  readonly layer: string;
  readonly block: number;
  readonly offsetBytes: number;
  /** The scrubbed source reads this block from the damaged layer. */
  readonly visible: boolean;
  readonly repaired: boolean;
  readonly detail: string;
}

export interface ScrubReport {
  readonly source: string;
  readonly blocksChecked: number;
  readonly damaged: readonly ScrubFinding[];
  readonly repairedCount: number;
}

const groupBlocksMax = 256;

export async function scrub(
  context: StoreContext,
  source: SourceRef,
  options: ScrubOptions = {},
): Promise<ScrubReport> {
  const key = formatSourceRef(source);
  const volume = await context.control(() => context.openUnlocked(source, { readOnly: true }));
  try {
    const device = context.openDevice(key)!;
    const chain = device.chain;
    const total = chain.reduce((sum, layer) => sum + layer.map.dataBlocks, 0);
    const damaged: ScrubFinding[] = [];
    let checked = 0;
    for (let depth = 0; depth < chain.length; depth++) {
      const layer = chain[depth]!;
      const blocks: number[] = [];
      layer.map.forEachEntry((block, entry) => {
        if (isDataEntry(entry)) blocks.push(block);
      });
      for (let index = 0; index < blocks.length; index += groupBlocksMax) {
        const group = blocks.slice(index, index + groupBlocksMax);
        const bad = await device.withBlocks(group[0]!, group[group.length - 1]! + 1, false, () =>
          checkGroup(layer, group),
        );
        for (const block of bad) {
          damaged.push(await handleDamage(device, depth, block, options.repairFrom));
        }
        checked += group.length;
        const size = layer.blockSizeBytes;
        options.onProgress?.({
          phase: 'scrubbing',
          doneBytes: checked * size,
          totalBytes: total * size,
        });
      }
    }
    const repairedCount = damaged.filter((finding) => finding.repaired).length;
    return { source: key, blocksChecked: checked, damaged, repairedCount };
  } catch (error) {
    throw fromBlockError(`scrubbing ${key}`, error);
  } finally {
    await volume.close();
  }
}

/** Returns the blocks of `group` whose data fails its checksum. */
async function checkGroup(layer: Layer, group: readonly number[]): Promise<number[]> {
  const size = layer.blockSizeBytes;
  const buffer = Buffer.allocUnsafe(size);
  const bad: number[] = [];
  for (const block of group) {
    const entry = layer.map.entry(block);
    if (!isDataEntry(entry)) continue; // changed since the list was taken
    await layer.readSlots(slotOf(entry), 1, buffer, 0);
    if (zlib.crc32(buffer) !== layer.map.checksum(block)) bad.push(block);
  }
  return bad;
}

async function handleDamage(
  device: VolumeDevice,
  depth: number,
  block: number,
  repairFrom: BlockReader | undefined,
): Promise<ScrubFinding> {
  const chain = device.chain;
  const layer = chain[depth]!;
  const size = layer.blockSizeBytes;
  const visible = chain.slice(0, depth).every((upper) => upper.map.entry(block) === entryAbsent);
  const finding = { layer: layer.id, block, offsetBytes: block * size, visible };
  if (!visible) {
    return { ...finding, repaired: false, detail: 'hidden by a newer layer; scrub the snapshot' };
  }
  if (repairFrom === undefined) {
    return { ...finding, repaired: false, detail: 'checksum mismatch; no good copy given' };
  }
  let good: Buffer;
  try {
    good = await repairFrom.read(block * size, size);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    return { ...finding, repaired: false, detail: `reading the good copy failed: ${reason}` };
  }
  if (good.length !== size || zlib.crc32(good) !== layer.map.checksum(block)) {
    return { ...finding, repaired: false, detail: 'the good copy differs from the checksum' };
  }
  const entry = layer.map.entry(block);
  await device.withBlocks(block, block + 1, true, async () => {
    if (layer.map.entry(block) === entry) await layer.repairBlock(block, good);
  });
  return { ...finding, repaired: true, detail: 'rewritten from the good copy' };
}
