// A primary and its replicas wired together in memory for the replication tests: each replica
// has its own device and state store, links are linkPair()s routed by their REPL_OPEN as a
// transport would, and the clock is the simulator's FakeClock, so time moves only when a test
// says so.
import { silentLogger, type Logger } from '../../core/ports.js';
import { BlockDeviceError } from '../block-device.js';
import { FakeClock } from '../../sim/fake-clock.js';
import { mulberry32 } from '../../sim/rng.js';
import { replicationLimits } from './limits.js';
import { openPrimary } from './primary.js';
import { openReplica } from './replica.js';
import {
  ChecksumMemoryDevice,
  linkPair,
  MemoryStateStore,
  type TestLinkEnd,
} from './test-support.js';
import type {
  PrimaryHandle,
  PrimaryReport,
  ReplicaHandle,
  ReplicationContext,
  ReplicationLimits,
  VolumeMembership,
} from './types.js';

export const volume = 'vol-1';
export const blockBytes = 4096;

export interface ReplicaNode {
  readonly node: string;
  readonly device: ChecksumMemoryDevice;
  readonly state: MemoryStateStore;
  handle: ReplicaHandle;
  /** Links to it, newest last: [primary end, replica end]. */
  readonly links: [TestLinkEnd, TestLinkEnd][];
  /** When false, connections to it fail at once (closed links), as to a node that is down. */
  reachable: boolean;
  /** Where it listens: a connection to any other address fails (default `${node}:7000`). */
  address: string;
}

export interface ClusterOptions {
  readonly replicas?: readonly string[];
  /** ISR without the primary 'a' (default: every replica). */
  readonly isr?: readonly string[];
  readonly sizeBytes?: number;
  readonly limits?: Partial<ReplicationLimits>;
  readonly unsafeAckBeforeIsr?: boolean;
  readonly epoch?: number;
  /** Runs before the primary opens: fill devices, raise epochs. */
  readonly prepare?: (cluster: Cluster) => Promise<void> | void;
  readonly logger?: Logger;
}

export class Cluster {
  readonly clock = new FakeClock({ startMs: 1_000_000 });
  readonly random = mulberry32(7);
  readonly reports: PrimaryReport[] = [];
  readonly replicas = new Map<string, ReplicaNode>();
  readonly device: ChecksumMemoryDevice;
  readonly state = new MemoryStateStore();
  readonly limits: ReplicationLimits;
  primary!: PrimaryHandle;
  membership: VolumeMembership;

  constructor(readonly options: ClusterOptions) {
    const sizeBytes = options.sizeBytes ?? 4 * 1024 * 1024;
    this.device = new ChecksumMemoryDevice({ sizeBytes, blockSizeBytes: blockBytes });
    this.limits = replicationLimits({ resyncBytesPerSecondMax: 2 ** 40, ...options.limits });
    const names = options.replicas ?? ['b', 'c'];
    this.membership = {
      replicas: ['a', ...names].map((node) => ({ node, address: `${node}:7000` })),
      isr: ['a', ...(options.isr ?? names)],
      isrVersion: 1,
    };
  }

  context(node: string): ReplicationContext {
    const logger = this.options.logger ?? silentLogger;
    return { node, clock: this.clock, random: this.random, logger, limits: this.limits };
  }

  async addReplica(node: string, epoch = 1): Promise<ReplicaNode> {
    const device = new ChecksumMemoryDevice({
      sizeBytes: this.device.sizeBytes,
      blockSizeBytes: blockBytes,
    });
    const state = new MemoryStateStore();
    const handle = await openReplica({ context: this.context(node), volume, device, state, epoch });
    const replica: ReplicaNode = {
      node,
      device,
      state,
      handle,
      links: [],
      reachable: true,
      address: `${node}:7000`,
    };
    this.replicas.set(node, replica);
    return replica;
  }

  replica(node: string): ReplicaNode {
    const replica = this.replicas.get(node);
    if (replica === undefined) throw new Error(`no replica ${node}`);
    return replica;
  }

  /** The newest link to a replica: [primary end, replica end]. */
  link(node: string): [TestLinkEnd, TestLinkEnd] {
    const link = this.replica(node).links.at(-1);
    if (link === undefined) throw new Error(`no link to ${node}`);
    return link;
  }

  async openPrimary(epoch = this.options.epoch ?? 1): Promise<PrimaryHandle> {
    this.primary = await openPrimary({
      context: this.context('a'),
      volume,
      epoch,
      device: this.device,
      state: this.state,
      membership: this.membership,
      connect: ({ node, address }) => this.connect(node, address),
      report: (report) => this.reports.push(report),
      unsafeAckBeforeIsr: this.options.unsafeAckBeforeIsr ?? false,
    });
    return this.primary;
  }

  private connect(node: string, address: string): TestLinkEnd {
    const [primaryEnd, replicaEnd] = linkPair();
    const replica = this.replicas.get(node);
    if (replica === undefined || !replica.reachable || replica.address !== address) {
      primaryEnd.close('connection refused');
      return primaryEnd;
    }
    replica.links.push([primaryEnd, replicaEnd]);
    // What the TCP transport does: read the first frame, route by volume, hand the rest over.
    replicaEnd.onMessage((first) => {
      if (first.type !== 'REPL_OPEN') return replicaEnd.close('expected REPL_OPEN first');
      replica.handle.accept(replicaEnd, first);
    });
    return primaryEnd;
  }

  setMembership(isr: readonly string[], replicas?: readonly string[], isrVersionStep = 1): void {
    const names = replicas ?? this.membership.replicas.map((replica) => replica.node);
    this.membership = {
      replicas: names.map((node) => ({
        node,
        address: this.replicas.get(node)?.address ?? `${node}:7000`,
      })),
      isr: [...isr],
      isrVersion: this.membership.isrVersion + isrVersionStep,
    };
    this.primary.setMembership(this.membership);
  }

  reportsOf<K extends PrimaryReport['kind']>(kind: K): Extract<PrimaryReport, { kind: K }>[] {
    return this.reports.filter(
      (report): report is Extract<PrimaryReport, { kind: K }> => report.kind === kind,
    );
  }
}

/** A cluster with its replicas open and its primary open (not necessarily connected yet). */
export async function cluster(options: ClusterOptions = {}): Promise<Cluster> {
  const result = new Cluster(options);
  for (const node of options.replicas ?? ['b', 'c'])
    await result.addReplica(node, options.epoch ?? 1);
  await options.prepare?.(result);
  await result.openPrimary();
  return result;
}

export const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A failure the primary gives its client: EIO (fenced, closed, held past a close). */
export const isIo = (error: unknown): boolean =>
  error instanceof BlockDeviceError && error.kind === 'io';

/** Every replica in sync and its first verify pass done (it holds chunk locks while it runs). */
export const ready = (c: Cluster): Promise<void> =>
  eventually(
    () =>
      c.primary.status().replicas.every((replica) => replica.state === 'in-sync') &&
      c.primary
        .status()
        .replicas.every((replica) =>
          c.reportsOf('resync').some((r) => r.node === replica.node && r.done),
        ),
    { what: 'every replica in sync and verified' },
  );

/**
 * Waits for `condition`, letting messages flow (and moving the fake clock by `advanceMs` a step
 * when given); fails after `steps` rounds, never on a wall-clock sleep.
 */
export async function eventually(
  condition: () => boolean,
  options: { what?: string; clock?: FakeClock; advanceMs?: number; steps?: number } = {},
): Promise<void> {
  const steps = options.steps ?? 2000;
  for (let step = 0; step < steps; step++) {
    if (condition()) return;
    await tick();
    if (options.clock !== undefined && options.advanceMs !== undefined) {
      options.clock.advance(options.advanceMs);
    }
  }
  throw new Error(`timed out waiting for ${options.what ?? 'a condition'}`);
}

/** Whether a promise settled yet (after letting queued work run). */
export async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  promise.then(
    () => (done = true),
    () => (done = true),
  );
  for (let round = 0; round < 20; round++) await tick();
  return done;
}

export function pattern(byte: number, length = blockBytes): Buffer {
  return Buffer.alloc(length, byte);
}
