// The per-node block engine's entry point: a directory of volumes, their snapshots and golden
// images (layout in store-state.ts, format in docs/storage-engine.md). Volumes open as Volume
// handles, which implement BlockDevice for the NBD server; everything else here is the control
// plane: create, grow, snapshot, clone, delete, import, export, scrub, list.
import type { ProgressListener } from './progress.js';
import { exportImage, type ExportOptions, type ExportResult } from './image-export.js';
import {
  importImage,
  importVolume,
  type ImportOptions,
  type ImportResult,
} from './image-import.js';
import { chainOf } from './catalog.js';
import { checkName } from './limits.js';
import { scrub, type ScrubOptions, type ScrubReport } from './scrub.js';
import type { SourceRef } from './source-ref.js';
import { StoreState, type VolumeStoreOptions } from './store-state.js';
import {
  cloneVolume,
  createVolume,
  deleteImage,
  deleteSnapshot,
  deleteVolume,
  growVolume,
  snapshotVolume,
} from './store-changes.js';
import type { Volume } from './volume-handle.js';

export interface LayerInfo {
  readonly id: string;
  readonly frozen: boolean;
  /** Space the layer's files take on disk (allocated blocks, not apparent size). */
  readonly storedBytes: number;
}

export interface VolumeInfo {
  readonly name: string;
  readonly sizeBytes: number;
  readonly open: boolean;
  readonly snapshots: readonly { name: string; sizeBytes: number }[];
  /** The golden image at the bottom of the chain, if the volume was cloned from one. */
  readonly baseImage: string | null;
  /** What the volume was cloned from: `volume@snapshot` or a golden image's name. */
  readonly origin: string | null;
  /** The live chain, top first. */
  readonly layers: readonly LayerInfo[];
}

export interface ImageInfo {
  readonly name: string;
  readonly sizeBytes: number;
  readonly sha256: string;
  readonly layer: LayerInfo;
  /** Volumes stacked on this image. */
  readonly dependents: readonly string[];
}

export type { VolumeStoreOptions, ProgressListener };

export class VolumeStore {
  private constructor(private readonly state: StoreState) {}

  /** Opens the store at `root`, creating it if needed; one process may hold it at a time. */
  static async open(root: string, options: VolumeStoreOptions = {}): Promise<VolumeStore> {
    return new VolumeStore(await StoreState.open(root, options));
  }

  get root(): string {
    return this.state.root;
  }

  get blockSizeBytes(): number {
    return this.state.blockSizeBytes;
  }

  create(name: string, sizeBytes: number): Promise<void> {
    return createVolume(this.state, name, sizeBytes);
  }

  /** Opens a live volume; handles of one volume share its device and see each other's writes. */
  async open(name: string, options: { readOnly?: boolean } = {}): Promise<Volume> {
    checkName('volume', name);
    return await this.state.control(() =>
      this.state.openUnlocked({ volume: name }, { readOnly: options.readOnly === true }),
    );
  }

  /** Opens a snapshot or golden image (always read-only), or a live volume read-only. */
  openSource(source: SourceRef): Promise<Volume> {
    return this.state.control(() => this.state.openUnlocked(source, { readOnly: true }));
  }

  grow(name: string, sizeBytes: number): Promise<void> {
    return growVolume(this.state, name, sizeBytes);
  }

  /** Freezes the volume's top layer as `name@snapshot` and gives the volume a new top. */
  snapshot(name: string, snapshot: string): Promise<void> {
    return snapshotVolume(this.state, name, snapshot);
  }

  /** A new volume whose writable layer stacks on a snapshot or golden image. */
  clone(name: string, source: SourceRef, options: { sizeBytes?: number } = {}): Promise<void> {
    return cloneVolume(this.state, name, source, options);
  }

  deleteVolume(name: string): Promise<void> {
    return deleteVolume(this.state, name);
  }

  deleteSnapshot(name: string, snapshot: string): Promise<void> {
    return deleteSnapshot(this.state, name, snapshot);
  }

  deleteImage(name: string): Promise<void> {
    return deleteImage(this.state, name);
  }

  /** Imports a raw or qcow2 file as a golden image, reusing an identical one if present. */
  importImage(name: string, filePath: string, options?: ImportOptions): Promise<ImportResult> {
    return importImage(this.state, name, filePath, options);
  }

  /** Imports a raw or qcow2 file as a new volume. */
  importVolume(name: string, filePath: string, options?: ImportOptions): Promise<ImportResult> {
    return importVolume(this.state, name, filePath, options);
  }

  export(source: SourceRef, filePath: string, options?: ExportOptions): Promise<ExportResult> {
    return exportImage(this.state, source, filePath, options);
  }

  /** Checks every stored block against its checksum; repairs from `repairFrom` if given. */
  scrub(source: SourceRef, options?: ScrubOptions): Promise<ScrubReport> {
    return scrub(this.state, source, options);
  }

  async list(): Promise<VolumeInfo[]> {
    const catalog = this.state.catalog();
    const imageOfLayer = new Map(Object.entries(catalog.images).map(([n, i]) => [i.layer, n]));
    const snapshotOfLayer = new Map<string, { volume: string; ref: string }>();
    for (const [volume, record] of Object.entries(catalog.volumes)) {
      for (const [snapshot, { layer }] of Object.entries(record.snapshots))
        snapshotOfLayer.set(layer, { volume, ref: `${volume}@${snapshot}` });
    }
    const volumes: VolumeInfo[] = [];
    for (const [name, volume] of Object.entries(catalog.volumes).sort(byName)) {
      const chain = chainOf(catalog, volume.top);
      const layers = await Promise.all(chain.map((id) => this.layerInfo(id)));
      volumes.push({
        name,
        sizeBytes: volume.sizeBytes,
        open: this.state.openDevice(name) !== undefined,
        snapshots: Object.entries(volume.snapshots)
          .sort(byName)
          .map(([snapshot, record]) => ({ name: snapshot, sizeBytes: record.sizeBytes })),
        baseImage: imageOfLayer.get(chain[chain.length - 1]!) ?? null,
        origin: originOf(name, chain, snapshotOfLayer, imageOfLayer),
        layers,
      });
    }
    return volumes;
  }

  async listImages(): Promise<ImageInfo[]> {
    const catalog = this.state.catalog();
    const images: ImageInfo[] = [];
    for (const [name, image] of Object.entries(catalog.images).sort(byName)) {
      const dependents = Object.entries(catalog.volumes)
        .filter(([, volume]) => chainOf(catalog, volume.top).includes(image.layer))
        .map(([volume]) => volume);
      images.push({
        name,
        sizeBytes: image.sizeBytes,
        sha256: image.sha256,
        layer: await this.layerInfo(image.layer),
        dependents,
      });
    }
    return images;
  }

  /** Closes every open volume (flushing it) and releases the directory. */
  close(): Promise<void> {
    return this.state.close();
  }

  private async layerInfo(id: string): Promise<LayerInfo> {
    const frozen = this.state.catalog().layers[id]?.frozen ?? false;
    return { id, frozen, storedBytes: await this.state.storedBytes(id) };
  }
}

/** The first layer below the top that another volume's snapshot or an image names. */
function originOf(
  name: string,
  chain: readonly string[],
  snapshots: ReadonlyMap<string, { volume: string; ref: string }>,
  images: ReadonlyMap<string, string>,
): string | null {
  for (const layer of chain.slice(1)) {
    const snapshot = snapshots.get(layer);
    if (snapshot !== undefined && snapshot.volume !== name) return snapshot.ref;
    const image = images.get(layer);
    if (image !== undefined) return image;
  }
  return null;
}

function byName<T>(a: [string, T], b: [string, T]): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;
}
