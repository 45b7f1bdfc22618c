// The store's catalog: which layers exist and how they stack, which volumes, snapshots and golden
// images name them. It is one small JSON file replaced atomically on every change, so a store
// operation that touches several names commits at one instant. Layer files are created before the
// commit that names them and deleted after the commit that drops them; files the catalog does not
// name are leftovers of a crash and are removed at open.
import { readJsonFile, replaceFileAtomically } from './file-io.js';
import { volumeError } from './engine-errors.js';

export interface LayerRecord {
  parent: string | null;
  frozen: boolean;
}

export interface SnapshotRecord {
  layer: string;
  sizeBytes: number;
}

export interface VolumeRecord {
  sizeBytes: number;
  top: string;
  snapshots: Record<string, SnapshotRecord>;
}

export interface ImageRecord {
  layer: string;
  sizeBytes: number;
  sha256: string;
}

export interface Catalog {
  format: 1;
  blockSizeBytes: number;
  nextLayerNumber: number;
  layers: Record<string, LayerRecord>;
  volumes: Record<string, VolumeRecord>;
  images: Record<string, ImageRecord>;
}

export function emptyCatalog(blockSizeBytes: number): Catalog {
  return { format: 1, blockSizeBytes, nextLayerNumber: 1, layers: {}, volumes: {}, images: {} };
}

export async function loadCatalog(filePath: string): Promise<Catalog | null> {
  const parsed = await readJsonFile(filePath, `catalog ${filePath}`);
  if (parsed === undefined) return null;
  const catalog = checkShape(parsed, filePath);
  checkReferences(catalog, filePath);
  return catalog;
}

export async function saveCatalog(filePath: string, catalog: Catalog): Promise<void> {
  await replaceFileAtomically(filePath, Buffer.from(`${JSON.stringify(catalog, null, 2)}\n`));
}

/**
 * Checks the parsed JSON field by field. Written out rather than with zod: the engine also runs
 * in short-lived processes (CLI, crash-test writers) where loading zod costs a third of a second.
 */
function checkShape(value: unknown, filePath: string): Catalog {
  const fail = (where: string, expected: string): never => {
    throw volumeError(
      'CONTINUUM_ERR_VOLUME_CORRUPT',
      `catalog ${filePath} is malformed at ${where}: expected ${expected}`,
    );
  };
  const isRecord = (item: unknown): item is Record<string, unknown> =>
    typeof item === 'object' && item !== null && !Array.isArray(item);
  const size = (item: unknown, where: string): void => {
    if (typeof item !== 'number' || !Number.isSafeInteger(item) || item <= 0) {
      fail(where, 'a positive integer');
    }
  };
  const text = (item: unknown, where: string): void => {
    if (typeof item !== 'string' || item.length === 0) fail(where, 'a non-empty string');
  };
  const table = (item: unknown, where: string, check: (entry: unknown, at: string) => void) => {
    if (!isRecord(item)) return fail(where, 'an object');
    for (const [key, entry] of Object.entries(item)) {
      if (!isRecord(entry)) fail(`${where}.${key}`, 'an object');
      check(entry, `${where}.${key}`);
    }
  };
  if (!isRecord(value)) return fail('the top', 'an object');
  if (value.format !== 1) fail('format', '1');
  size(value.blockSizeBytes, 'blockSizeBytes');
  size(value.nextLayerNumber, 'nextLayerNumber');
  table(value.layers, 'layers', (entry, at) => {
    const layer = entry as Record<string, unknown>;
    if (layer.parent !== null) text(layer.parent, `${at}.parent`);
    if (typeof layer.frozen !== 'boolean') fail(`${at}.frozen`, 'a boolean');
  });
  table(value.volumes, 'volumes', (entry, at) => {
    const volume = entry as Record<string, unknown>;
    size(volume.sizeBytes, `${at}.sizeBytes`);
    text(volume.top, `${at}.top`);
    table(volume.snapshots, `${at}.snapshots`, (snapshot, where) => {
      const record = snapshot as Record<string, unknown>;
      text(record.layer, `${where}.layer`);
      size(record.sizeBytes, `${where}.sizeBytes`);
    });
  });
  table(value.images, 'images', (entry, at) => {
    const image = entry as Record<string, unknown>;
    text(image.layer, `${at}.layer`);
    size(image.sizeBytes, `${at}.sizeBytes`);
    if (typeof image.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(image.sha256)) {
      fail(`${at}.sha256`, 'a SHA-256 in hex');
    }
  });
  return value as unknown as Catalog;
}

function checkReferences(catalog: Catalog, filePath: string): void {
  const known = (id: string | null): boolean => id === null || id in catalog.layers;
  const bad = (what: string): never => {
    throw volumeError('CONTINUUM_ERR_VOLUME_CORRUPT', `catalog ${filePath}: ${what}`);
  };
  for (const [id, layer] of Object.entries(catalog.layers)) {
    if (!known(layer.parent)) bad(`layer ${id} has unknown parent ${layer.parent}`);
  }
  for (const [name, volume] of Object.entries(catalog.volumes)) {
    if (!known(volume.top)) bad(`volume ${name} has unknown top layer ${volume.top}`);
    for (const [snap, record] of Object.entries(volume.snapshots)) {
      if (!known(record.layer)) bad(`snapshot ${name}@${snap} has unknown layer ${record.layer}`);
    }
  }
  for (const [name, image] of Object.entries(catalog.images)) {
    if (!known(image.layer)) bad(`image ${name} has unknown layer ${image.layer}`);
  }
}

/** Layer ids from `top` down to the base layer. */
export function chainOf(catalog: Catalog, top: string): string[] {
  const chain: string[] = [];
  for (let id: string | null = top; id !== null; id = catalog.layers[id]?.parent ?? null) {
    if (chain.includes(id))
      throw volumeError('CONTINUUM_ERR_VOLUME_CORRUPT', `layer loop at ${id}`);
    chain.push(id);
  }
  return chain;
}

/** Takes a fresh layer id (the caller commits the catalog it returns). */
export function allocateLayerId(catalog: Catalog): string {
  const id = `l${String(catalog.nextLayerNumber).padStart(6, '0')}`;
  catalog.nextLayerNumber += 1;
  return id;
}

/** Volumes whose chain (live or any snapshot) passes through `layerId`, except `except`. */
export function volumesUsing(catalog: Catalog, layerId: string, except?: string): string[] {
  const users: string[] = [];
  for (const [name, volume] of Object.entries(catalog.volumes)) {
    if (name === except) continue;
    const tops = [volume.top, ...Object.values(volume.snapshots).map((s) => s.layer)];
    if (tops.some((top) => chainOf(catalog, top).includes(layerId))) users.push(name);
  }
  return users;
}

/** Drops layers that nothing names and no layer stacks on; returns the ids dropped. */
export function collectGarbage(catalog: Catalog): string[] {
  const reachable = new Set<string>();
  const roots = [
    ...Object.values(catalog.volumes).flatMap((v) => [
      v.top,
      ...Object.values(v.snapshots).map((s) => s.layer),
    ]),
    ...Object.values(catalog.images).map((image) => image.layer),
  ];
  for (const root of roots) for (const id of chainOf(catalog, root)) reachable.add(id);
  const dropped = Object.keys(catalog.layers).filter((id) => !reachable.has(id));
  for (const id of dropped) delete catalog.layers[id];
  return dropped;
}

export function copyCatalog(catalog: Catalog): Catalog {
  return structuredClone(catalog);
}
