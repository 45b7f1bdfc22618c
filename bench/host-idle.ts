// How the benchmark's host sleeps: the CPU idle driver and, in a KVM guest with the haltpoll
// driver, how long an idle vCPU polls before it halts. Recorded with every run of the NBD and
// replication benchmarks because at depth 1 it moves the figures more than any code change.
//
// With halt polling off (guest_halt_poll_ns=0, as on the development VM), an idle vCPU halts at
// once and waking it goes through the hypervisor. On that VM a request at depth 1 then pays tens
// of microseconds per wake-up: fio 4 KiB random reads at depth 1 from our server went from
// 12.6-13.2k to 38.2-39.7k IOPS with 200 us of polling, and nbdkit's from 17.5-17.6k to
// 32.2-34.5k (docs/nbd-server.md, docs/replication-bench.md, fifth session). The benchmark does not
// change the setting; it reports it, so that figures from hosts that differ are not compared
// as if they were alike.
import { readFileSync } from 'node:fs';

export interface HostIdle {
  /** /sys/devices/system/cpu/cpuidle/current_driver, or undefined where there is none. */
  driver?: string;
  governor?: string;
  /** haltpoll's guest_halt_poll_ns: how long an idle vCPU polls before halting (0: never). */
  guestHaltPollNs?: number;
}

function readSys(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

export function hostIdle(): HostIdle {
  const poll = readSys('/sys/module/haltpoll/parameters/guest_halt_poll_ns');
  return {
    driver: readSys('/sys/devices/system/cpu/cpuidle/current_driver'),
    governor: readSys('/sys/devices/system/cpu/cpuidle/current_governor'),
    guestHaltPollNs: poll === undefined ? undefined : Number(poll),
  };
}

/** One line for the terminal: how idle vCPUs sleep, and what it means for depth 1. */
export function formatHostIdle(idle: HostIdle | undefined): string {
  if (idle?.driver === undefined) return 'cpuidle: none reported';
  const line = `cpuidle: ${idle.driver}${idle.governor === undefined ? '' : `/${idle.governor}`}`;
  if (idle.guestHaltPollNs === undefined) return line;
  const polling =
    idle.guestHaltPollNs === 0
      ? 'off: every wake-up of an idle vCPU goes through the hypervisor, which dominates depth 1'
      : `${idle.guestHaltPollNs} ns`;
  return `${line}, guest halt polling ${polling}`;
}
