// The primary core of synchronous replication (docs/replication.md, "The write path", "A replica
// that stops answering", "Resync" and the primary's state table): a BlockDevice over the local
// copy whose mutations are answered only when the local write is done and every in-sync replica
// acked it, and whose flushes (and FUA mutations) only when every in-sync replica made everything
// before them durable. It reports an in-sync replica that stops answering and keeps waiting: only
// the controller removes a replica from the ISR (setMembership), after which the waiting replies
// are released once the replica's dirty bitmap holds what it missed, persisted. Replicas outside
// the ISR are resynced (resync.ts) and reported caught-up. A replica that refuses our epoch fences
// this primary: every pending and later operation fails with EIO. Reads are answered only under
// the read lease (primary-core.ts), and a primary promoted above the epoch its copy had serves
// nothing for readLeaseMs after it opens, so that a deposed one cut off from everyone has stopped
// answering reads before this one answers anything.
//
// FUA: a mutation with FUA is written locally with FUA and sent with the flag, and its reply then
// also waits for the flush path (local flush, REPL_FLUSH to every ISR member, dirty bitmaps saved),
// which is what makes it durable on every in-sync copy.
//
// A copy that was not closed cleanly (replica-meta.ts `unclean`) may have lost writes it
// acknowledged: while other ISR members exist it does not serve (primary-held.ts); alone in the
// ISR it is the best copy there is and serves as usual.
import { ContinuumError } from '../../core/errors.js';
import type { Extent, WriteOptions, WriteZeroesOptions } from '../block-device.js';
import type { BlockChecksums } from '../engine/chain-status.js';
import { DirtyBitmap } from './dirty-bitmap.js';
import { PrimaryCore } from './primary-core.js';
import {
  acceptEpoch,
  emptyReplicaMeta,
  newGenerationId,
  isUnclean,
  noGeneration,
  startGeneration,
  type ReplicaMeta,
} from './replica-meta.js';
import { HeldPrimary } from './primary-held.js';
import { deviceDataGeneration } from './replica.js';
import type { PrimaryHandle, PrimaryOptions, PrimaryStatus, VolumeMembership } from './types.js';

export async function openPrimary(options: PrimaryOptions): Promise<PrimaryHandle> {
  const { context, membership, state, volume } = options;
  checkMembership(context.node, membership);
  const openedAtMs = context.clock.now();
  const loaded = await state.loadMeta();
  if (loaded !== null && loaded.volume !== volume) {
    throw new ContinuumError(
      'CONTINUUM_ERR_VOLUME_CORRUPT',
      `replication state of ${volume} names volume ${loaded.volume}`,
    );
  }
  const decision = acceptEpoch(loaded ?? emptyReplicaMeta(volume), options.epoch);
  if (decision.kind === 'refused') {
    throw new ContinuumError(
      'CONTINUUM_ERR_STALE_EPOCH',
      `${volume} on ${context.node} accepted epoch ${decision.highestEpoch}; ` +
        `cannot serve as primary at epoch ${options.epoch} (fenced)`,
      { details: { volume, epoch: options.epoch, highestEpoch: decision.highestEpoch } },
    );
  }
  const meta: ReplicaMeta = { ...decision.meta, unclean: true };
  // The promotion wait: a copy that held the volume at an older epoch may have acknowledged the
  // primary of that epoch (as its replica) less than readLeaseMs ago, and that primary may still
  // answer reads under the lease our ack renewed (primary-core.ts). A restart at the epoch we
  // already accepted does not wait; a copy with no replication state never acknowledged anyone.
  const promoted = loaded !== null && decision.changed;
  const holdUntilMs = promoted ? openedAtMs + context.limits.readLeaseMs : -Infinity;
  if (isUnclean(loaded) && othersInSync(context.node, membership)) {
    // This copy may have lost writes the other ISR members hold: it must not serve, verify or
    // resync anyone. It waits, reporting itself, until the controller moves the workload (or
    // leaves it the only copy in sync).
    if (decision.changed) await state.saveMeta(meta);
    context.logger.log('warn', 'copy was not closed cleanly: held, reporting it', {
      volume,
      epoch: options.epoch,
      isr: membership.isr,
    });
    return new HeldPrimary(
      options,
      meta,
      async (latest) =>
        new Primary(await startServing({ ...options, membership: latest }, meta, holdUntilMs)),
    );
  }
  return new Primary(await startServing(options, meta, holdUntilMs));
}

/** Whether the ISR has members besides `node`. */
function othersInSync(node: string, membership: VolumeMembership): boolean {
  return membership.isr.some((member) => member !== node);
}

/** Begins a new generation (persisted with the meta) and starts the core over `options.membership`. */
async function startServing(
  options: PrimaryOptions,
  accepted: ReplicaMeta,
  holdUntilMs: number,
): Promise<PrimaryCore> {
  const { context, membership, state } = options;
  let meta: ReplicaMeta = { ...accepted, unclean: true };
  // Bitmaps of an earlier term are stale: this node was a replica meanwhile. Ex-members start a
  // fresh one at the newest generation we share with them.
  const bitmaps = new Map<string, DirtyBitmap>();
  for (const { node } of membership.replicas) {
    if (node === context.node) continue;
    await state.deleteBitmap(node);
    if (membership.isr.includes(node)) continue;
    const bitmap = DirtyBitmap.create({
      regionSizeBytes: context.limits.bitmapRegionBytes,
      volumeSizeBytes: options.device.sizeBytes,
      startGeneration: meta.generations[0] ?? noGeneration,
    });
    await state.saveBitmap(node, bitmap);
    bitmaps.set(node, bitmap);
  }
  const generation = newGenerationId(context.random);
  meta = startGeneration(meta, generation, deviceDataGeneration(options.device, meta));
  await state.saveMeta(meta);
  const core = new PrimaryCore(options, meta, bitmaps, holdUntilMs);
  core.start();
  return core;
}

function checkMembership(node: string, membership: VolumeMembership): void {
  const listed = membership.replicas.some((replica) => replica.node === node);
  if (!listed || !membership.isr.includes(node)) {
    throw new ContinuumError(
      'CONTINUUM_ERR_BAD_REQUEST',
      `node ${node} must be a replica and in the ISR to serve as primary`,
      { details: { node, isr: membership.isr } },
    );
  }
}

/** The PrimaryHandle: the BlockDevice face of the core. */
class Primary implements PrimaryHandle {
  readonly sizeBytes: number;
  readonly blockSizeBytes: number;
  readonly readOnly: boolean;
  readonly consistentAcrossConnections: boolean;

  constructor(private readonly core: PrimaryCore) {
    const device = core.device;
    this.sizeBytes = device.sizeBytes;
    this.blockSizeBytes = device.blockSizeBytes;
    this.readOnly = device.readOnly;
    this.consistentAcrossConnections = device.consistentAcrossConnections;
  }

  get fenced(): boolean {
    return this.core.fenced;
  }

  fence(reason: string): void {
    this.core.fence(reason);
  }

  read(offsetBytes: number, lengthBytes: number): Promise<Buffer> {
    return this.core.local(() => this.core.device.read(offsetBytes, lengthBytes));
  }

  blockStatus(offsetBytes: number, lengthBytes: number): Promise<readonly Extent[]> {
    return this.core.local(() => this.core.device.blockStatus(offsetBytes, lengthBytes));
  }

  readChecksums(startBlock: number, blockCount: number): Promise<BlockChecksums> {
    return this.core.local(() => this.core.device.readChecksums(startBlock, blockCount));
  }

  write(offsetBytes: number, data: Buffer, options?: WriteOptions): Promise<void> {
    const fua = options?.fua === true;
    return this.core.mutate({ kind: 'write', offsetBytes, lengthBytes: data.length, fua, data });
  }

  trim(offsetBytes: number, lengthBytes: number, options?: WriteOptions): Promise<void> {
    const fua = options?.fua === true;
    return this.core.mutate({ kind: 'trim', offsetBytes, lengthBytes, fua });
  }

  writeZeroes(
    offsetBytes: number,
    lengthBytes: number,
    options?: WriteZeroesOptions,
  ): Promise<void> {
    const fua = options?.fua === true;
    const mayTrim = options?.mayTrim;
    return this.core.mutate({ kind: 'zeroes', offsetBytes, lengthBytes, fua, mayTrim });
  }

  flush(): Promise<void> {
    return this.core.flush();
  }

  setMembership(membership: VolumeMembership): void {
    this.core.membershipRules.setMembership(membership);
  }

  status(): PrimaryStatus {
    return this.core.status();
  }

  close(): Promise<void> {
    return this.core.close();
  }
}
