// Naming what to read from: a live volume, one of its snapshots, or a golden image. The CLI writes
// them as "vol", "vol@snap" and "image:name"; the API takes the object form.
import { ContinuumError } from '../../core/errors.js';
import { chainOf, type Catalog } from './catalog.js';
import { notFound } from './engine-errors.js';
import { checkName } from './limits.js';

export type SourceRef =
  { readonly volume: string; readonly snapshot?: string } | { readonly image: string };

export function parseSourceRef(text: string): SourceRef {
  if (text.startsWith('image:')) {
    const image = text.slice('image:'.length);
    checkName('image', image);
    return { image };
  }
  const at = text.indexOf('@');
  if (at < 0) {
    checkName('volume', text);
    return { volume: text };
  }
  const volume = text.slice(0, at);
  const snapshot = text.slice(at + 1);
  checkName('volume', volume);
  checkName('snapshot', snapshot);
  return { volume, snapshot };
}

export function formatSourceRef(ref: SourceRef): string {
  if ('image' in ref) return `image:${ref.image}`;
  return ref.snapshot === undefined ? ref.volume : `${ref.volume}@${ref.snapshot}`;
}

export interface ResolvedSource {
  /** The name devices and messages use: "vol", "vol@snap" or "image:name". */
  readonly key: string;
  /** Layer ids, top first. */
  readonly chain: string[];
  readonly sizeBytes: number;
  /** A live volume: its top layer takes writes. */
  readonly live: boolean;
}

export function resolveSource(catalog: Catalog, ref: SourceRef): ResolvedSource {
  if (typeof ref !== 'object' || ref === null) {
    throw new ContinuumError('CONTINUUM_ERR_BAD_REQUEST', 'a source must be a volume or an image');
  }
  const key = formatSourceRef(ref);
  if ('image' in ref) {
    checkName('image', ref.image);
    const image = catalog.images[ref.image];
    if (image === undefined) throw notFound('image', ref.image);
    return { key, chain: chainOf(catalog, image.layer), sizeBytes: image.sizeBytes, live: false };
  }
  checkName('volume', ref.volume);
  const volume = catalog.volumes[ref.volume];
  if (volume === undefined) throw notFound('volume', ref.volume);
  if (ref.snapshot === undefined) {
    return { key, chain: chainOf(catalog, volume.top), sizeBytes: volume.sizeBytes, live: true };
  }
  checkName('snapshot', ref.snapshot);
  const snapshot = volume.snapshots[ref.snapshot];
  if (snapshot === undefined) throw notFound('snapshot', key);
  return {
    key,
    chain: chainOf(catalog, snapshot.layer),
    sizeBytes: snapshot.sizeBytes,
    live: false,
  };
}
