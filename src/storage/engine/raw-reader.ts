// A raw image file as a BlockReader: the "good copy" a scrub repairs from when the copy is a
// backup or an export rather than a replica's volume.
import { closeFile, openFile, readAt } from './file-io.js';
import type { BlockReader } from './scrub.js';

export async function openRawReader(
  filePath: string,
): Promise<BlockReader & { close(): Promise<void> }> {
  const fd = await openFile(filePath, 'r');
  return {
    async read(offsetBytes: number, lengthBytes: number): Promise<Buffer> {
      const buffer = Buffer.alloc(lengthBytes);
      await readAt(fd, buffer, 0, lengthBytes, offsetBytes);
      return buffer;
    },
    close: () => closeFile(fd),
  };
}
