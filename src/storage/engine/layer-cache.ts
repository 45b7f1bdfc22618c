// Open layers, shared. Ten clones of one golden image hold ten references to one Layer object: its
// allocation map is in memory once and its data file is open once. A layer is closed when its
// last reference is released. Recovery findings from opening a layer are logged here.
import path from 'node:path';
import type { Logger } from '../../core/ports.js';
import type { Layer, LayerOptions } from './layer.js';
import { openLayer, type LayerPaths } from './layer-open.js';

interface CacheEntry {
  readonly opening: Promise<Layer>;
  references: number;
}

export class LayerCache {
  private readonly entries = new Map<string, CacheEntry>();

  constructor(
    private readonly layersDir: string,
    private readonly blockSizeBytes: number,
    private readonly options: LayerOptions,
    private readonly logger: Logger,
  ) {}

  paths(id: string): LayerPaths {
    return {
      dataPath: path.join(this.layersDir, `${id}.data`),
      journalPath: path.join(this.layersDir, `${id}.journal`),
    };
  }

  isOpen(id: string): boolean {
    return this.entries.has(id);
  }

  /** Opens the layer or takes another reference to it; `frozen`, `hasParent` from the catalog. */
  async acquire(id: string, state: { frozen: boolean; hasParent: boolean }): Promise<Layer> {
    let entry = this.entries.get(id);
    if (entry === undefined) {
      const opening = this.open(id, state);
      entry = { opening, references: 0 };
      this.entries.set(id, entry);
      opening.catch(() => {
        if (this.entries.get(id) === entry) this.entries.delete(id);
      });
    }
    entry.references += 1;
    try {
      return await entry.opening;
    } catch (error) {
      entry.references -= 1;
      throw error;
    }
  }

  /** Acquires a whole chain, top first; on failure releases what it took. */
  async acquireChain(ids: readonly string[], frozen: (id: string) => boolean): Promise<Layer[]> {
    const layers: Layer[] = [];
    try {
      for (let index = 0; index < ids.length; index++) {
        const id = ids[index]!;
        layers.push(
          await this.acquire(id, { frozen: frozen(id), hasParent: index < ids.length - 1 }),
        );
      }
      return layers;
    } catch (error) {
      await this.releaseAll(layers.map((layer) => layer.id));
      throw error;
    }
  }

  async release(id: string): Promise<void> {
    const entry = this.entries.get(id);
    if (entry === undefined) return;
    entry.references -= 1;
    if (entry.references > 0) return;
    this.entries.delete(id);
    const layer = await entry.opening;
    await layer.close();
  }

  async releaseAll(ids: readonly string[]): Promise<void> {
    for (const id of ids) await this.release(id);
  }

  /** Closes every layer regardless of references (store close). */
  async closeAll(): Promise<void> {
    const entries = [...this.entries.values()];
    this.entries.clear();
    for (const entry of entries) {
      const layer = await entry.opening.catch(() => null);
      if (layer !== null) await layer.close();
    }
  }

  private async open(id: string, state: { frozen: boolean; hasParent: boolean }): Promise<Layer> {
    const { layer, recovery } = await openLayer(id, this.paths(id), {
      ...this.options,
      blockSizeBytes: this.blockSizeBytes,
      frozen: state.frozen,
      hasParent: state.hasParent,
    });
    if (recovery.unclean) {
      this.logger.log('warn', 'layer was not closed cleanly; journal replayed', {
        layer: id,
        redoneBlocks: recovery.redoneBlocks,
        rolledBackBlocks: recovery.rolledBackBlocks.length,
      });
    }
    if (recovery.rolledBackBlocks.length > 0) {
      this.logger.log('error', 'last flush before the crash did not reach the disk; rolled back', {
        layer: id,
        blocks: recovery.rolledBackBlocks.slice(0, 32),
      });
    }
    return layer;
  }
}
