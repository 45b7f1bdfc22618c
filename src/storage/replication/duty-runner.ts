// Carries out a node's replication duties (the controller's, through the agent): for each
// replicated volume, a primary at the duty's epoch or a replica accepting at least that epoch;
// whatever is not listed is closed. Changes to one volume run one after another (closing a
// primary before opening the replica that replaces it); volumes do not wait for each other.
// Shared by the node's volume server (real disks, TCP links) and the simulator (its disks and
// network), so both run the same decisions.
import { isContinuumError } from '../../core/errors.js';
import { openPrimary } from './primary.js';
import { openReplica } from './replica.js';
import type {
  LinkConnector,
  PrimaryHandle,
  PrimaryReport,
  ReplicaHandle,
  ReplicableDevice,
  ReplicationContext,
  ReplicationLink,
  ReplicationStateStore,
  ReplOpenInfo,
  VolumeDuty,
  VolumeDutyPort,
} from './types.js';

export interface DutyRunnerOptions {
  readonly context: ReplicationContext;
  /** The local copy of a volume, created empty at `sizeBytes` when the node has none yet. */
  device(volume: string, sizeBytes: number): Promise<ReplicableDevice>;
  state(volume: string): ReplicationStateStore;
  readonly connect: LinkConnector;
  report(report: PrimaryReport): void;
  /** The simulator's deliberately broken build only (types.ts PrimaryOptions). */
  readonly unsafeAckBeforeIsr?: boolean;
  /** A primary opened (handle) or closed (undefined): the NBD export follows it. */
  primaryChanged?(volume: string, handle: PrimaryHandle | undefined): void;
}

type Role =
  | { kind: 'primary'; epoch: number; handle: PrimaryHandle }
  | { kind: 'replica'; handle: ReplicaHandle };

export class DutyRunner implements VolumeDutyPort {
  private readonly roles = new Map<string, Role>();
  private readonly queues = new Map<string, Promise<void>>();
  private readonly waiters = new Set<() => void>();
  private closed = false;

  constructor(private readonly options: DutyRunnerOptions) {}

  setDuties(duties: readonly VolumeDuty[]): void {
    if (this.closed) return;
    const listed = new Set(duties.map((d) => d.volume));
    for (const duty of duties) this.enqueue(duty.volume, () => this.apply(duty));
    for (const volume of this.roles.keys())
      if (!listed.has(volume)) this.enqueue(volume, () => this.release(volume, 'no longer a duty'));
  }

  selfFence(volume: string, epoch: number, reason: string): void {
    if (this.closed) return;
    this.enqueue(volume, () => Promise.resolve(this.fenceNow(volume, epoch, reason)));
  }

  private fenceNow(volume: string, epoch: number, reason: string): void {
    const role = this.roles.get(volume);
    if (role?.kind !== 'primary' || role.epoch !== epoch || role.handle.fenced) return;
    this.options.context.logger.log('warn', 'self-fencing the primary', { volume, epoch, reason });
    role.handle.fence(reason);
  }

  /** The open primary of a volume, if this node serves it now. */
  primary(volume: string): PrimaryHandle | undefined {
    const role = this.roles.get(volume);
    return role?.kind === 'primary' ? role.handle : undefined;
  }

  /** The epoch of the open primary of a volume, if any. */
  primaryEpoch(volume: string): number | undefined {
    const role = this.roles.get(volume);
    return role?.kind === 'primary' ? role.epoch : undefined;
  }

  /** Resolves with the primary once one is open at `epoch` or later; undefined after timeoutMs. */
  waitForPrimary(
    volume: string,
    epoch: number,
    timeoutMs: number,
  ): Promise<PrimaryHandle | undefined> {
    return new Promise((resolve) => {
      const check = () => {
        const role = this.roles.get(volume);
        if (role?.kind !== 'primary' || role.epoch < epoch) return false;
        done(role.handle);
        return true;
      };
      const timer = this.options.context.clock.setTimeout(() => done(undefined), timeoutMs);
      const done = (handle: PrimaryHandle | undefined) => {
        this.waiters.delete(waiter);
        this.options.context.clock.clearTimeout(timer);
        resolve(handle);
      };
      const waiter = () => {
        if (this.closed) done(undefined);
        else check();
      };
      if (!check()) this.waiters.add(waiter);
    });
  }

  /** A link whose REPL_OPEN arrived (the transport's route): taken by the replica, or refused. */
  accept(open: ReplOpenInfo, link: ReplicationLink): string | undefined {
    const role = this.roles.get(open.volume);
    if (role === undefined)
      return `no copy of volume ${open.volume} is open on ${this.options.context.node}`;
    if (role.kind === 'primary')
      return `${this.options.context.node} is the primary of ${open.volume} at epoch ${role.epoch}, not a replica`;
    role.handle.accept(link, open);
    return undefined;
  }

  /** Closes every primary and replica (the local devices stay with their owner). */
  async close(): Promise<void> {
    this.closed = true;
    // Callers waiting for a primary (an instance's mount) hear now that none is coming.
    for (const waiter of [...this.waiters]) waiter();
    await Promise.all([...this.queues.values()]);
    for (const volume of [...this.roles.keys()]) await this.release(volume, 'closing');
  }

  private enqueue(volume: string, task: () => Promise<void>): void {
    const previous = this.queues.get(volume) ?? Promise.resolve();
    const next = previous.then(task).catch((error: unknown) => {
      this.options.context.logger.log('error', 'replication duty failed', {
        volume,
        error: String(error),
      });
    });
    this.queues.set(volume, next);
    void next.then(() => {
      if (this.queues.get(volume) === next) this.queues.delete(volume);
    });
  }

  private async apply(duty: VolumeDuty): Promise<void> {
    if (this.closed) return;
    const current = this.roles.get(duty.volume);
    if (duty.role === 'primary') {
      if (current?.kind === 'primary' && current.epoch === duty.epoch) {
        current.handle.setMembership(duty.membership);
        return;
      }
      await this.release(duty.volume, `primary at epoch ${duty.epoch} now`);
      await this.openPrimaryRole(duty);
      return;
    }
    if (current?.kind === 'replica') {
      if (duty.epoch > current.handle.highestEpoch) await current.handle.acceptEpoch(duty.epoch);
      return;
    }
    await this.release(duty.volume, `replica at epoch ${duty.epoch} now`);
    const handle = await openReplica({
      context: this.options.context,
      volume: duty.volume,
      device: await this.options.device(duty.volume, duty.sizeBytes),
      state: this.options.state(duty.volume),
      epoch: duty.epoch,
    });
    this.roles.set(duty.volume, { kind: 'replica', handle });
  }

  private async openPrimaryRole(duty: VolumeDuty): Promise<void> {
    const { volume, epoch } = duty;
    try {
      const handle = await openPrimary({
        context: this.options.context,
        volume,
        epoch,
        device: await this.options.device(volume, duty.sizeBytes),
        state: this.options.state(volume),
        membership: duty.membership,
        connect: this.options.connect,
        report: (report) => this.options.report(report),
        ...(this.options.unsafeAckBeforeIsr ? { unsafeAckBeforeIsr: true } : {}),
      });
      this.roles.set(volume, { kind: 'primary', epoch, handle });
      this.options.primaryChanged?.(volume, handle);
      for (const waiter of [...this.waiters]) waiter();
    } catch (error) {
      if (!isContinuumError(error)) throw error;
      // Refused: a newer epoch was accepted here, so this duty is stale and must not serve.
      this.options.report({ kind: 'fenced', volume, epoch, reason: error.message });
    }
  }

  private async release(volume: string, why: string): Promise<void> {
    const role = this.roles.get(volume);
    if (role === undefined) return;
    this.roles.delete(volume);
    if (role.kind === 'primary') this.options.primaryChanged?.(volume, undefined);
    this.options.context.logger.log('info', `closing the ${role.kind} of ${volume}: ${why}`);
    await role.handle.close();
  }
}
