// Formatting shared by the views: durations, times, sizes and rates, in one style.

export function durationMs(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const minutes = Math.floor(ms / 60_000);
  return `${minutes} min ${Math.round((ms % 60_000) / 1000)} s`;
}

export function clock(at: number | undefined): string {
  if (at === undefined) return '—';
  const d = new Date(at);
  const time = d.toLocaleTimeString(undefined, { hour12: false });
  return `${time}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}

export function dateTime(at: number): string {
  const d = new Date(at);
  return `${d.toLocaleDateString()} ${clock(at)}`;
}

export function bytes(value: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let n = value;
  let unit = 0;
  while (n >= 1024 && unit < units.length - 1) {
    n /= 1024;
    unit++;
  }
  return `${n.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

export function mebibytes(value: number): string {
  return value >= 1024 ? `${(value / 1024).toFixed(1)} GiB` : `${Math.round(value)} MiB`;
}

export function cpus(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

export function percent(part: number, whole: number): string {
  return whole <= 0 ? '—' : `${Math.min(100, (100 * part) / whole).toFixed(1)} %`;
}

/** A CSS class per state word, so the colour follows the word and never stands alone. */
export function stateClass(state: string): string {
  return `state state-${state.replace(/\s+/g, '-')}`;
}
