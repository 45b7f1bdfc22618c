// What the VIP tests share: a command runner that records every command and answers like `ip` and
// iputils `arping` on a host whose interfaces the test sets, and a way to let fake time pass while
// the manager's background work runs.
import type { FakeClock } from '../sim/fake-clock.js';
import type { CommandResult, CommandRunner } from './vip-commands.js';

export const ok = (stdout = ''): CommandResult => ({
  code: 0,
  stdout,
  stderr: '',
  timedOut: false,
  missing: false,
});
export const fail = (code: number, stderr: string): CommandResult => ({
  code,
  stdout: '',
  stderr,
  timedOut: false,
  missing: false,
});
export const timedOut: CommandResult = {
  code: null,
  stdout: '',
  stderr: '',
  timedOut: true,
  missing: false,
};
export const missing: CommandResult = {
  code: null,
  stdout: '',
  stderr: 'not installed',
  timedOut: false,
  missing: true,
};

type Answer = CommandResult | ((signal?: AbortSignal) => Promise<CommandResult>);

/**
 * A host with interfaces (eth0 10.0.0.11/24 by default): `ip addr add/del` change its addresses,
 * `arping -D` answers "free" (timed out) unless `answeredBy` holds the address, and any command
 * can be overridden by the start of its text (`override('ip addr add', fail(...))`), once or
 * always.
 */
export class FakeHost implements CommandRunner {
  readonly commands: string[] = [];
  /** Addresses as "interface ip/len". */
  readonly addresses = new Set(['eth0 10.0.0.11/24']);
  /** Addresses another host answers ARP for. */
  readonly answeredBy = new Set<string>();
  arping: 'iputils' | 'missing' = 'iputils';
  private readonly overrides: { prefix: string; answer: Answer; once: boolean }[] = [];

  override(prefix: string, answer: Answer, options: { once?: boolean } = {}): void {
    // The newest override of a command wins.
    this.overrides.unshift({ prefix, answer, once: options.once ?? true });
  }

  run(argv: readonly string[], options: { signal?: AbortSignal }): Promise<CommandResult> {
    const text = argv.join(' ');
    this.commands.push(text);
    const index = this.overrides.findIndex((o) => text.startsWith(o.prefix));
    if (index >= 0) {
      const { answer, once } = this.overrides[index]!;
      if (once) this.overrides.splice(index, 1);
      return typeof answer === 'function' ? answer(options.signal) : Promise.resolve(answer);
    }
    return Promise.resolve(this.answer(argv));
  }

  private answer(argv: readonly string[]): CommandResult {
    const [command, ...args] = argv;
    if (command === 'arping') {
      if (this.arping === 'missing') return missing;
      if (args[0] === '-V') return ok('arping from iputils 20221126\n');
      if (args.includes('-D')) return this.answeredBy.has(args.at(-1)!) ? fail(1, '') : timedOut;
      return ok();
    }
    if (args[0] === '-o') return ok(this.listing());
    const [, verb, address, , iface] = args;
    const entry = `${iface} ${address}`;
    if (verb === 'add') {
      if (this.addresses.has(entry)) return fail(2, 'Error: ipv4: Address already assigned.');
      this.addresses.add(entry);
      return ok();
    }
    if (verb === 'del') {
      if (!this.addresses.delete(entry)) return fail(2, 'Error: ipv4: Address not found.');
      return ok();
    }
    return fail(1, `unexpected command ${argv.join(' ')}`);
  }

  private listing(): string {
    return [...this.addresses]
      .map((entry, i) => {
        const [iface, address] = entry.split(' ');
        return `${i + 2}: ${iface}    inet ${address} scope global ${iface}\\       valid_lft forever preferred_lft forever`;
      })
      .join('\n');
  }
}

/** Lets `ms` of fake time pass in small steps, with real turns of the event loop between them. */
export async function pass(clock: FakeClock, ms: number, stepMs = 50): Promise<void> {
  for (let elapsed = 0; elapsed <= ms; elapsed += stepMs) {
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
    if (elapsed < ms) clock.advance(Math.min(stepMs, ms - elapsed));
  }
}
