// The plain-text tables of the NBD benchmark (bench/nbd.ts) for the terminal: the medians of every
// server on every job and transport, our ratios to each peer, and how the host's idle vCPUs sleep.
import { formatHostIdle, type HostIdle } from './host-idle.js';
import type { NbdBenchResult } from './nbd.js';

/** A plain-text table of the medians and of the ratios, for the terminal. */
export function formatNbdBench(result: NbdBenchResult): string {
  if (result.skipped !== undefined) return `nbd bench skipped: ${result.skipped}\n`;
  const pad = (value: string | number, width: number) => String(value).padStart(width);
  const lines = [
    `${'transport'.padEnd(9)} ${'job'.padEnd(19)} ${'server'.padEnd(20)} ${pad('IOPS', 8)} ${pad('MiB/s', 8)} ${pad('p50 us', 8)} ${pad('p99 us', 8)} ${pad('CPU us/IO', 9)}`,
  ];
  for (const row of result.rows) {
    const m = row.median;
    lines.push(
      `${row.transport.padEnd(9)} ${row.job.padEnd(19)} ${row.server.padEnd(20)} ${pad(Math.round(m.iops), 8)} ${pad(m.mibPerSecond.toFixed(1), 8)} ${pad(m.p50Us.toFixed(1), 8)} ${pad(m.p99Us.toFixed(1), 8)} ${pad(m.cpuUsPerIo.toFixed(1), 9)}`,
    );
  }
  lines.push(
    '',
    'continuum / peer (IOPS: higher is better; latency and CPU per I/O: lower is better)',
  );
  lines.push(
    `${'transport'.padEnd(9)} ${'job'.padEnd(19)} ${'peer'.padEnd(20)} ${pad('IOPS', 6)} ${pad('p50', 6)} ${pad('p99', 6)} ${pad('CPU/IO', 6)}`,
  );
  for (const r of result.ratios) {
    lines.push(
      `${r.transport.padEnd(9)} ${r.job.padEnd(19)} ${r.peer.padEnd(20)} ${pad(r.iops.toFixed(2), 6)} ${pad(r.p50.toFixed(2), 6)} ${pad(r.p99.toFixed(2), 6)} ${pad(r.cpuPerIo.toFixed(2), 6)}`,
    );
  }
  lines.push('', formatHostIdle(result.settings.idle as HostIdle | undefined));
  return `${lines.join('\n')}\n`;
}
