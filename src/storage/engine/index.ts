// Public surface of the per-node block engine (docs/storage-engine.md). The NBD server, the
// attach code and the CLI import from here, not from the modules behind it.
export { VolumeStore } from './volume-store.js';
export type {
  ImageInfo,
  LayerInfo,
  ProgressListener,
  VolumeInfo,
  VolumeStoreOptions,
} from './volume-store.js';
export { Volume } from './volume-handle.js';
export type { BlockChange, ChangeListener } from './volume-device.js';
export type { BlockChecksums } from './chain-status.js';
export type { ImportOptions, ImportResult } from './image-import.js';
export type { ExportOptions, ExportResult } from './image-export.js';
export type { ImageFormat } from './qemu-img.js';
export type { Progress } from './progress.js';
export type { BlockReader, ScrubFinding, ScrubOptions, ScrubReport } from './scrub.js';
export { formatSourceRef, parseSourceRef, type SourceRef } from './source-ref.js';
export { openRawReader } from './raw-reader.js';
export {
  blockSizeBytesDefault,
  chainDepthMaxDefault,
  requestBytesMax,
  volumeSizeBytesMaxDefault,
} from './limits.js';
