// How a primary follows the controller's membership and brings replicas (back) in sync
// (docs/replication.md, "A replica that stops answering" and "Resync"):
//
// - a node the controller dropped from the ISR stops being required: its dirty bitmap starts at
//   our current generation with every mutation it has not acked, is persisted, and only then are
//   the replies that waited for it released; then a new generation begins (persisted) and the
//   remaining in-sync replicas are told;
// - a connected replica outside the ISR is resynced (delta when its newest generation is where its
//   bitmap starts, full otherwise), made required once it has everything, flushed, told the
//   generation, and reported caught-up; it stays required until a membership newer than that
//   report leaves it out;
// - an in-sync replica gets a verify pass whenever it (re)connects: that repairs blocks a crashed
//   primary wrote to only some replicas, or a replica lost.
import type { PrimaryCore } from './primary-core.js';
import type { PrimaryPeer } from './primary-peer.js';
import { newGenerationId, noGeneration, startGeneration } from './replica-meta.js';
import { deviceDataGeneration } from './replica.js';
import { runResync, type ResyncMode } from './resync.js';
import type { VolumeMembership } from './types.js';

export class MembershipRules {
  constructor(private readonly core: PrimaryCore) {}

  setMembership(membership: VolumeMembership): void {
    const core = this.core;
    if (!core.serving) return;
    if (membership.isrVersion < core.membership.isrVersion) {
      core.logger.log('info', 'ignored an older membership', { isrVersion: membership.isrVersion });
      return;
    }
    // Addresses change without a new isrVersion (a replica's volume server restarted on another
    // port): the current record says where each replica is now.
    const listed = new Map(membership.replicas.map((replica) => [replica.node, replica.address]));
    for (const [node, address] of listed) core.peers.get(node)?.readdress(address);
    if (membership.isrVersion === core.membership.isrVersion) {
      core.membership = membership;
      // The controller sent the record we have again (a new session, a restarted controller):
      // what we reported at this version may never have reached it.
      core.watchdog.reportAgain();
      return;
    }
    core.membership = membership;
    const self = core.context.node;
    const isr = new Set(membership.isr);
    let dropped = 0;
    for (const node of [...core.required]) {
      if (isr.has(node)) continue;
      const reportedAt = core.caughtUp.get(node);
      if (reportedAt !== undefined && membership.isrVersion <= reportedAt) continue;
      this.drop(node, listed.has(node));
      dropped++;
    }
    for (const node of isr) {
      core.caughtUp.delete(node);
      if (node !== self && !core.required.has(node) && core.peers.has(node)) this.admit(node);
    }
    for (const [node, peer] of [...core.peers]) {
      if (listed.has(node)) continue;
      peer.remove('left the membership');
      core.peers.delete(node);
      core.bitmaps.delete(node);
      void core.persist(() => core.options.state.deleteBitmap(node));
    }
    for (const [node, address] of listed) {
      if (node === self || core.peers.has(node)) continue;
      // A new replica: nothing it holds is known, so its bitmap starts nowhere (full resync).
      const bitmap = core.newBitmap(noGeneration);
      core.bitmaps.set(node, bitmap);
      void core.persist(() => core.options.state.saveBitmap(node, bitmap));
      if (isr.has(node)) core.required.add(node);
      core.addPeer(node, address);
    }
    if (dropped > 0) this.startNewGeneration();
    core.recheckAll();
  }

  /** The controller left it out of the ISR: it stops being required once its bitmap is saved. */
  private drop(node: string, stillListed: boolean): void {
    const core = this.core;
    core.required.delete(node);
    core.caughtUp.delete(node);
    core.dropping.add(node);
    const bitmap = core.newBitmap(core.generation);
    core.bitmaps.set(node, bitmap);
    const peer = core.peers.get(node);
    if (peer !== undefined) {
      for (const inFlight of peer.takeUnacked()) {
        bitmap.markRange(inFlight.offsetBytes, inFlight.lengthBytes);
      }
      peer.forgetFlush();
      // It starts over as a replica outside the ISR: a fresh link, then a resync.
      if (stillListed) peer.restart('dropped from the ISR');
    }
    core.logger.log('info', 'replica dropped from the ISR', { node, dirty: bitmap.countDirty() });
    core
      .persist(() => core.options.state.saveBitmap(node, bitmap))
      .then(
        () => {
          core.dropping.delete(node);
          core.recheckAll();
        },
        (error: unknown) => {
          // Releasing the replies now would lose what the bitmap holds: they keep waiting.
          core.logger.log('error', 'could not persist the dirty bitmap', {
            node,
            error: String(error),
          });
        },
      );
  }

  /** The controller put a replica in the ISR that we did not require: require it, verify it. */
  private admit(node: string): void {
    const core = this.core;
    core.required.add(node);
    core.bitmaps.delete(node);
    void core.persist(() => core.options.state.deleteBitmap(node));
    const peer = core.peers.get(node)!;
    peer.streaming = false;
    if (peer.ready && !peer.passRunning) this.startPass(peer);
  }

  private startNewGeneration(): void {
    const core = this.core;
    const id = newGenerationId(core.context.random);
    core.meta = startGeneration(core.meta, id, deviceDataGeneration(core.device, core.meta));
    const meta = core.meta;
    void core
      .persist(() => core.options.state.saveMeta(meta))
      .then(
        () => {
          for (const node of core.required) {
            const peer = core.peers.get(node);
            if (peer?.ready === true && peer.verified) this.sendGeneration(peer);
          }
        },
        (error: unknown) =>
          core.logger.log('error', 'could not persist a new generation', { error: String(error) }),
      );
  }

  private sendGeneration(peer: PrimaryPeer): void {
    peer.send({
      type: 'REPL_GENERATION',
      epoch: this.core.epoch,
      generation: this.core.generation,
    });
  }

  /** A replica connected: verify it if it is required, resync it otherwise. */
  startPass(peer: PrimaryPeer): void {
    if (peer.passRunning) return;
    peer.passRunning = true;
    const connection = peer.connection;
    void this.runPass(peer)
      .catch((error: unknown) => {
        this.core.logger.log('error', 'resync failed', { node: peer.node, error: String(error) });
      })
      .finally(() => {
        peer.passRunning = false;
        // It reconnected while this pass wound down: the new connection needs its own.
        if (peer.ready && peer.connection !== connection && this.core.serving) this.startPass(peer);
      });
  }

  private async runPass(peer: PrimaryPeer): Promise<void> {
    const core = this.core;
    const connection = peer.connection;
    const required = core.required.has(peer.node);
    const bitmap = core.bitmaps.get(peer.node);
    const newest = peer.hello?.generation;
    let mode: ResyncMode = 'verify';
    if (!required) {
      const delta =
        bitmap !== undefined && newest !== noGeneration && newest === bitmap.startGeneration;
      mode = delta ? 'delta' : 'full';
      peer.streaming = true;
      if (mode === 'full' && bitmap !== undefined) {
        // The pass compares every block, so what the bitmap marks adds nothing.
        bitmap.clearRange(0, bitmap.volumeSizeBytes);
        core.bitmapChanged(peer.node);
      }
    }
    core.logger.log('info', 'resync pass', { node: peer.node, mode });
    const completed = await runResync(core, peer, { mode, bitmap });
    if (!completed || peer.connection !== connection || !core.serving) return;
    if (!core.required.has(peer.node)) {
      if (!(await this.catchUp(peer, connection))) return;
    }
    peer.verified = true;
    this.sendGeneration(peer);
    const reportedAt = core.caughtUp.get(peer.node);
    if (reportedAt !== undefined) {
      const { volume, epoch } = core;
      core.report({ kind: 'caught-up', volume, epoch, node: peer.node, isrVersion: reportedAt });
      core.watchdog.caughtUp(peer.node, reportedAt);
    }
  }

  /** Waits for its acks, makes it required, and has it flush; false if its link dropped. */
  private async catchUp(peer: PrimaryPeer, connection: number): Promise<boolean> {
    const core = this.core;
    while (peer.unacked.size > 0) {
      await peer.drained();
      if (peer.connection !== connection || !peer.ready || !core.serving) return false;
    }
    const bitmap = core.bitmaps.get(peer.node);
    if (bitmap !== undefined && bitmap.countDirty() > 0) {
      // Cannot happen while it streams; if it does, start over rather than trust it.
      peer.restart('dirty regions left after a resync pass');
      return false;
    }
    core.required.add(peer.node);
    core.caughtUp.set(peer.node, core.membership.isrVersion);
    peer.streaming = false;
    core.bitmaps.delete(peer.node);
    void core.persist(() => core.options.state.deleteBitmap(peer.node));
    const seq = core.nextSeq();
    peer.requestFlush(seq, core.context.clock.now());
    await peer.durableAt(seq);
    return peer.connection === connection && peer.ready && core.serving;
  }
}
