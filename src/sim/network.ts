// The simulated network between the controller and the agents: per-message delay, loss,
// duplication and reordering drawn from the seed, and partitions. A lost message breaks its
// session, as a lost TCP segment that cannot be retransmitted ends a connection; duplicates and
// reordering are delivered as drawn, so the protocol must tolerate them.
import type { FakeClock } from './fake-clock.js';
import type { SeededRng } from './rng.js';

export interface LinkFaults {
  /** Extra delay range per message. */
  delayMsMin: number;
  delayMsMax: number;
  lossProbability: number;
  duplicateProbability: number;
}

export const calmLink: LinkFaults = {
  delayMsMin: 1,
  delayMsMax: 3,
  lossProbability: 0,
  duplicateProbability: 0,
};

export class SimNetwork {
  /** Pairs of endpoints that cannot reach each other ("a|b", both orders). */
  private readonly cut = new Set<string>();
  faults: LinkFaults = calmLink;

  constructor(
    private readonly clock: FakeClock,
    private readonly rng: SeededRng,
  ) {}

  private key(a: string, b: string): string {
    return a < b ? `${a}|${b}` : `${b}|${a}`;
  }

  reachable(a: string, b: string): boolean {
    return !this.cut.has(this.key(a, b));
  }

  partition(a: string, b: string): void {
    this.cut.add(this.key(a, b));
  }

  heal(a: string, b: string): void {
    this.cut.delete(this.key(a, b));
  }

  healAll(): void {
    this.cut.clear();
  }

  /**
   * Sends one message; deliver runs at the receiver after the drawn delay, if the link is up then.
   * Returns false when the message was lost (the caller breaks the session).
   */
  send(from: string, to: string, deliver: () => void): boolean {
    if (!this.reachable(from, to)) return true; // Silently gone: a partition looks like silence.
    const f = this.faults;
    if (this.rng.chance(f.lossProbability)) return false;
    const copies = this.rng.chance(f.duplicateProbability) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const delayMs = f.delayMsMin + this.rng.int(f.delayMsMax - f.delayMsMin + 1);
      this.clock.setTimeout(() => {
        if (this.reachable(from, to)) deliver();
      }, delayMs);
    }
    return true;
  }
}
