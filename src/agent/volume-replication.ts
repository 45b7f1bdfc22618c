// The replication side of the node's volume server (docs/replication.md): a ReplicationListener
// that takes the links of other nodes' primaries, one DutyRunner that opens this node's primaries
// and replicas as the agent passes on the controller's duties, and the queue of the primaries'
// reports that the agent long-polls. The server (volume-server.ts) owns the devices; this part
// decides which replicated volume may be exported (only one whose primary is open here, and then
// the PrimaryHandle, so every client write goes through replication).
import { randomBytes } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import { isIPv4, isIPv6 } from 'node:net';
import { dirname } from 'node:path';
import { ContinuumError } from '../core/errors.js';
import type { Clock, Logger } from '../core/ports.js';
import type { LoopPoll } from '../platform/loop-poll.js';
import { DutyRunner } from '../storage/replication/duty-runner.js';
import { FileReplicationStateStore } from '../storage/replication/file-state-store.js';
import { replicationLimits } from '../storage/replication/limits.js';
import { connectLink, ReplicationListener } from '../storage/replication/tcp-link.js';
import type { BlockDevice } from '../storage/block-device.js';
import type {
  PrimaryHandle,
  PrimaryReport,
  ReplicableDevice,
  ReplicationLink,
  ReplOpenInfo,
  VolumeDuty,
} from '../storage/replication/types.js';

/** Where the listener binds when nothing is said: this host only, any free port. */
export const replicationListenDefault = Object.freeze({ host: '127.0.0.1', port: 0 });
/** Reports kept for the agent; past it the oldest goes (primaries repeat a lasting condition). */
export const volumeReportsQueuedMax = 256;
/** How long a `reports` call waits for a report when none is queued. */
export const volumeReportsWaitMs = 1000;
/** How long `ensure` of a replicated volume waits for this node's primary to open. */
export const ensurePrimaryTimeoutMs = 30_000;
/** How long a primary's connection to a replica may take to open. */
export const replicationConnectTimeoutMs = 2000;
/** How long a new replication connection may take to send its REPL_OPEN. */
export const replicationFirstFrameTimeoutMs = 5000;
/** Replication connections open at once on this node. */
export const replicationConnectionsMax = 256;

export interface VolumeReplicationOptions {
  node: string;
  logger: Logger;
  clock: Clock;
  /** The volume store's root: each volume's replication state lives under it. */
  storeRoot: string;
  listen: { host: string; port: number };
  /**
   * Kept turning after a primary's links send, for the replicas' acks (platform/loop-poll.ts).
   * A replica's links do not kick it: its next frame waits for the client's whole round trip,
   * and a replica spinning meanwhile takes the CPU that the primary and the client need where
   * they share cores (3 copies on 2 vCPUs: depth-1 p50 261 us with it, 185-212 us without).
   */
  loopPoll?: LoopPoll;
  /** The local copy, created empty at `sizeBytes` when missing (the server's open device). */
  device(volume: string, sizeBytes: number): Promise<ReplicableDevice>;
}

export class VolumeReplication {
  private readonly runner: DutyRunner;
  /**
   * Volumes known to be replicated: named in a duty, ensured as replicated, or holding replication
   * state on disk. None of them is ever exported as a plain device.
   */
  private readonly replicated = new Set<string>();
  /** The volumes of the last duty set: their copies are in use by replication. */
  private dutyVolumes = new Set<string>();
  private readonly reports: PrimaryReport[] = [];
  private readonly pollers = new Set<() => void>();
  private listener: ReplicationListener | undefined;
  private closed = false;

  constructor(private readonly options: VolumeReplicationOptions) {
    const logger = options.logger.child({ part: 'replication' });
    this.runner = new DutyRunner({
      context: {
        node: options.node,
        clock: options.clock,
        random: cryptoRandom,
        logger,
        limits: replicationLimits(),
      },
      device: (volume, sizeBytes) => options.device(volume, sizeBytes),
      state: (volume) =>
        new FileReplicationStateStore(
          FileReplicationStateStore.directoryFor(options.storeRoot, volume),
          { volume },
        ),
      connect: (target) =>
        connectLink(target, {
          connectTimeoutMs: replicationConnectTimeoutMs,
          logger,
          loopPoll: options.loopPoll,
        }),
      report: (report) => this.queueReport(report),
      primaryChanged: (volume, handle) =>
        logger.log('info', handle === undefined ? 'primary closed' : 'primary open', { volume }),
    });
  }

  /** Learns which volumes hold replication state, then listens for primaries' links. */
  async start(): Promise<void> {
    const stateParent = dirname(
      FileReplicationStateStore.directoryFor(this.options.storeRoot, 'x'),
    );
    try {
      for (const name of await readdir(stateParent)) this.replicated.add(name);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    this.listener = await ReplicationListener.listen({
      host: this.options.listen.host,
      port: this.options.listen.port,
      logger: this.options.logger.child({ part: 'replication-listener' }),
      route: (open, link) => this.route(open, link),
      firstFrameTimeoutMs: replicationFirstFrameTimeoutMs,
      connectionsMax: replicationConnectionsMax,
    });
  }

  /** "host:port" where the listener is bound (IPv6 in brackets). */
  get address(): string {
    if (this.listener === undefined) throw new Error('the replication listener is not started');
    const { host, port } = this.listener.address();
    return formatListenAddress({ host, port });
  }

  setDuties(duties: readonly VolumeDuty[]): void {
    if (this.closed) return;
    for (const duty of duties) this.replicated.add(duty.volume);
    this.dutyVolumes = new Set(duties.map((duty) => duty.volume));
    this.runner.setDuties(duties);
  }

  selfFence(volume: string, epoch: number, reason: string): void {
    if (!this.closed) this.runner.selfFence(volume, epoch, reason);
  }

  markReplicated(volume: string): void {
    this.replicated.add(volume);
  }

  /**
   * What NBD clients may open of a local volume: the volume itself if it is not replicated, the
   * open primary if this node serves it, else nothing (a replica's copy is never written locally).
   */
  exportOf(volume: string, local: BlockDevice): BlockDevice | undefined {
    return this.replicated.has(volume) ? this.runner.primary(volume) : local;
  }

  /** A primary or replica holds the copy of a volume the last duty set names: it stays as it is. */
  refuseIfDuty(volume: string, what: string): void {
    if (!this.dutyVolumes.has(volume)) return;
    throw new ContinuumError(
      'CONTINUUM_ERR_VOLUME_IN_USE',
      `volume ${volume} is replicated and node ${this.options.node} holds a copy for it; ` +
        `cannot ${what} while the controller assigns it here`,
    );
  }

  /** This node's primary of `volume` at `epoch` or later, once open; a clear error otherwise. */
  async awaitPrimary(
    volume: string,
    epoch: number | undefined,
    timeoutMs: number,
  ): Promise<PrimaryHandle> {
    if (epoch === undefined) {
      throw new ContinuumError(
        'CONTINUUM_ERR_BAD_REQUEST',
        `ensure of replicated volume ${volume}: the instance's epoch is missing`,
      );
    }
    this.replicated.add(volume);
    const handle = await this.runner.waitForPrimary(volume, epoch, timeoutMs);
    if (handle === undefined) {
      throw new ContinuumError(
        'CONTINUUM_ERR_UNAVAILABLE',
        `replicated volume ${volume}: node ${this.options.node} is not its primary at epoch ` +
          `${epoch} after ${timeoutMs} ms (no primary duty arrived, or opening it failed: see ` +
          `the volume server's log)`,
      );
    }
    if (handle.fenced) {
      throw new ContinuumError(
        'CONTINUUM_ERR_STALE_EPOCH',
        `replicated volume ${volume}: the primary on node ${this.options.node} is fenced`,
      );
    }
    return handle;
  }

  /** The queued reports at once, or the first ones to arrive within waitMs (maybe none). */
  takeReports(waitMs: number = volumeReportsWaitMs): Promise<PrimaryReport[]> {
    if (this.reports.length > 0 || this.closed) return Promise.resolve(this.drain());
    return new Promise((resolve) => {
      const done = () => {
        this.pollers.delete(done);
        this.options.clock.clearTimeout(timer);
        resolve(this.drain());
      };
      const timer = this.options.clock.setTimeout(done, waitMs);
      this.pollers.add(done);
    });
  }

  /** A deleted volume leaves no replication state for a later one of the same name. */
  async forget(volume: string): Promise<void> {
    this.replicated.delete(volume);
    const directory = FileReplicationStateStore.directoryFor(this.options.storeRoot, volume);
    await rm(directory, { recursive: true, force: true });
  }

  /** Closes every primary and replica and the listener; waiting `reports` calls answer. */
  async close(): Promise<void> {
    this.closed = true;
    for (const poller of [...this.pollers]) poller();
    await this.runner.close();
    await this.listener?.close();
  }

  /**
   * The listener's route. A link from a primary older than the one this node serves is told it is
   * fenced (a newer epoch exists: docs/replication.md, the primary's state table), so it stops
   * answering its clients at once instead of waiting on a replica that will never come.
   */
  private route(open: ReplOpenInfo, link: ReplicationLink): string | undefined {
    const epoch = this.runner.primaryEpoch(open.volume);
    if (epoch !== undefined && open.epoch < epoch) {
      const message =
        `volume ${open.volume} on ${this.options.node} is primary at epoch ${epoch}; ` +
        `epoch ${open.epoch} from ${open.primaryNode} is refused (fenced)`;
      link.send({ type: 'REPL_FENCED', acceptedEpoch: epoch, message });
      return message;
    }
    return this.runner.accept(open, link);
  }

  private queueReport(report: PrimaryReport): void {
    const level = report.kind === 'fenced' || report.kind === 'unresponsive' ? 'warn' : 'info';
    this.options.logger.log(level, 'primary report', { ...report });
    this.reports.push(report);
    if (this.reports.length > volumeReportsQueuedMax) {
      const dropped = this.reports.shift();
      this.options.logger.log('warn', 'report queue full: dropping the oldest report', {
        volumeReportsQueuedMax,
        dropped,
      });
    }
    for (const poller of [...this.pollers]) poller();
  }

  private drain(): PrimaryReport[] {
    return this.reports.splice(0, this.reports.length);
  }
}

/** A number in [0, 1) from 48 random bits, for generation ids. */
function cryptoRandom(): number {
  return randomBytes(6).readUIntBE(0, 6) / 2 ** 48;
}

export function formatListenAddress(address: { host: string; port: number }): string {
  return isIPv6(address.host)
    ? `[${address.host}]:${address.port}`
    : `${address.host}:${address.port}`;
}

/**
 * "host:port" for `--replication-listen`: an IPv4 address or a bracketed IPv6 one, and a port
 * from 0 (any free one) to 65535. Throws an Error that names the flag and what was expected.
 */
export function parseListenAddress(text: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]*)\]|([^:[\]]*)):(\d{1,5})$/.exec(text);
  const expected =
    'expected host:port with an IPv4 address or a bracketed IPv6 one, port 0 to 65535';
  if (match === null) throw new Error(`--replication-listen: ${expected}, got "${text}"`);
  const [, ipv6, ipv4, portText] = match;
  const port = Number(portText);
  const host = ipv6 ?? ipv4!;
  const validHost = ipv6 !== undefined ? isIPv6(ipv6) : isIPv4(host);
  if (!validHost || port > 65535)
    throw new Error(`--replication-listen: ${expected}, got "${text}"`);
  return { host, port };
}
