// The ReplicationStateStore on disk (types.ts): one directory per volume, beside the volume
// store's catalog, by convention `<volume store root>/replication/<volume>/`:
//
//   meta.json          the replica meta: highest accepted epoch, generation history (replica-meta.ts)
//   bitmap-<peer>.bin  the primary's dirty bitmap for one peer outside the ISR (dirty-bitmap.ts)
//
// Saves go through the helpers' atomic replace (temporary sibling, fdatasync, rename, directory
// fsync), so a save is durable when its promise resolves and a crash leaves the old or the new
// file. A delete syncs the directory too, so a bitmap that was deleted stays deleted: a stale one
// coming back would offer a delta resync that misses every mutation since.
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { syncDirectory } from '../engine/file-io.js';
import { DirtyBitmap } from './dirty-bitmap.js';
import { loadReplicaMeta, saveReplicaMeta, type ReplicaMeta } from './replica-meta.js';
import type { ReplicationStateStore } from './types.js';

/** Node names as the controller allows them; a peer name becomes part of a file name. */
const peerNamePattern = /^[a-z0-9][a-z0-9-]*$/;
export const peerNameBytesMax = 63;

export interface FileReplicationStateStoreOptions {
  /** The volume the directory belongs to: a meta file naming another one is VOLUME_CORRUPT. */
  readonly volume?: string;
}

export class FileReplicationStateStore implements ReplicationStateStore {
  readonly directory: string;
  /** Set once the directory is known to exist, so later saves skip the mkdir. */
  private directoryReady = false;
  /**
   * The last write of each file. Writes of one file share its temporary sibling, so they run one
   * after another, in the order they were called: the last save wins.
   */
  private readonly writes = new Map<string, Promise<void>>();

  constructor(
    directory: string,
    private readonly options: FileReplicationStateStoreOptions = {},
  ) {
    this.directory = path.resolve(directory);
  }

  /** `<root>/replication/<volume>/`, where the store of a volume in the volume store at `root` lives. */
  static directoryFor(root: string, volume: string): string {
    return path.join(root, 'replication', volume);
  }

  loadMeta(): Promise<ReplicaMeta | null> {
    return loadReplicaMeta(this.metaPath(), { volume: this.options.volume });
  }

  saveMeta(meta: ReplicaMeta): Promise<void> {
    const filePath = this.metaPath();
    return this.serialized(filePath, async () => {
      await this.ensureDirectory();
      await saveReplicaMeta(filePath, meta);
    });
  }

  // Async, so that a bad peer name is a rejection like every other failure here.
  async loadBitmap(peer: string): Promise<DirtyBitmap | null> {
    return await DirtyBitmap.load(this.bitmapPath(peer));
  }

  async saveBitmap(peer: string, bitmap: DirtyBitmap): Promise<void> {
    const filePath = this.bitmapPath(peer);
    await this.serialized(filePath, async () => {
      await this.ensureDirectory();
      await bitmap.save(filePath);
    });
  }

  async deleteBitmap(peer: string): Promise<void> {
    const filePath = this.bitmapPath(peer);
    await this.serialized(filePath, async () => {
      try {
        await rm(filePath);
      } catch (error) {
        // Nothing to delete; and with no directory there is nothing to sync either.
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw error;
      }
      await syncDirectory(this.directory);
    });
  }

  /** Runs `write` after every earlier write of `filePath`, whether those failed or not. */
  private serialized(filePath: string, write: () => Promise<void>): Promise<void> {
    const previous = this.writes.get(filePath) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(write);
    this.writes.set(filePath, next);
    // Forget a finished write, unless a later one has taken its place.
    const forget = (): void => {
      if (this.writes.get(filePath) === next) this.writes.delete(filePath);
    };
    next.then(forget, forget);
    return next;
  }

  private metaPath(): string {
    return path.join(this.directory, 'meta.json');
  }

  private bitmapPath(peer: string): string {
    checkPeerName(peer);
    return path.join(this.directory, `bitmap-${peer}.bin`);
  }

  /** Creates the directory on first save, and makes its entry in the parent durable. */
  private async ensureDirectory(): Promise<void> {
    if (this.directoryReady) return;
    const created = await mkdir(this.directory, { recursive: true });
    // mkdir returns the first directory it made; each new one's entry lives in its parent.
    if (created !== undefined) {
      let made = this.directory;
      while (made !== path.dirname(created)) {
        await syncDirectory(path.dirname(made));
        made = path.dirname(made);
      }
    }
    this.directoryReady = true;
  }
}

function checkPeerName(peer: string): void {
  if (typeof peer !== 'string' || peer.length > peerNameBytesMax || !peerNamePattern.test(peer)) {
    throw new RangeError(
      `peer node name must be 1 to ${peerNameBytesMax} characters of a-z, 0-9 and "-", ` +
        `starting with a letter or digit; got ${JSON.stringify(peer)}`,
    );
  }
}
