// Folding a layer into the one above it, which is how a snapshot in the middle of a chain is
// deleted. Every block of the lower layer that the upper layer does not have is copied up (data
// checked against its checksum on the way), then the upper layer is flushed. What any chain
// through the upper layer reads is the same before, during and after: the copied blocks are the
// ones it would have read from below. So a crash at any point leaves a correct store; the catalog
// commit that drops the lower layer comes only after the copy is durable.
import { entryAbsent, entryZero } from './block-map.js';
import { readChain } from './chain-read.js';
import type { Layer } from './layer.js';

const runBlocksMax = 256;

export async function mergeIntoUpper(
  lower: Layer,
  upper: Layer,
  options: { hasParentAfter: boolean; name: string },
): Promise<number> {
  const wasFrozen = upper.frozen;
  await upper.thaw();
  upper.zeroEntry = options.hasParentAfter ? entryZero : entryAbsent;
  const blocks: number[] = [];
  lower.map.forEachEntry((block) => {
    if (upper.map.entry(block) === entryAbsent) blocks.push(block);
  });
  const blockSize = lower.blockSizeBytes;
  let index = 0;
  while (index < blocks.length) {
    const start = blocks[index]!;
    let end = start + 1;
    index += 1;
    while (index < blocks.length && blocks[index] === end && end - start < runBlocksMax) {
      end += 1;
      index += 1;
    }
    const data = Buffer.allocUnsafe((end - start) * blockSize);
    await readChain([lower], {
      volumeName: options.name,
      startBlock: start,
      endBlock: end,
      target: data,
      targetOffset: 0,
    });
    await upper.stageWrite(start, data);
  }
  if (wasFrozen) await upper.freeze();
  else await upper.flush();
  return blocks.length;
}
