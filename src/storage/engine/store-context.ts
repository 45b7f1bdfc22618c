// What the store's operations (store-changes.ts, image-import.ts, image-export.ts, scrub.ts) need
// from the VolumeStore that runs them. Keeping it an interface lets those modules stay out of
// volume-store.ts and free of import cycles.
import type { Logger } from '../../core/ports.js';
import type { Catalog } from './catalog.js';
import type { LayerCache } from './layer-cache.js';
import type { EngineLimits } from './limits.js';
import type { SourceRef } from './source-ref.js';
import type { VolumeDevice } from './volume-device.js';
import type { Volume } from './volume-handle.js';

export interface StoreContext {
  readonly blockSizeBytes: number;
  readonly limits: EngineLimits;
  readonly logger: Logger;
  /** Scratch space for image conversions, emptied at open. */
  readonly tmpDir: string;
  readonly qemuImgPath: string;
  readonly layers: LayerCache;
  /** The committed catalog; treat as read-only and copy before changing. */
  catalog(): Catalog;
  /** Runs catalog changes one at a time. */
  control<T>(task: () => Promise<T>): Promise<T>;
  /** Makes `next` the durable catalog. Call inside `control`. */
  commit(next: Catalog): Promise<void>;
  /** A layer id no other layer has or will get, even before it is committed. */
  newLayerId(): string;
  createLayerFiles(id: string, generation: number): Promise<void>;
  deleteLayerFiles(ids: readonly string[]): Promise<void>;
  /** The shared device of an open source ("vol", "vol@snap", "image:name"), if open. */
  openDevice(key: string): VolumeDevice | undefined;
  /** Whether anything is open on the volume, its snapshots, or (for "image:x") the image. */
  isInUse(volumeOrImageKey: string): boolean;
  /** Names of open devices whose chain includes `layerId`. */
  openUsersOf(layerId: string): string[];
  /** Opens a handle without taking `control` (for operations already inside it). */
  openUnlocked(ref: SourceRef, options: { readOnly: boolean }): Promise<Volume>;
}
