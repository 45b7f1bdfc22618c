// Micro-benchmark of src/platform/slot-set.ts next to the built-in Set it replaces on hot paths:
// sets that live long (so V8 has moved them to the old generation) while what they hold comes and
// goes, 32 items at a time, as a server's requests in flight do. Reports time per add-and-delete
// and the collections each kind caused, from a fresh process per case, in interleaved rounds.
// Run: node --import tsx bench/slot-set.ts [--rounds 3] [--items 2000000]
// Figures only; nothing here asserts (CONVENTIONS.md item 19).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { PerformanceObserver, constants, type PerformanceEntry } from 'node:perf_hooks';
import { SlotSet } from '../src/platform/slot-set.js';

const setsPerCase = 10;
const live = 32;

interface CaseResult {
  kind: 'Set' | 'SlotSet';
  nsPerAddDelete: number;
  scavenges: number;
  markCompacts: number;
  gcMs: number;
}

/** One case in this process: `items` objects pass through `setsPerCase` old sets. */
async function runCase(kind: CaseResult['kind'], items: number): Promise<CaseResult> {
  const sets = Array.from({ length: setsPerCase }, () =>
    kind === 'Set' ? new Set<object>() : new SlotSet<object>(),
  );
  // Two full collections move the sets into the old generation, where a long-lived owner's are.
  for (let i = 0; i < 2; i++) (globalThis as { gc?: () => void }).gc?.();
  const counts = { scavenges: 0, markCompacts: 0, gcMs: 0 };
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const gcKind = (entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind;
      if (gcKind === constants.NODE_PERFORMANCE_GC_MINOR) counts.scavenges++;
      if (gcKind === constants.NODE_PERFORMANCE_GC_MAJOR) counts.markCompacts++;
      counts.gcMs += entry.duration;
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  const window: { item: object; slots: number[] }[] = [];
  const started = process.hrtime.bigint();
  for (let i = 0; i < items; i++) {
    const item = { i };
    const slots =
      kind === 'Set'
        ? sets.map((set) => ((set as Set<object>).add(item), 0))
        : sets.map((set) => (set as SlotSet<object>).add(item));
    window.push({ item, slots });
    if (window.length > live) {
      const gone = window.shift()!;
      sets.forEach((set, index) => {
        if (kind === 'Set') (set as Set<object>).delete(gone.item);
        else (set as SlotSet<object>).delete(gone.slots[index]!, gone.item);
      });
    }
  }
  const elapsedNs = Number(process.hrtime.bigint() - started);
  // Performance entries arrive after the turn that made them.
  await new Promise((resolve) => setTimeout(resolve, 50));
  observer.disconnect();
  return { kind, nsPerAddDelete: elapsedNs / (items * setsPerCase), ...counts };
}

function median(values: number[]): number {
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
}

const self = fileURLToPath(import.meta.url);
if (process.argv[1] === self) {
  const { values } = parseArgs({
    options: {
      case: { type: 'string' },
      rounds: { type: 'string', default: '3' },
      items: { type: 'string', default: '2000000' },
    },
  });
  const items = Number(values.items);
  if (!Number.isSafeInteger(items) || items < 1000) {
    throw new RangeError(`--items: expected a whole number of at least 1000, got ${values.items}`);
  }
  if (values.case !== undefined) {
    if (values.case !== 'Set' && values.case !== 'SlotSet') {
      throw new RangeError(`--case: expected Set or SlotSet, got ${values.case}`);
    }
    process.stdout.write(JSON.stringify(await runCase(values.case, items)) + '\n');
  } else {
    const rounds = Number(values.rounds);
    if (!Number.isSafeInteger(rounds) || rounds < 1) {
      throw new RangeError(`--rounds: expected a whole number of at least 1, got ${values.rounds}`);
    }
    const results: CaseResult[] = [];
    for (let round = 0; round < rounds; round++) {
      for (const kind of round % 2 === 0 ? ['Set', 'SlotSet'] : ['SlotSet', 'Set']) {
        const child = spawnSync(
          process.execPath,
          [...process.execArgv, '--expose-gc', self, '--case', kind, '--items', String(items)],
          { encoding: 'utf8' },
        );
        if (child.status !== 0) throw new Error(`slot-set bench ${kind} failed: ${child.stderr}`);
        results.push(JSON.parse(child.stdout) as CaseResult);
      }
    }
    const row = (kind: CaseResult['kind']) => {
      const mine = results.filter((r) => r.kind === kind);
      return {
        ns: median(mine.map((r) => r.nsPerAddDelete)),
        scavenges: median(mine.map((r) => r.scavenges)),
        markCompacts: median(mine.map((r) => r.markCompacts)),
        gcMs: median(mine.map((r) => r.gcMs)),
      };
    };
    const set = row('Set');
    const slot = row('SlotSet');
    console.log(
      `${setsPerCase} old sets, ${live} items held at a time, ${items} items through each ` +
        `(medians of ${rounds} rounds, one process per case)`,
    );
    console.log('kind      ns/add+delete  scavenges  mark-compacts  GC ms');
    for (const [name, r] of [
      ['Set', set],
      ['SlotSet', slot],
    ] as const) {
      console.log(
        `${name.padEnd(9)} ${r.ns.toFixed(1).padStart(13)}  ${String(r.scavenges).padStart(9)}  ` +
          `${String(r.markCompacts).padStart(13)}  ${r.gcMs.toFixed(1).padStart(5)}`,
      );
    }
    console.log(`SlotSet / Set time: ${(slot.ns / set.ns).toFixed(2)}`);
  }
}
