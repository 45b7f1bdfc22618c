// Which VIPs this node should hold (docs/vip.md "Rules"): those of its instances that run (or are
// starting, or restarting in place) at the workload's current epoch and are not fenced, and, once
// any assignment set has arrived since the agent started, that the newest set still assigns here
// at that epoch. An agent that has heard no controller for its fence timeout withdraws them all
// (Pacemaker's no-quorum-policy=stop for IPaddr2): the controller may have moved the workload by
// then. They come back only when an assignment set confirms the workload at that epoch again.
import type { InstanceState } from '../core/model.js';
import type { Clock, Logger, TimerHandle } from '../core/ports.js';
import type { WorkloadSpec } from '../core/spec.js';
import type { AgentState } from './agent-state.js';
import type { InstanceRunner } from './instance-runner.js';
import type { VipBinding, VipManager } from './vip.js';

/** How often the keeper looks whether the controller has been silent too long. */
export const vipSilenceCheckIntervalMs = 250;

/** Instance states in which the VIP stays: an instance restarting in place keeps its address. */
const holdingStates = new Set<InstanceState>(['starting', 'healthy', 'unhealthy', 'restarting']);

export interface VipInstance {
  workload: string;
  epoch: number;
  spec: WorkloadSpec;
  state: InstanceState;
  /** At the newest epoch this node knows of the workload, and not stopped for fencing. */
  current: boolean;
}

export interface VipKeeperOptions {
  clock: Clock;
  logger: Logger;
  /** Silence from the controller after which VIPs are withdrawn (the agent's fence timeout). */
  fenceTimeoutMs: number;
  /** How long no controller has been heard, now. */
  silentMs(): number;
  /** This node's instances, now. */
  instances(): VipInstance[];
  /** Where the keeper's conclusion goes: a VipManager. */
  setWanted(bindings: VipBinding[]): void;
  checkIntervalMs?: number;
}

export class VipKeeper {
  /** The newest assignment set taken, by workload; undefined until one arrives after start. */
  private confirmed: Map<string, number> | undefined;
  private cutOff = false;
  private started = false;
  private timer: TimerHandle | undefined;

  constructor(private readonly options: VipKeeperOptions) {}

  /** After the agent re-attached to its instances: from now on the wanted set is computed. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.refresh();
    this.schedule();
  }

  /** An assignment set was taken (not ignored as stale): it confirms what may hold a VIP. */
  assigned(assignments: readonly { workload: string; epoch: number }[]): void {
    this.confirmed = new Map(assignments.map((a) => [a.workload, a.epoch]));
    if (this.cutOff)
      this.options.logger.log('info', 'VIP: the controller confirmed its assignments', {
        workloads: [...this.confirmed.keys()],
      });
    this.cutOff = false;
    if (!this.started) this.start();
    else this.refresh();
  }

  /** Recomputes the wanted set from the instances now (after any change of theirs). */
  refresh(): void {
    if (!this.started) return;
    this.options.setWanted(this.wanted());
  }

  close(): void {
    if (this.timer !== undefined) this.options.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.started = false;
  }

  private wanted(): VipBinding[] {
    if (this.cutOff) return [];
    return this.options.instances().flatMap((instance) => {
      if (!instance.current || !holdingStates.has(instance.state)) return [];
      if (this.confirmed !== undefined && this.confirmed.get(instance.workload) !== instance.epoch)
        return [];
      return instance.spec.endpoints.flatMap((endpoint) =>
        endpoint.vip === undefined
          ? []
          : [
              {
                workload: instance.workload,
                address: endpoint.vip.address,
                ...(endpoint.vip.interface === undefined
                  ? {}
                  : { interface: endpoint.vip.interface }),
              },
            ],
      );
    });
  }

  private schedule(): void {
    const intervalMs = this.options.checkIntervalMs ?? vipSilenceCheckIntervalMs;
    this.timer = this.options.clock.setTimeout(() => {
      this.check();
      if (this.started) this.schedule();
    }, intervalMs);
  }

  private check(): void {
    const silentMs = this.options.silentMs();
    if (this.cutOff || silentMs < this.options.fenceTimeoutMs) return;
    this.cutOff = true;
    // Whatever the controller decided meanwhile, only a new assignment set says.
    this.confirmed = new Map();
    this.options.logger.log('warn', 'VIP: no controller heard; withdrawing every VIP', {
      silentMs,
      fenceTimeoutMs: this.options.fenceTimeoutMs,
    });
    this.refresh();
  }
}

/**
 * The agent core's side of VIPs: the manager adopts the addresses a previous agent recorded
 * (removed unless an instance wants them), what it may hold is kept in the agent's state, and a
 * keeper computes the wanted set from the core's runners.
 */
export function connectVips(
  vips: VipManager,
  core: Pick<VipKeeperOptions, 'clock' | 'logger' | 'fenceTimeoutMs' | 'silentMs'> & {
    state: AgentState;
    persist(): void;
    runners(): Iterable<InstanceRunner>;
  },
): VipKeeper {
  vips.adopt(core.state.vips ?? []);
  vips.heldChanged = (held) => {
    core.state.vips = held;
    core.persist();
  };
  return new VipKeeper({
    clock: core.clock,
    logger: core.logger,
    fenceTimeoutMs: core.fenceTimeoutMs,
    silentMs: core.silentMs,
    instances: () =>
      [...core.runners()].map((r) => ({
        workload: r.workload,
        epoch: r.epoch,
        spec: r.spec,
        state: r.status().state,
        current:
          r.epoch >= (core.state.highestEpochs[r.workload] ?? 0) &&
          core.state.fenced?.[r.workload] !== r.epoch,
      })),
    setWanted: (bindings) => vips.setWanted(bindings),
  });
}
