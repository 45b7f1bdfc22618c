// The node's volume server, a process of its own that the agent starts (`continuum volume serve`)
// and that outlives agent restarts, so mounts stay up: the block engine's store at <dataDir>/volumes,
// served over NBD on the unix socket <dataDir>/run/nbd.sock, with the two faces the agent needs:
// the operations the controller forwards (VolumeService: list, create, grow, snapshot, clone,
// delete) and the volumes a starting instance mounts (VolumeProvider: created on first use).
//
// Every live volume is kept open while the server runs, so the NBD server finds an export without
// waiting; a volume is closed only to be deleted. Operations run one at a time (the engine
// serializes its own changes too; this also orders open/close against them).
//
// Replicated volumes (volume-replication.ts) are exported only where this node is their primary,
// and then as the PrimaryHandle, so every client write reaches the in-sync replicas; a replica's
// copy is never exported, and is not closed, grown or deleted while a duty names it.
import { randomUUID } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ContinuumError } from '../core/errors.js';
import type { Logger } from '../core/ports.js';
import { LoopPoll, loopPollWindowUsDefault } from '../platform/loop-poll.js';
import { systemClock } from '../platform/real-ports.js';
import type { VolumeInfo, VolumeRequest, VolumeResult, VolumeService } from '../core/volumes.js';
import type { NbdTarget } from '../storage/attach/index.js';
import { type Volume, VolumeStore } from '../storage/engine/index.js';
import type { NbdLimits } from '../storage/nbd/limits.js';
import { NbdServer } from '../storage/nbd/server.js';
import type { VolumeProvider } from './drivers/volume-driver.js';
import { type VolumeControl, VolumeJobServer, volumeJobSocketPath } from './volume-jobs.js';
import {
  ensurePrimaryTimeoutMs,
  replicationListenDefault,
  VolumeReplication,
} from './volume-replication.js';

const mebibyte = 1_048_576;
/** A unix socket path is at most 107 bytes (sun_path holds 108 with the terminating NUL). */
export const unixSocketPathBytesMax = 107;

export interface VolumeServerOptions {
  node: string;
  dataDir: string;
  logger: Logger;
  nbdLimits?: Partial<NbdLimits>;
  /** Where other nodes' primaries reach this node's replicas (default 127.0.0.1, any free port). */
  replicationListen?: { host: string; port: number };
  /** How long `ensure` of a replicated volume waits for this node's primary (default 30 s). */
  ensurePrimaryTimeoutMs?: number;
  /**
   * How long the event loop keeps turning after NBD replies or replication frames leave, so the
   * answer finds it awake (platform/loop-poll.ts; default loopPollWindowUsDefault, 0 for never).
   */
  loopPollWindowUs?: number;
}

/** What `ensure` needs to know of the volume a starting instance mounts. */
export interface EnsureVolume {
  name: string;
  sizeMiB: number;
  /** More than 1: replicated, served only by this node's primary. */
  replicas?: number;
}

export class VolumeServer implements VolumeService, VolumeProvider {
  readonly socketPath: string;
  readonly incarnation = randomUUID();
  private readonly devices = new Map<string, Volume>();
  private readonly attached = new Set<string>();
  private readonly nbd: NbdServer;
  private readonly jobs: VolumeJobServer;
  private readonly replication: VolumeReplication;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(
    private readonly store: VolumeStore,
    private readonly options: VolumeServerOptions,
  ) {
    this.socketPath = join(options.dataDir, 'run', 'nbd.sock');
    // One poll for the process: the NBD server and the primaries' links kick the same loop.
    const loopPoll = new LoopPoll({
      windowUs: options.loopPollWindowUs ?? loopPollWindowUsDefault,
    });
    this.replication = new VolumeReplication({
      loopPoll,
      node: options.node,
      logger: options.logger,
      clock: systemClock,
      storeRoot: store.root,
      listen: options.replicationListen ?? replicationListenDefault,
      device: (volume, sizeBytes) => this.replicaDevice(volume, sizeBytes),
    });
    this.nbd = new NbdServer({
      lookupExport: (name) => this.exportOf(name),
      listExports: () =>
        [...this.devices.keys()]
          .filter((name) => this.exportOf(name) !== undefined)
          .sort()
          .map((name) => ({ name })),
      logger: options.logger,
      loopPoll,
      ...(options.nbdLimits === undefined ? {} : { limits: options.nbdLimits }),
    });
    this.jobs = new VolumeJobServer(
      store,
      { volumeAdded: (name) => this.serial(() => this.openDevice(name)) },
      options.logger,
      (control) => this.control(control),
    );
  }

  /** Opens the store (one agent per data directory: the store is locked) and starts serving. */
  static async start(options: VolumeServerOptions): Promise<VolumeServer> {
    const runDir = join(options.dataDir, 'run');
    const socketPath = join(runDir, 'nbd.sock');
    const jobsPath = volumeJobSocketPath(options.dataDir);
    for (const path of [socketPath, jobsPath]) {
      const bytes = Buffer.byteLength(path);
      if (bytes > unixSocketPathBytesMax) {
        throw new ContinuumError(
          'CONTINUUM_ERR_CONFIG',
          `volume server: the socket ${path} is ${bytes} bytes long; unix sockets allow at ` +
            `most ${unixSocketPathBytesMax}: choose a shorter data directory`,
        );
      }
    }
    const store = await VolumeStore.open(join(options.dataDir, 'volumes'));
    const server = new VolumeServer(store, options);
    try {
      for (const volume of await store.list()) await server.openDevice(volume.name);
      await server.replication.start();
      mkdirSync(runDir, { recursive: true, mode: 0o700 });
      // A socket file left by an earlier agent: nobody listens on it, since we hold the store.
      rmSync(socketPath, { force: true });
      await server.nbd.listen({ socketPath });
      await server.jobs.listen(jobsPath);
      options.logger.log('info', 'volume server started', {
        volumes: server.devices.size,
        socket: socketPath,
        replicationAddress: server.replicationAddress,
      });
      return server;
    } catch (error) {
      await server.close();
      throw error;
    }
  }

  execute(request: VolumeRequest): Promise<VolumeResult> {
    return this.serial(async () => {
      switch (request.op) {
        case 'list':
          return { volumes: await this.infos() };
        case 'create':
          if (request.image === undefined) {
            await this.store.create(request.name, request.sizeMiB! * mebibyte);
          } else {
            const size =
              request.sizeMiB === undefined ? {} : { sizeBytes: request.sizeMiB * mebibyte };
            await this.store.clone(request.name, { image: request.image }, size);
          }
          await this.openDevice(request.name);
          return this.resultFor(request.name);
        case 'grow':
          this.replication.refuseIfDuty(request.name, 'grow it (its size follows the spec)');
          await this.store.grow(request.name, request.sizeMiB * mebibyte);
          return this.resultFor(request.name);
        case 'snapshot':
          await this.store.snapshot(request.name, request.snapshot);
          return this.resultFor(request.name);
        case 'clone':
          await this.store.clone(request.name, {
            volume: request.source,
            snapshot: request.snapshot,
          });
          await this.openDevice(request.name);
          return this.resultFor(request.name);
        case 'delete':
          await this.deleteVolume(request.name);
          return { volumes: [] };
        case 'delete-snapshot':
          // Folding the snapshot into the layer above rewrites it: the volume must be closed.
          await this.whileClosed(request.name, 'delete one of its snapshots', () =>
            this.store.deleteSnapshot(request.name, request.snapshot),
          );
          return this.resultFor(request.name);
      }
    });
  }

  /** Where other nodes' primaries reach this node's replicas: "host:port". */
  get replicationAddress(): string {
    return this.replication.address;
  }

  /**
   * The volume a starting instance mounts. A replicated one (replicas > 1) is neither created nor
   * grown here: its copy follows its duty, and it is served once this node's primary at the
   * instance's epoch is open (waiting up to ensurePrimaryTimeoutMs for the duty).
   */
  async ensure(volume: EnsureVolume, options: { epoch?: number } = {}): Promise<NbdTarget> {
    if ((volume.replicas ?? 1) > 1) {
      if (this.closed) throw shuttingDown();
      const timeoutMs = this.options.ensurePrimaryTimeoutMs ?? ensurePrimaryTimeoutMs;
      // Not in the serial queue: opening the primary needs it (replicaDevice).
      await this.replication.awaitPrimary(volume.name, options.epoch, timeoutMs);
      return { socketPath: this.socketPath, exportName: volume.name };
    }
    return this.serial(async () => {
      const sizeBytes = volume.sizeMiB * mebibyte;
      // Every live volume is open here, so an unknown name is a volume this node does not have.
      if (!this.devices.has(volume.name)) {
        await this.store.create(volume.name, sizeBytes);
        await this.openDevice(volume.name);
        this.options.logger.log('info', 'created volume on first use', {
          volume: volume.name,
          sizeMiB: volume.sizeMiB,
        });
      } else if (this.devices.get(volume.name)!.sizeBytes < sizeBytes) {
        // The device grows; the file system on it keeps its size until resized (resize2fs).
        await this.store.grow(volume.name, sizeBytes);
        this.options.logger.log('info', 'grew volume to the size its spec asks', {
          volume: volume.name,
          sizeMiB: volume.sizeMiB,
        });
      }
      return { socketPath: this.socketPath, exportName: volume.name };
    });
  }

  /** The agent's calls over the jobs socket, when the server runs as its own process. */
  private control(control: VolumeControl): Promise<unknown> {
    switch (control.op) {
      case 'hello':
        return Promise.resolve({
          incarnation: this.incarnation,
          pid: process.pid,
          replicationAddress: this.replicationAddress,
          // What NBD clients did through this server since it started (metrics, and tests that
          // bound a resync by the bytes written while a replica was away).
          nbd: this.nbd.counters(),
        });
      case 'volume':
        return this.execute(control.request);
      case 'ensure': {
        const { epoch, ...volume } = control;
        return this.ensure(volume, epoch === undefined ? {} : { epoch });
      }
      case 'set-attached':
        this.setAttached(control.name, control.attached);
        return Promise.resolve({});
      case 'set-duties':
        this.replication.setDuties(control.duties);
        return Promise.resolve({});
      case 'self-fence':
        this.replication.selfFence(control.volume, control.epoch, control.reason);
        return Promise.resolve({});
      case 'reports':
        return this.replication
          .takeReports()
          .then((reports) => ({ incarnation: this.incarnation, reports }));
    }
  }

  setAttached(name: string, attached: boolean): void {
    if (attached) this.attached.add(name);
    else this.attached.delete(name);
  }

  /** Drains NBD connections, closes every volume (flushing it) and releases the store. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([this.nbd.close(), this.jobs.close()]);
    await this.replication.close();
    await this.queue.catch(() => undefined);
    await Promise.all([...this.devices.values()].map((device) => device.close()));
    this.devices.clear();
    await this.store.close();
  }

  private serial<T>(step: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(shuttingDown());
    const next = this.queue.then(step, step);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async openDevice(name: string): Promise<void> {
    if (!this.devices.has(name)) this.devices.set(name, await this.store.open(name));
  }

  /** What NBD clients may open: a plain volume, or the primary of a replicated one served here. */
  private exportOf(name: string) {
    const local = this.devices.get(name);
    const device = local === undefined ? undefined : this.replication.exportOf(name, local);
    return device === undefined
      ? undefined
      : { device, description: `volume ${name} on node ${this.options.node}` };
  }

  /** The local copy of a replicated volume, created empty at its size when missing. */
  private replicaDevice(name: string, sizeBytes: number): Promise<Volume> {
    return this.serial(async () => {
      this.replication.markReplicated(name);
      if (!this.devices.has(name)) {
        await this.store.create(name, sizeBytes);
        await this.openDevice(name);
        this.options.logger.log('info', 'created a replicated volume', { volume: name, sizeBytes });
      } else if (this.devices.get(name)!.sizeBytes < sizeBytes) {
        await this.store.grow(name, sizeBytes);
        this.options.logger.log('info', 'grew a replicated volume', { volume: name, sizeBytes });
      }
      return this.devices.get(name)!;
    });
  }

  private async deleteVolume(name: string): Promise<void> {
    await this.whileClosed(name, 'delete it', () => this.store.deleteVolume(name), false);
    await this.replication.forget(name);
  }

  /**
   * Runs a change that needs the volume closed: refused while an instance has it mounted; NBD
   * clients connected to it otherwise lose it (their requests fail) and reconnect afterwards.
   */
  private async whileClosed(
    name: string,
    what: string,
    step: () => Promise<void>,
    reopen = true,
  ): Promise<void> {
    this.replication.refuseIfDuty(name, what);
    if (this.attached.has(name)) {
      throw new ContinuumError(
        'CONTINUUM_ERR_VOLUME_IN_USE',
        `volume ${name} is mounted by an instance on node ${this.options.node}; stop it to ${what}`,
      );
    }
    const device = this.devices.get(name);
    this.devices.delete(name);
    await device?.close();
    let done = false;
    try {
      await step();
      done = true;
    } finally {
      if (device !== undefined && (reopen || !done)) await this.openDevice(name);
    }
  }

  private async resultFor(name: string): Promise<VolumeResult> {
    return { volumes: (await this.infos()).filter((volume) => volume.name === name) };
  }

  private async infos(): Promise<VolumeInfo[]> {
    return (await this.store.list()).map((volume) => ({
      name: volume.name,
      node: this.options.node,
      sizeBytes: volume.sizeBytes,
      allocatedBytes: volume.layers[0]?.storedBytes ?? 0,
      snapshots: volume.snapshots.map((snapshot) => snapshot.name),
      ...(volume.origin === null ? {} : { origin: volume.origin }),
      attached: this.attached.has(volume.name),
    }));
  }
}

function shuttingDown(): ContinuumError {
  return new ContinuumError('CONTINUUM_ERR_UNAVAILABLE', 'the volume server is shutting down');
}
