// The usual process_* metrics of a daemon (CPU time, resident memory, start time, heap), read at
// scrape time. prom-client's collectDefaultMetrics is not used because it also writes gauges named
// *_total (nodejs_active_handles_total), which promtool's lint refuses and queries misread.
import { Counter, Gauge, type Registry } from 'prom-client';

const startTimeSeconds = Math.round(Date.now() / 1000 - process.uptime());

export function registerProcessMetrics(registry: Registry): void {
  const registers = [registry];
  const cpuSeconds = (which: 'user' | 'system' | 'all') => {
    const usage = process.cpuUsage();
    const micros =
      which === 'user' ? usage.user : which === 'system' ? usage.system : usage.user + usage.system;
    return micros / 1e6;
  };
  for (const [name, which] of [
    ['process_cpu_user_seconds_total', 'user'],
    ['process_cpu_system_seconds_total', 'system'],
    ['process_cpu_seconds_total', 'all'],
  ] as const) {
    new Counter({
      name,
      help: `${which === 'all' ? 'Total' : which === 'user' ? 'User' : 'System'} CPU time spent.`,
      registers,
      collect() {
        this.reset();
        this.inc(cpuSeconds(which));
      },
    });
  }
  new Gauge({
    name: 'process_resident_memory_bytes',
    help: 'Resident memory size.',
    registers,
    collect() {
      this.set(process.memoryUsage().rss);
    },
  });
  new Gauge({
    name: 'process_start_time_seconds',
    help: 'Start time of the process since the Unix epoch.',
    registers,
    collect() {
      this.set(startTimeSeconds);
    },
  });
  new Gauge({
    name: 'nodejs_heap_size_used_bytes',
    help: 'V8 heap in use.',
    registers,
    collect() {
      this.set(process.memoryUsage().heapUsed);
    },
  });
}
