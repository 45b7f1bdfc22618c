// The commands behind virtual IP endpoints (docs/vip.md): `ip` from iproute2 to add, remove and
// look for an address, and `arping` from Debian's iputils-arping to probe for another holder and
// to announce a new one with gratuitous ARP. Commands run through a CommandRunner port, so the
// VIP manager's tests use a fake one; every command has a timeout and never throws.
import { execFile } from 'node:child_process';

export interface CommandResult {
  /** Exit status; null when the command did not exit by itself (timeout, abort, not found). */
  code: number | null;
  stdout: string;
  stderr: string;
  /** Killed at its timeout. */
  timedOut: boolean;
  /** The program is not installed. */
  missing: boolean;
}

export interface CommandRunner {
  run(
    argv: readonly string[],
    options: { timeoutMs: number; signal?: AbortSignal },
  ): Promise<CommandResult>;
}

/** Output of one command kept (`ip -o addr` of a host with many addresses stays far below it). */
const commandOutputBytesMax = 1_048_576;

export const realCommandRunner: CommandRunner = {
  run(argv, options) {
    const [command, ...args] = argv;
    return new Promise((resolve) => {
      execFile(
        command ?? '',
        args,
        {
          timeout: options.timeoutMs,
          killSignal: 'SIGKILL',
          maxBuffer: commandOutputBytesMax,
          encoding: 'utf8',
          ...(options.signal === undefined ? {} : { signal: options.signal }),
        },
        (error, stdout, stderr) => {
          const failure = error as (NodeJS.ErrnoException & { killed?: boolean }) | null;
          const missing = failure?.code === 'ENOENT';
          const timedOut = failure?.killed === true && options.signal?.aborted !== true;
          const code =
            failure === null ? 0 : typeof failure.code === 'number' ? failure.code : null;
          resolve({
            code,
            stdout,
            stderr: missing ? `${command} is not installed` : stderr,
            timedOut,
            missing,
          });
        },
      );
    });
  },
};

/** One sentence of a failed command, for a log line. */
export function describeFailure(argv: readonly string[], result: CommandResult): string {
  const how = result.missing
    ? 'not installed'
    : result.timedOut
      ? 'timed out'
      : `exit ${String(result.code)}`;
  const said = result.stderr.trim().split('\n')[0] ?? '';
  return `${argv.join(' ')}: ${how}${said === '' ? '' : `: ${said.slice(0, 300)}`}`;
}

export const ipCommand = {
  add: (address: string, iface: string) => ['ip', 'addr', 'add', address, 'dev', iface],
  del: (address: string, iface: string) => ['ip', 'addr', 'del', address, 'dev', iface],
  list: () => ['ip', '-o', '-4', 'addr', 'show'],
  routeGet: (ip: string) => ['ip', '-o', 'route', 'get', ip],
};

/** `ip addr add` of an address the interface has already: the goal is reached. */
export function alreadyAdded(result: CommandResult): boolean {
  return /File exists|already assigned/i.test(result.stderr);
}

/** `ip addr del` of an address the interface does not have: the goal is reached. */
export function alreadyRemoved(result: CommandResult): boolean {
  return /Cannot assign requested address|Address not found/i.test(result.stderr);
}

export const arpingCommand = {
  version: () => ['arping', '-V'],
  /**
   * Duplicate address detection (RFC 5227 probe, sender 0.0.0.0): exit 0 when nobody answered,
   * 1 when a host answered for the address. It waits a whole second when nobody answers; the
   * caller cuts it short (an answer on a segment comes in well under a millisecond).
   */
  probe: (ip: string, iface: string) => [
    'arping',
    '-q',
    '-D',
    '-c',
    '1',
    '-w',
    '1',
    '-I',
    iface,
    ip,
  ],
  /** Gratuitous ARP (unsolicited requests from the address itself), one a second. */
  announce: (ip: string, iface: string, count: number) => [
    'arping',
    '-q',
    '-U',
    '-c',
    String(count),
    '-I',
    iface,
    ip,
  ],
};

export interface InterfaceAddress {
  interface: string;
  ip: string;
  prefixLength: number;
}

const addressLine = /^\d+:\s+(\S+)\s+inet\s+(\d+\.\d+\.\d+\.\d+)\/(\d+)/;

/** The IPv4 addresses of `ip -o -4 addr show`, one per line. */
export function parseAddresses(output: string): InterfaceAddress[] {
  const found: InterfaceAddress[] = [];
  for (const line of output.split('\n')) {
    const match = addressLine.exec(line);
    if (match === null) continue;
    found.push({
      interface: match[1]!.replace(/@.*$/, ''),
      ip: match[2]!,
      prefixLength: Number(match[3]),
    });
  }
  return found;
}

function ipValue(ip: string): number {
  return ip.split('.').reduce((sum, octet) => sum * 256 + Number(octet), 0);
}

/** Whether `ip` lies in the subnet of `address` (both IPv4). */
export function inSubnet(ip: string, address: InterfaceAddress): boolean {
  const size = 2 ** (32 - address.prefixLength);
  return Math.floor(ipValue(ip) / size) === Math.floor(ipValue(address.ip) / size);
}

/**
 * The interface for a VIP without one in the spec: the one that has it already, else the one
 * whose own subnet holds it (the shared segment), else the one of the route to it (`ip route get`,
 * unless that says loopback). The other addresses are what `ip -o -4 addr show` printed.
 */
export function interfaceFor(
  ip: string,
  addresses: readonly InterfaceAddress[],
  routeOutput = '',
): string | undefined {
  const holder = addresses.find((a) => a.ip === ip);
  if (holder !== undefined) return holder.interface;
  const subnet = addresses.find((a) => a.interface !== 'lo' && a.ip !== ip && inSubnet(ip, a));
  if (subnet !== undefined) return subnet.interface;
  const routed = /\bdev\s+(\S+)/.exec(routeOutput)?.[1];
  return routed === undefined || routed === 'lo' ? undefined : routed;
}
