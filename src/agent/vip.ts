// Virtual IP endpoints on one node (docs/vip.md): the manager is told, level-based, which VIPs this
// node should hold now, and converges each address in the background, one command at a time:
//
//   acquire: find the interface, probe with ARP until no other host answers for the address
//            (bounded by takeoverWaitMs: the previous holder withdraws on its own), `ip addr add`,
//            then announce it with gratuitous ARP so that neighbours' caches point here at once.
//   release: stop any announcement still running, then `ip addr del`.
//
// Adding an address that is there and removing one that is not both count as done, so a retry or
// an agent restart repeats nothing harmful. Every command has a timeout; a failure is logged and
// retried after retryDelayMs; nothing here ever blocks the agent's loop. The addresses this node
// may hold are reported through heldChanged before each add, so that a restarted agent can remove
// the ones left behind by its predecessor.
import { parseVipAddress } from '../core/spec.js';
import type { Clock, Logger, TimerHandle } from '../core/ports.js';
import {
  alreadyAdded,
  alreadyRemoved,
  arpingCommand,
  describeFailure,
  interfaceFor,
  ipCommand,
  parseAddresses,
  type CommandResult,
  type CommandRunner,
} from './vip-commands.js';

/** Timeout of one `ip` command. */
export const vipCommandTimeoutMs = 2000;
/** How long an ARP probe waits for another holder's answer before it counts the address free. */
export const vipProbeWaitMs = 300;
/** Pause between ARP probes while another host still answers for the address. */
export const vipProbeRetryMs = 100;
/** Gratuitous ARPs sent after an add (one a second), and the timeout of that command. */
export const vipAnnounceCount = 2;
export const vipAnnounceTimeoutMs = 4000;
/**
 * Added to the fence timeout for the longest wait for another holder to withdraw: a cut-off agent
 * notices its silence within a keep-alive period and a check interval of the timeout.
 */
export const vipTakeoverMarginMs = 2000;
/** Pause before a failed add or remove is tried again. */
export const vipRetryDelayMs = 1000;

/** A VIP this node should hold: the address with its prefix length, and where. */
export interface VipBinding {
  workload: string;
  /** "a.b.c.d/len". */
  address: string;
  /** Default: found from the node's addresses and routes (vip-commands.ts interfaceFor). */
  interface?: string;
}

/** An address this node holds, or may hold (an add was tried): what a restarted agent removes. */
export interface HeldVip {
  workload: string;
  address: string;
  interface: string;
}

export interface VipManagerOptions {
  runner: CommandRunner;
  logger: Logger;
  clock: Clock;
  /**
   * How long to wait for another host that still answers for an address before taking it anyway:
   * longer than a cut-off agent takes to withdraw (its fence timeout, plus a margin).
   */
  takeoverWaitMs: number;
  commandTimeoutMs?: number;
  probeWaitMs?: number;
  probeRetryMs?: number;
  retryDelayMs?: number;
}

interface Slot {
  ip: string;
  wanted: VipBinding | undefined;
  held: HeldVip | undefined;
  /** The add succeeded (or found the address there) and no remove was tried since. */
  present: boolean;
  working: boolean;
  again: boolean;
  retry: TimerHandle | undefined;
  announce: AbortController | undefined;
  lastError: string | undefined;
}

export class VipManager {
  /** Told the addresses this node may hold whenever they change (the agent persists them). */
  heldChanged: (held: HeldVip[]) => void = () => undefined;
  private readonly slots = new Map<string, Slot>();
  private readonly running = new Set<Promise<void>>();
  private arping: Promise<boolean> | undefined;
  private closed = false;
  private readonly limits: Required<
    Pick<VipManagerOptions, 'commandTimeoutMs' | 'probeWaitMs' | 'probeRetryMs' | 'retryDelayMs'>
  >;

  constructor(private readonly options: VipManagerOptions) {
    if (!Number.isInteger(options.takeoverWaitMs) || options.takeoverWaitMs < 0)
      throw new RangeError(
        `VIP takeoverWaitMs: expected a whole number of milliseconds >= 0, got ${options.takeoverWaitMs}`,
      );
    this.limits = {
      commandTimeoutMs: options.commandTimeoutMs ?? vipCommandTimeoutMs,
      probeWaitMs: options.probeWaitMs ?? vipProbeWaitMs,
      probeRetryMs: options.probeRetryMs ?? vipProbeRetryMs,
      retryDelayMs: options.retryDelayMs ?? vipRetryDelayMs,
    };
  }

  /** Addresses a previous agent recorded: kept if wanted at the next setWanted, else removed. */
  adopt(held: readonly HeldVip[]): void {
    for (const vip of held) {
      const ip = parseVipAddress(vip.address)?.ip;
      if (ip !== undefined && !this.slots.has(ip))
        this.slots.set(ip, { ...newSlot(ip), held: vip });
    }
  }

  /** The VIPs to hold now; every other address this manager holds is released. */
  setWanted(bindings: readonly VipBinding[]): void {
    const wanted = new Map<string, VipBinding>();
    for (const binding of bindings) {
      const ip = parseVipAddress(binding.address)?.ip;
      if (ip !== undefined && !wanted.has(ip)) wanted.set(ip, binding);
    }
    for (const ip of new Set([...this.slots.keys(), ...wanted.keys()])) {
      const slot = this.slots.get(ip) ?? newSlot(ip);
      this.slots.set(ip, slot);
      const next = wanted.get(ip);
      // The same binding again leaves a running acquire (waiting for another holder) undisturbed.
      if (!sameBinding(slot.wanted, next)) slot.wanted = next;
      if (needsWork(slot)) this.kick(slot);
    }
  }

  /** Addresses held, or possibly held, now. */
  held(): HeldVip[] {
    return [...this.slots.values()].flatMap((slot) => (slot.held === undefined ? [] : [slot.held]));
  }

  /** Resolves once no command is running or due (for tests; a retry timer may still be set). */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running]);
  }

  /** Agent shutdown: addresses stay with their instances, which keep running. */
  close(): void {
    this.closed = true;
    for (const slot of this.slots.values()) {
      if (slot.retry !== undefined) this.options.clock.clearTimeout(slot.retry);
      slot.retry = undefined;
      slot.announce?.abort();
    }
  }

  private kick(slot: Slot): void {
    if (this.closed) return;
    if (slot.working) {
      slot.again = true;
      return;
    }
    slot.working = true;
    const work = (async () => {
      try {
        do {
          slot.again = false;
          await this.step(slot);
        } while (slot.again && !this.closed);
      } catch (error) {
        this.options.logger.log('error', 'VIP step failed', { vip: slot.ip, error: String(error) });
        this.retryLater(slot);
      } finally {
        slot.working = false;
        if (slot.wanted === undefined && slot.held === undefined && slot.retry === undefined)
          this.slots.delete(slot.ip);
      }
    })();
    this.track(work);
  }

  private track(work: Promise<void>): void {
    this.running.add(work);
    void work.finally(() => this.running.delete(work));
  }

  private async step(slot: Slot): Promise<void> {
    const want = slot.wanted;
    if (slot.held !== undefined && (want === undefined || !matches(want, slot.held))) {
      if (!(await this.release(slot))) return this.retryLater(slot);
    }
    if (want === undefined || !needsWork(slot)) return;
    if (!(await this.acquire(slot, want))) this.retryLater(slot);
  }

  private retryLater(slot: Slot): void {
    if (slot.retry !== undefined || this.closed) return;
    slot.retry = this.options.clock.setTimeout(() => {
      slot.retry = undefined;
      if (needsWork(slot)) this.kick(slot);
      else if (slot.wanted === undefined && slot.held === undefined) this.slots.delete(slot.ip);
    }, this.limits.retryDelayMs);
  }

  private run(argv: readonly string[], timeoutMs: number, signal?: AbortSignal) {
    return this.options.runner.run(argv, {
      timeoutMs,
      ...(signal === undefined ? {} : { signal }),
    });
  }

  /** Logs a failure once until the slot's next success, so a retry loop does not flood the log. */
  private failed(slot: Slot, message: string, fields: Record<string, unknown>): false {
    const text = `${message} ${JSON.stringify(fields)}`;
    if (slot.lastError !== text) this.options.logger.log('error', message, fields);
    slot.lastError = text;
    return false;
  }

  /** True when the address is held here, or when the wanted binding changed meanwhile. */
  private async acquire(slot: Slot, want: VipBinding): Promise<boolean> {
    const startedAt = this.options.clock.now();
    const list = ipCommand.list();
    const listed = await this.run(list, this.limits.commandTimeoutMs);
    if (listed.code !== 0)
      return this.failed(slot, 'VIP: cannot list addresses', {
        vip: want.address,
        error: describeFailure(list, listed),
      });
    const addresses = parseAddresses(listed.stdout);
    let iface = want.interface ?? interfaceFor(slot.ip, addresses);
    if (iface === undefined) {
      const route = ipCommand.routeGet(slot.ip);
      const routed = await this.run(route, this.limits.commandTimeoutMs);
      iface = interfaceFor(slot.ip, [], routed.code === 0 ? routed.stdout : '');
    }
    if (iface === undefined)
      return this.failed(slot, 'VIP: no interface reaches its subnet; name one in the spec', {
        vip: want.address,
      });
    const held: HeldVip = { workload: want.workload, address: want.address, interface: iface };
    if (addresses.some((a) => a.ip === slot.ip && a.interface === iface)) {
      // Already here (an agent restart, a remove that failed): announced when it was added.
      this.setHeld(slot, held, true);
      this.options.logger.log('info', 'VIP held already', { ...held });
      return true;
    }
    const waitedMs = await this.waitUntilFree(slot, want, iface);
    if (slot.wanted !== want || this.closed) return true;
    this.setHeld(slot, held, false);
    const add = ipCommand.add(want.address, iface);
    const added = await this.run(add, this.limits.commandTimeoutMs);
    if (added.code !== 0 && !alreadyAdded(added))
      return this.failed(slot, 'VIP: cannot add the address', {
        ...held,
        error: describeFailure(add, added),
      });
    slot.present = true;
    slot.lastError = undefined;
    this.options.logger.log('info', 'VIP added', {
      ...held,
      waitedMs,
      tookMs: this.options.clock.now() - startedAt,
    });
    await this.announce(slot, iface);
    return true;
  }

  /**
   * Probes with ARP until no other host answers for the address, at most takeoverWaitMs; the time
   * waited for another holder. Without a usable arping it does not wait (said once).
   */
  private async waitUntilFree(slot: Slot, want: VipBinding, iface: string): Promise<number> {
    const startedAt = this.options.clock.now();
    let said = false;
    while ((await this.arpingUsable()) && slot.wanted === want && !this.closed) {
      const probe = arpingCommand.probe(slot.ip, iface);
      const result = await this.run(probe, this.limits.probeWaitMs);
      if (result.timedOut || result.code === 0) break;
      if (result.code !== 1 || result.stderr.trim() !== '') {
        this.options.logger.log('warn', 'VIP: ARP probe failed; adding without it', {
          vip: want.address,
          error: describeFailure(probe, result),
        });
        break;
      }
      const waitedMs = this.options.clock.now() - startedAt;
      if (waitedMs >= this.options.takeoverWaitMs) {
        this.options.logger.log('warn', 'VIP: another host still answers for it; taking it over', {
          vip: want.address,
          waitedMs,
        });
        break;
      }
      if (!said)
        this.options.logger.log('info', 'VIP: waiting for another host to give it up', {
          vip: want.address,
          takeoverWaitMs: this.options.takeoverWaitMs,
        });
      said = true;
      await new Promise<void>((resolve) =>
        this.options.clock.setTimeout(resolve, this.limits.probeRetryMs),
      );
    }
    return this.options.clock.now() - startedAt;
  }

  /** Gratuitous ARP in the background; a release aborts it before removing the address. */
  private async announce(slot: Slot, iface: string): Promise<void> {
    if (!(await this.arpingUsable()) || this.closed) return;
    slot.announce?.abort();
    const controller = new AbortController();
    slot.announce = controller;
    const argv = arpingCommand.announce(slot.ip, iface, vipAnnounceCount);
    const work = this.run(argv, vipAnnounceTimeoutMs, controller.signal).then((result) => {
      if (slot.announce === controller) slot.announce = undefined;
      if (controller.signal.aborted || result.code === 0) return;
      this.options.logger.log('warn', 'VIP: gratuitous ARP failed', {
        vip: slot.ip,
        error: describeFailure(argv, result),
      });
    });
    this.track(work);
  }

  private async release(slot: Slot): Promise<boolean> {
    const held = slot.held!;
    // An announcement still running would send ARP for an address no longer here.
    slot.announce?.abort();
    slot.announce = undefined;
    slot.present = false;
    const del = ipCommand.del(held.address, held.interface);
    const result = await this.run(del, this.limits.commandTimeoutMs);
    if (result.code !== 0 && !alreadyRemoved(result))
      return this.failed(slot, 'VIP: cannot remove the address', {
        ...held,
        error: describeFailure(del, result),
      });
    slot.lastError = undefined;
    this.setHeld(slot, undefined, false);
    this.options.logger.log('info', 'VIP removed', { ...held });
    return true;
  }

  private setHeld(slot: Slot, held: HeldVip | undefined, present: boolean): void {
    const changed = JSON.stringify(slot.held) !== JSON.stringify(held);
    slot.held = held;
    slot.present = present;
    if (changed) this.heldChanged(this.held());
  }

  /** Whether arping is the iputils one (its flags are the ones used); checked once, said once. */
  private arpingUsable(): Promise<boolean> {
    this.arping ??= this.checkArping();
    return this.arping;
  }

  private async checkArping(): Promise<boolean> {
    const argv = arpingCommand.version();
    const result: CommandResult = await this.run(argv, this.limits.commandTimeoutMs);
    const usable = /iputils/.test(result.stdout + result.stderr);
    if (!usable)
      this.options.logger.log(
        'warn',
        'VIP: no iputils arping (apt-get install iputils-arping); addresses move without ARP ' +
          'probes or gratuitous ARP, and neighbours find a new holder only when their ARP ' +
          'cache entry expires',
        { error: describeFailure(argv, result) },
      );
    return usable;
  }
}

function newSlot(ip: string): Slot {
  return {
    ip,
    wanted: undefined,
    held: undefined,
    present: false,
    working: false,
    again: false,
    retry: undefined,
    announce: undefined,
    lastError: undefined,
  };
}

function sameBinding(a: VipBinding | undefined, b: VipBinding | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.workload === b.workload && a.address === b.address && a.interface === b.interface;
}

function matches(want: VipBinding, held: HeldVip): boolean {
  return (
    want.address === held.address &&
    (want.interface === undefined || want.interface === held.interface)
  );
}

function needsWork(slot: Slot): boolean {
  if (slot.wanted === undefined) return slot.held !== undefined;
  return !(slot.present && slot.held !== undefined && matches(slot.wanted, slot.held));
}
