// The state behind a VolumeStore (volume-store.ts is the public face): the store directory,
// its catalog, open layers and open devices. It is the StoreContext the operations run against.
//
//   <root>/store.json          catalog: layers and the names that refer to them (catalog.ts)
//   <root>/lock                process id of the engine that owns the directory (store-lock.ts)
//   <root>/layers/<id>.data    a layer's data slots (layer.ts)
//   <root>/layers/<id>.journal a layer's allocation map as a journal (journal.ts)
//   <root>/tmp/                scratch for image conversions
//
// Handles of one volume share one device. Structural changes run one at a time (`control`) and
// commit the catalog atomically.
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { silentLogger, type Logger } from '../../core/ports.js';
import { ContinuumError } from '../../core/errors.js';
import { emptyCatalog, loadCatalog, saveCatalog, type Catalog } from './catalog.js';
import { LayerCache } from './layer-cache.js';
import { createLayerFiles } from './layer-open.js';
import {
  blockSizeBytesDefault,
  checkBlockSize,
  resolveLimits,
  type EngineLimits,
} from './limits.js';
import { resolveSource, type SourceRef } from './source-ref.js';
import type { StoreContext } from './store-context.js';
import { acquireStoreLock } from './store-lock.js';
import { VolumeDevice } from './volume-device.js';
import { Volume } from './volume-handle.js';

export interface VolumeStoreOptions extends Partial<EngineLimits> {
  /** Block size of a new store; an existing store keeps the one it was created with. */
  readonly blockSizeBytes?: number;
  readonly logger?: Logger;
  /** qemu-img for qcow2 import and export (default: "qemu-img" on PATH). */
  readonly qemuImgPath?: string;
}

interface OpenDevice {
  readonly device: VolumeDevice;
  handles: number;
}

export class StoreState implements StoreContext {
  readonly layers: LayerCache;
  readonly tmpDir: string;
  private current: Catalog;
  private layerNumber: number;
  private readonly devices = new Map<string, OpenDevice>();
  private controlTail: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(
    readonly root: string,
    catalog: Catalog,
    readonly limits: EngineLimits,
    readonly logger: Logger,
    readonly qemuImgPath: string,
    private readonly unlock: () => Promise<void>,
  ) {
    this.current = catalog;
    this.layerNumber = catalog.nextLayerNumber;
    this.tmpDir = path.join(root, 'tmp');
    this.layers = new LayerCache(path.join(root, 'layers'), catalog.blockSizeBytes, limits, logger);
  }

  /** Opens (creating if needed) the store at `root`; the process holds it until `close()`. */
  static async open(root: string, options: VolumeStoreOptions): Promise<StoreState> {
    const limits = resolveLimits(options);
    if (options.blockSizeBytes !== undefined) checkBlockSize(options.blockSizeBytes);
    await mkdir(path.join(root, 'layers'), { recursive: true });
    await mkdir(path.join(root, 'tmp'), { recursive: true });
    const unlock = await acquireStoreLock(path.join(root, 'lock'));
    try {
      const catalogPath = path.join(root, 'store.json');
      let catalog = await loadCatalog(catalogPath);
      if (catalog === null) {
        catalog = emptyCatalog(options.blockSizeBytes ?? blockSizeBytesDefault);
        await saveCatalog(catalogPath, catalog);
      } else if (
        options.blockSizeBytes !== undefined &&
        options.blockSizeBytes !== catalog.blockSizeBytes
      ) {
        throw new ContinuumError(
          'CONTINUUM_ERR_CONFIG',
          `store ${root} has ${catalog.blockSizeBytes}-byte blocks, not ${options.blockSizeBytes}`,
        );
      }
      await removeLeftovers(root, catalog);
      const logger = options.logger ?? silentLogger;
      const qemuImgPath = options.qemuImgPath ?? 'qemu-img';
      return new StoreState(root, catalog, limits, logger, qemuImgPath, unlock);
    } catch (error) {
      await unlock();
      throw error;
    }
  }

  get blockSizeBytes(): number {
    return this.current.blockSizeBytes;
  }

  catalog(): Catalog {
    return this.current;
  }

  control<T>(task: () => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      if (this.closed) throw new ContinuumError('CONTINUUM_ERR_STORE_CLOSED', 'store is closed');
      return task();
    };
    const result = this.controlTail.then(run, run);
    this.controlTail = result.catch(() => undefined);
    return result;
  }

  async commit(next: Catalog): Promise<void> {
    next.nextLayerNumber = Math.max(next.nextLayerNumber, this.layerNumber);
    await saveCatalog(path.join(this.root, 'store.json'), next);
    this.current = next;
  }

  newLayerId(): string {
    const id = `l${String(this.layerNumber).padStart(6, '0')}`;
    this.layerNumber += 1;
    return id;
  }

  createLayerFiles(id: string, generation: number): Promise<void> {
    return createLayerFiles(this.layers.paths(id), {
      blockSizeBytes: this.blockSizeBytes,
      generation,
    });
  }

  async deleteLayerFiles(ids: readonly string[]): Promise<void> {
    for (const id of ids) {
      const paths = this.layers.paths(id);
      await rm(paths.dataPath, { force: true });
      await rm(paths.journalPath, { force: true });
    }
  }

  openDevice(key: string): VolumeDevice | undefined {
    return this.devices.get(key)?.device;
  }

  isInUse(key: string): boolean {
    for (const open of this.devices.keys()) {
      if (open === key || open.startsWith(`${key}@`)) return true;
    }
    return false;
  }

  openUsersOf(layerId: string): string[] {
    const users: string[] = [];
    for (const [key, open] of this.devices) {
      if (open.device.chain.some((layer) => layer.id === layerId)) users.push(key);
    }
    return users;
  }

  async openUnlocked(ref: SourceRef, options: { readOnly: boolean }): Promise<Volume> {
    const source = resolveSource(this.current, ref);
    let open = this.devices.get(source.key);
    if (open === undefined) {
      const layers = await this.layers.acquireChain(
        source.chain,
        (id) => this.current.layers[id]!.frozen,
      );
      const device = new VolumeDevice(source.key, layers, source.sizeBytes, !source.live);
      open = { device, handles: 0 };
      this.devices.set(source.key, open);
    }
    open.handles += 1;
    const readOnly = options.readOnly || !source.live;
    return new Volume(open.device, readOnly, () => this.control(() => this.release(source.key)));
  }

  /** Sizes on disk of a layer's files, as the file system allocated them. */
  async storedBytes(id: string): Promise<number> {
    const paths = this.layers.paths(id);
    let total = 0;
    for (const file of [paths.dataPath, paths.journalPath]) {
      total += await stat(file).then(
        (stats) => stats.blocks * 512,
        () => 0,
      );
    }
    return total;
  }

  /** Closes every open device and layer, then gives up the directory. */
  async close(): Promise<void> {
    await this.control(async () => {
      for (const open of this.devices.values()) await open.device.close().catch(() => undefined);
      this.devices.clear();
      await this.layers.closeAll();
      this.closed = true;
    });
    await this.unlock();
  }

  private async release(key: string): Promise<void> {
    const open = this.devices.get(key);
    if (open === undefined) return;
    open.handles -= 1;
    if (open.handles > 0) return;
    this.devices.delete(key);
    try {
      await open.device.close();
    } finally {
      await this.layers.releaseAll(open.device.chain.map((layer) => layer.id));
    }
  }
}

/** Removes layer files no catalog entry names and empties tmp/: leftovers of a crash. */
async function removeLeftovers(root: string, catalog: Catalog): Promise<void> {
  const layersDir = path.join(root, 'layers');
  for (const file of await readdir(layersDir)) {
    const id = file.replace(/\.(data|journal)(\.tmp)?$/, '');
    const known = id in catalog.layers && !file.endsWith('.tmp');
    if (!known) await rm(path.join(layersDir, file), { force: true });
  }
  const tmpDir = path.join(root, 'tmp');
  for (const file of await readdir(tmpDir)) await rm(path.join(tmpDir, file), { force: true });
}
