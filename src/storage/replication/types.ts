// The seams of synchronous replication (docs/replication.md), shared by the primary and replica
// cores (primary.ts, replica.ts, resync.ts), the transports (TCP in tcp-link.ts, the simulator's
// network in src/sim) and the node's volume server that runs them. Nothing here does I/O.
import type { Clock, Logger } from '../../core/ports.js';
import type { BlockDevice } from '../block-device.js';
import type { BlockChecksums } from '../engine/chain-status.js';
import type { DirtyBitmap } from './dirty-bitmap.js';
import type { ReplicaMeta } from './replica-meta.js';
import type { ReplicationMessage } from './wire.js';

/** A block device that can say what each block holds by checksum: the engine's Volume, the sim's disk. */
export interface ReplicableDevice extends BlockDevice {
  /** At most `checksumBlocksMax` (engine/volume-device.ts) blocks per call. */
  readChecksums(startBlock: number, blockCount: number): Promise<BlockChecksums>;
}

/**
 * One ordered, reliable, bidirectional message channel between a primary and one replica (a TCP
 * connection, or the simulator's network). Messages arrive in the order sent or not at all; after
 * a close (either side, or the transport failing) nothing more is delivered and `send` drops.
 */
export interface ReplicationLink {
  readonly closed: boolean;
  send(message: ReplicationMessage): void;
  /** Set once by the party that owns the link; messages received before it are queued. */
  onMessage(handler: (message: ReplicationMessage) => void): void;
  /** Called once, when the link closes for any reason (including a local close()). */
  onClose(handler: (reason: string) => void): void;
  close(reason: string): void;
}

/** Opens a link from a primary to the replica of `volume` on `node` at `address`. */
export type LinkConnector = (target: {
  volume: string;
  node: string;
  address: string;
}) => ReplicationLink;

/**
 * The persisted replication state of one volume on one node, beside its data (files next to the
 * volume's catalog for real; memory that survives simulated crashes in the simulator). Every save
 * is durable when its promise resolves.
 */
export interface ReplicationStateStore {
  loadMeta(): Promise<ReplicaMeta | null>;
  saveMeta(meta: ReplicaMeta): Promise<void>;
  /** The primary's dirty bitmap for one peer outside the ISR, or null when it has none. */
  loadBitmap(peer: string): Promise<DirtyBitmap | null>;
  saveBitmap(peer: string, bitmap: DirtyBitmap): Promise<void>;
  deleteBitmap(peer: string): Promise<void>;
}

/** The membership of a replicated volume as the controller recorded it (the workload's record). */
export interface VolumeMembership {
  /** Every node holding a copy, the primary included. */
  readonly replicas: readonly { readonly node: string; readonly address: string }[];
  /** In sync: must ack every mutation; only these may be promoted. Contains the primary. */
  readonly isr: readonly string[];
  /** Raised by the controller at every change of `isr` or `replicas`; a primary ignores an older one. */
  readonly isrVersion: number;
}

/** What a node's volume server is told to do for one replicated volume, through its agent. */
export interface VolumeDuty {
  readonly volume: string;
  readonly sizeBytes: number;
  /** primary: serve the instance at `epoch`; replica: hold a copy, accept primaries of at least `epoch`. */
  readonly role: 'primary' | 'replica';
  readonly epoch: number;
  readonly membership: VolumeMembership;
}

/** What a primary tells the controller (through its agent), and what it shows. */
export type PrimaryReport =
  /** An ISR member did not ack within `replicaAckTimeoutMs`: writes wait until the controller decides. */
  | {
      readonly kind: 'unresponsive';
      readonly volume: string;
      readonly epoch: number;
      readonly node: string;
      readonly isrVersion: number;
      /** How long the oldest operation owed by that member has waited (the agent's self-fence clock). */
      readonly waitingMs: number;
    }
  /**
   * This primary's own copy was not closed cleanly (it may have lost writes the other ISR members
   * hold): it serves nothing until the controller drops it from the ISR and moves the workload.
   */
  | {
      readonly kind: 'unclean';
      readonly volume: string;
      readonly epoch: number;
      readonly node: string;
      readonly isrVersion: number;
      /** How long this primary has held every operation (since it opened). */
      readonly waitingMs: number;
    }
  /** A replica outside the ISR has every mutation; the primary already waits for its acks. */
  | {
      readonly kind: 'caught-up';
      readonly volume: string;
      readonly epoch: number;
      readonly node: string;
      readonly isrVersion: number;
    }
  /**
   * A replica refused our epoch, a newer primary exists, or the agent self-fenced the primary (cut
   * off from the controller while its operations waited): nothing more is acknowledged.
   */
  | {
      readonly kind: 'fenced';
      readonly volume: string;
      readonly epoch: number;
      readonly reason: string;
    }
  | {
      readonly kind: 'resync';
      readonly volume: string;
      readonly epoch: number;
      readonly node: string;
      readonly mode: 'delta' | 'full' | 'verify';
      readonly bytesCopied: number;
      readonly bytesToCopy: number;
      readonly blocksCompared: number;
      readonly done: boolean;
    };

/** Named limits of replication (CONVENTIONS.md item 9), with defaults in limits.ts. */
export interface ReplicationLimits {
  /** Mutations sent to one replica and not yet acked; past it new client mutations wait. */
  readonly inFlightMax: number;
  /** How long an ISR member may leave a mutation unacked before the primary reports it. */
  readonly replicaAckTimeoutMs: number;
  /** Resync copy rate per replica. */
  readonly resyncBytesPerSecondMax: number;
  /** Bytes one resync step copies (and the granularity of its progress). */
  readonly resyncChunkBytes: number;
  /** Region size of the dirty bitmaps. */
  readonly bitmapRegionBytes: number;
  /** How long a new primary waits for the ISR to accept its epoch before reporting. */
  readonly acceptEpochTimeoutMs: number;
  /**
   * The read lease (docs/replication.md, "Reads and the lease"): a primary answers reads only
   * within this long of sending something every other ISR member has since acknowledged, and a
   * primary that opens with a copy that has a history serves nothing for this long.
   */
  readonly readLeaseMs: number;
}

/** What the cores need of their surroundings. */
export interface ReplicationContext {
  readonly node: string;
  readonly clock: Clock;
  /** A source of numbers in [0, 1) for generation ids (seeded in the simulator). */
  readonly random: () => number;
  readonly logger: Logger;
  readonly limits: ReplicationLimits;
}

export interface PrimaryOptions {
  readonly context: ReplicationContext;
  readonly volume: string;
  /** The workload's epoch this primary serves; every message it sends carries it. */
  readonly epoch: number;
  /** The local copy. */
  readonly device: ReplicableDevice;
  readonly state: ReplicationStateStore;
  readonly membership: VolumeMembership;
  readonly connect: LinkConnector;
  readonly report: (report: PrimaryReport) => void;
  /**
   * The deliberately broken rule for the simulator's self-test: answer mutations once written
   * locally, without waiting for the ISR. Never set outside src/sim.
   */
  readonly unsafeAckBeforeIsr?: boolean;
}

export type ReplicaState = 'connecting' | 'in-sync' | 'outdated' | 'resyncing' | 'caught-up';

export interface ReplicaStatus {
  readonly node: string;
  readonly state: ReplicaState;
  /** Mutations sent and not yet acked. */
  readonly unacked: number;
  readonly resync?: {
    readonly mode: 'delta' | 'full' | 'verify';
    readonly bytesCopied: number;
    readonly bytesToCopy: number;
    readonly blocksCompared: number;
  };
}

export interface PrimaryStatus {
  readonly volume: string;
  readonly epoch: number;
  readonly generation: string;
  readonly fenced: boolean;
  readonly isrVersion: number;
  readonly replicas: readonly ReplicaStatus[];
  /** Held: the local copy was not closed cleanly and other ISR members exist (primary-held.ts). */
  readonly unclean?: boolean;
}

/**
 * The primary: a BlockDevice whose mutations are answered only once every ISR member has them
 * (flushes: made them durable). `openPrimary` resolves once the local copy accepted `epoch` and
 * began a new generation (persisted); client operations issued before every ISR member accepted
 * the epoch wait for that; reads are answered only under the read lease, and a primary promoted
 * above its copy's epoch serves nothing for `readLeaseMs` (primary.ts). Once fenced, every pending and later operation fails with
 * BlockDeviceError('io') and nothing more is acknowledged.
 */
export interface PrimaryHandle extends ReplicableDevice {
  readonly fenced: boolean;
  /**
   * Self-fencing (ARCHITECTURE.md section 3, item 5): pending and later operations fail with EIO,
   * links close, a 'fenced' report goes with `reason`. Nothing more is acknowledged at this epoch.
   */
  fence(reason: string): void;
  /** A newer membership from the controller (an older or equal isrVersion is ignored). */
  setMembership(membership: VolumeMembership): void;
  status(): PrimaryStatus;
  /**
   * Stops serving: pending operations fail, links close; then the local device is flushed and the
   * copy recorded as closed cleanly (replica-meta.ts `unclean`). The device stays open (the caller
   * owns it).
   */
  close(): Promise<void>;
}

/** REPL_OPEN, the primary's first frame on a link: which volume, from whom, at which epoch. */
export interface ReplOpenInfo {
  readonly volume: string;
  readonly primaryNode: string;
  readonly epoch: number;
}

export interface ReplicaOptions {
  readonly context: ReplicationContext;
  readonly volume: string;
  readonly device: ReplicableDevice;
  readonly state: ReplicationStateStore;
  /** The epoch the controller assigned; accepted (persisted) at open, so older primaries are refused. */
  readonly epoch: number;
}

/** A replica: applies what its primary sends over the links handed to it, refusing older epochs. */
export interface ReplicaHandle {
  readonly highestEpoch: number;
  /** The controller assigned a newer epoch (persisted before it resolves). */
  acceptEpoch(epoch: number): Promise<void>;
  /**
   * A link from a primary for this volume. The primary's first frame on every link is REPL_OPEN;
   * the transport reads it to route the link by volume name and passes it here, so `link`
   * delivers only what follows it. The replica answers with REPL_HELLO.
   */
  accept(link: ReplicationLink, open: ReplOpenInfo): void;
  /**
   * Closes every link, lets the mutations being applied finish, flushes the device and records the
   * copy as closed cleanly when it is known complete; the device stays open (the caller owns it).
   */
  close(): Promise<void>;
}

/**
 * The agent's side of the node's volume server for replicated volumes: the full set of duties of
 * this node (anything not listed is closed: a primary stops serving, a replica stops accepting).
 * Reports come back through the callback given when the port was made.
 */
export interface VolumeDutyPort {
  setDuties(duties: readonly VolumeDuty[]): void;
  /**
   * The agent self-fences this node's primary of `volume` at `epoch` (if it is open at that epoch):
   * it stops acknowledging and reports 'fenced' with `reason`. Fire and forget.
   */
  selfFence(volume: string, epoch: number, reason: string): void;
}
