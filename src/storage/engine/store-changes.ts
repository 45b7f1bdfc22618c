// The store's structural operations: create, grow, snapshot, clone and delete. Each validates its
// input, checks the catalog, prepares layer files, then commits a new catalog in one atomic step
// (catalog.ts); on any error before the commit nothing visible has changed. Deleting something
// that another volume stacks on is refused with the names of those volumes.
import { ContinuumError } from '../../core/errors.js';
import { chainOf, collectGarbage, copyCatalog, volumesUsing, type Catalog } from './catalog.js';
import { alreadyExists, notFound, volumeError } from './engine-errors.js';
import { mergeIntoUpper } from './layer-merge.js';
import { checkName, checkVolumeSize } from './limits.js';
import { resolveSource, type SourceRef } from './source-ref.js';
import type { StoreContext } from './store-context.js';

export async function createVolume(
  context: StoreContext,
  name: string,
  sizeBytes: number,
): Promise<void> {
  checkName('volume', name);
  checkVolumeSize(sizeBytes, context.blockSizeBytes, context.limits);
  await context.control(async () => {
    if (name in context.catalog().volumes) throw alreadyExists('volume', name);
    const id = context.newLayerId();
    await context.createLayerFiles(id, 0);
    const next = copyCatalog(context.catalog());
    next.layers[id] = { parent: null, frozen: false };
    next.volumes[name] = { sizeBytes, top: id, snapshots: {} };
    await context.commit(next);
  });
}

export async function growVolume(context: StoreContext, name: string, sizeBytes: number) {
  checkName('volume', name);
  checkVolumeSize(sizeBytes, context.blockSizeBytes, context.limits);
  await context.control(async () => {
    const volume = context.catalog().volumes[name];
    if (volume === undefined) throw notFound('volume', name);
    if (sizeBytes < volume.sizeBytes) {
      throw volumeError(
        'CONTINUUM_ERR_VOLUME_BAD_SIZE',
        `volume ${name} is ${volume.sizeBytes} bytes; it can grow but not shrink to ${sizeBytes}`,
      );
    }
    const next = copyCatalog(context.catalog());
    next.volumes[name]!.sizeBytes = sizeBytes;
    await context.commit(next);
    context.openDevice(name)?.setSize(sizeBytes);
  });
}

export async function snapshotVolume(context: StoreContext, name: string, snapshot: string) {
  checkName('volume', name);
  checkName('snapshot', snapshot);
  await context.control(async () => {
    const catalog = context.catalog();
    const volume = catalog.volumes[name];
    if (volume === undefined) throw notFound('volume', name);
    if (snapshot in volume.snapshots) throw alreadyExists('snapshot', `${name}@${snapshot}`);
    checkDepth(context, catalog, volume.top, `snapshot of ${name}`);
    const oldTop = volume.top;
    const newTop = context.newLayerId();
    const next = copyCatalog(catalog);
    next.layers[oldTop]!.frozen = true;
    next.layers[newTop] = { parent: oldTop, frozen: false };
    next.volumes[name]!.top = newTop;
    next.volumes[name]!.snapshots[snapshot] = { layer: oldTop, sizeBytes: volume.sizeBytes };
    const device = context.openDevice(name);
    const swap = async (): Promise<void> => {
      const hasParent = catalog.layers[oldTop]!.parent !== null;
      const frozenTop = await context.layers.acquire(oldTop, { frozen: false, hasParent });
      try {
        await frozenTop.freeze();
        await context.createLayerFiles(newTop, frozenTop.generation);
        try {
          await context.commit(next);
        } catch (error) {
          await frozenTop.thaw();
          throw error;
        }
        if (device !== undefined) {
          const top = await context.layers.acquire(newTop, { frozen: false, hasParent: true });
          device.replaceChain([top, ...device.chain]);
        }
      } finally {
        await context.layers.release(oldTop);
      }
    };
    // With the volume open, no request may be in flight while its top layer changes.
    await (device === undefined ? swap() : device.exclusive(swap));
  });
}

export async function cloneVolume(
  context: StoreContext,
  name: string,
  source: SourceRef,
  options: { sizeBytes?: number } = {},
) {
  checkName('volume', name);
  await context.control(async () => {
    const catalog = context.catalog();
    if (name in catalog.volumes) throw alreadyExists('volume', name);
    const resolved = resolveSource(catalog, source);
    if (resolved.live) {
      throw new ContinuumError(
        'CONTINUUM_ERR_BAD_REQUEST',
        `clone needs a frozen source: snapshot ${resolved.key} first and clone the snapshot`,
      );
    }
    const sizeBytes = options.sizeBytes ?? resolved.sizeBytes;
    checkVolumeSize(sizeBytes, context.blockSizeBytes, context.limits);
    if (sizeBytes < resolved.sizeBytes) {
      throw volumeError(
        'CONTINUUM_ERR_VOLUME_BAD_SIZE',
        `clone ${name} of ${resolved.key} must be at least ${resolved.sizeBytes} bytes`,
      );
    }
    const base = resolved.chain[0]!;
    checkDepth(context, catalog, base, `clone ${name} of ${resolved.key}`);
    const id = context.newLayerId();
    await context.createLayerFiles(id, 0);
    const next = copyCatalog(catalog);
    next.layers[id] = { parent: base, frozen: false };
    next.volumes[name] = { sizeBytes, top: id, snapshots: {} };
    await context.commit(next);
  });
}

export async function deleteVolume(context: StoreContext, name: string) {
  checkName('volume', name);
  await context.control(async () => {
    const catalog = context.catalog();
    const volume = catalog.volumes[name];
    if (volume === undefined) throw notFound('volume', name);
    checkNotInUse(context, name, `volume ${name}`);
    for (const [snapshot, record] of Object.entries(volume.snapshots)) {
      refuseDependents(catalog, record.layer, name, `snapshot ${name}@${snapshot}`);
    }
    const next = copyCatalog(catalog);
    delete next.volumes[name];
    const dropped = collectGarbage(next);
    await context.commit(next);
    await context.deleteLayerFiles(dropped);
  });
}

export async function deleteSnapshot(context: StoreContext, name: string, snapshot: string) {
  checkName('volume', name);
  checkName('snapshot', snapshot);
  await context.control(async () => {
    const catalog = context.catalog();
    const volume = catalog.volumes[name];
    const record = volume?.snapshots[snapshot];
    if (volume === undefined || record === undefined)
      throw notFound('snapshot', `${name}@${snapshot}`);
    checkNotInUse(context, name, `snapshot ${name}@${snapshot}`);
    const lower = record.layer;
    // The snapshot can be folded into the one layer of this volume stacked on it; a clone stacked
    // on it directly would lose its base.
    const own = new Set(
      [volume.top, ...Object.values(volume.snapshots).map((s) => s.layer)].flatMap((top) =>
        chainOf(catalog, top),
      ),
    );
    const children = Object.keys(catalog.layers).filter(
      (id) => catalog.layers[id]!.parent === lower,
    );
    const foreign = children.filter((id) => !own.has(id));
    if (foreign.length > 0) {
      const users = [...new Set(foreign.flatMap((id) => volumesUsing(catalog, id, name)))];
      refuseWith(users, `snapshot ${name}@${snapshot}`);
    }
    const upper = children[0];
    // The merge rewrites the layer above in place: nobody may be reading through either layer.
    const readers = [lower, ...(upper === undefined ? [] : [upper])].flatMap((id) =>
      context.openUsersOf(id),
    );
    if (readers.length > 0) {
      throw volumeError(
        'CONTINUUM_ERR_VOLUME_IN_USE',
        `snapshot ${name}@${snapshot} is read through open volume ${[...new Set(readers)].join(', ')}; ` +
          'close it first',
      );
    }
    const next = copyCatalog(catalog);
    delete next.volumes[name]!.snapshots[snapshot];
    if (upper !== undefined) {
      const parentAfter = catalog.layers[lower]!.parent;
      await mergeLayers(context, catalog, { lower, upper, name: `${name}@${snapshot}` });
      next.layers[upper]!.parent = parentAfter;
      delete next.layers[lower];
    }
    const dropped = collectGarbage(next);
    await context.commit(next);
    await context.deleteLayerFiles(upper === undefined ? dropped : [lower, ...dropped]);
  });
}

export async function deleteImage(context: StoreContext, name: string) {
  checkName('image', name);
  await context.control(async () => {
    const catalog = context.catalog();
    const image = catalog.images[name];
    if (image === undefined) throw notFound('image', name);
    checkNotInUse(context, `image:${name}`, `image ${name}`);
    const sharedByName = Object.entries(catalog.images).some(
      ([other, record]) => other !== name && record.layer === image.layer,
    );
    if (!sharedByName) refuseDependents(catalog, image.layer, undefined, `image ${name}`);
    const next = copyCatalog(catalog);
    delete next.images[name];
    const dropped = collectGarbage(next);
    await context.commit(next);
    await context.deleteLayerFiles(dropped);
  });
}

async function mergeLayers(
  context: StoreContext,
  catalog: Catalog,
  layers: { lower: string; upper: string; name: string },
): Promise<void> {
  const lowerRecord = catalog.layers[layers.lower]!;
  const upperRecord = catalog.layers[layers.upper]!;
  const lower = await context.layers.acquire(layers.lower, {
    frozen: true,
    hasParent: lowerRecord.parent !== null,
  });
  try {
    const upper = await context.layers.acquire(layers.upper, {
      frozen: upperRecord.frozen,
      hasParent: true,
    });
    try {
      await mergeIntoUpper(lower, upper, {
        hasParentAfter: lowerRecord.parent !== null,
        name: layers.name,
      });
    } finally {
      await context.layers.release(layers.upper);
    }
  } finally {
    await context.layers.release(layers.lower);
  }
}

function checkDepth(context: StoreContext, catalog: Catalog, top: string, what: string): void {
  const depth = chainOf(catalog, top).length + 1;
  if (depth > context.limits.chainDepthMax) {
    throw volumeError(
      'CONTINUUM_ERR_VOLUME_LIMIT',
      `${what} would make a chain of ${depth} layers; the limit is ${context.limits.chainDepthMax} ` +
        '(delete snapshots to shorten it)',
    );
  }
}

function checkNotInUse(context: StoreContext, key: string, what: string): void {
  if (context.isInUse(key)) {
    throw volumeError('CONTINUUM_ERR_VOLUME_IN_USE', `${what} is open; close it first`);
  }
}

function refuseDependents(
  catalog: Catalog,
  layer: string,
  owner: string | undefined,
  what: string,
): void {
  refuseWith(volumesUsing(catalog, layer, owner), what);
}

function refuseWith(users: readonly string[], what: string): void {
  if (users.length > 0) {
    throw volumeError(
      'CONTINUUM_ERR_VOLUME_HAS_DEPENDENTS',
      `${what} cannot be deleted: volume${users.length > 1 ? 's' : ''} ${users.join(', ')} ` +
        `${users.length > 1 ? 'are' : 'is'} cloned from it`,
    );
  }
}
