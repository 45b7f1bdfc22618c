// The browser console's speed (issue 7, "Measure"): time to first render of the overview, and time
// from a journal event to its appearance on screen (in the latest events, and as the changed
// state in the nodes table), in Debian's headless chromium. (a) against the demo cluster of the
// tests (test/harness/demo.ts); (b) against a controller state of 1,000 nodes and 5,000 workloads:
// an in-process controller on the memory store, filled through the store and served with the API,
// not started, so nothing reconciles the made-up nodes away. Events are maintenance on and off of
// one node: journaled, and changing what the overview shows. Times are from the event's journal
// time to the moment a MutationObserver in the page sees it (one clock: same machine).
// Run alone: node --import tsx bench/console.ts; or npm run bench -- --only console.
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { fileURLToPath } from 'node:url';
import { createAdaptorServer } from '@hono/node-server';
import type { Page } from 'playwright-core';
import { keys, type InstanceRecord, type NodeRecord } from '../src/core/model.js';
import { silentLogger } from '../src/core/ports.js';
import { workloadSpecSchema } from '../src/core/spec.js';
import { createApi } from '../src/controller/api/app.js';
import { controllerConfig } from '../src/controller/config.js';
import { Controller } from '../src/controller/controller.js';
import { systemClock } from '../src/platform/real-ports.js';
import { MemoryStore } from '../src/store/memory.js';
import { startDemo } from '../test/harness/demo.js';
import { contextOptions, launchBrowser, viewport } from '../test/console/browser.js';

export interface Stats {
  median: number;
  min: number;
  max: number;
}

export interface ConsoleBenchRow {
  setup: string;
  nodes: number;
  workloads: number;
  /** Navigation start to the overview's tables filled, as the page's clock tells. */
  firstRenderMs: Stats;
  /** Journal time of the event to its line in the overview's latest events. */
  eventToListMs: Stats;
  /** Journal time of the event to the node's new state in the nodes table. */
  eventToStateMs: Stats;
  samples: { firstRenderMs: number[]; eventToListMs: number[]; eventToStateMs: number[] };
}

export interface ConsoleBenchResult {
  settings: { loads: number; events: number; viewport: typeof viewport };
  rows: ConsoleBenchRow[];
}

/** How long one render or one event may take before the run is declared failed. */
const stepTimeoutMs = 60_000;
const tokenKey = 'continuum.apiToken';

export function stats(samples: number[]): Stats {
  const sorted = [...samples].sort((a, b) => a - b);
  const round = (n: number) => Math.round(n * 10) / 10;
  return {
    median: round(sorted[Math.floor(sorted.length / 2)] ?? NaN),
    min: round(sorted[0] ?? NaN),
    max: round(sorted.at(-1) ?? NaN),
  };
}

interface Target {
  url: string;
  token: string;
  /** Toggles maintenance of the watched node; answers the journal entry's seq and time. */
  toggle: (on: boolean) => Promise<{ seq: number; at: number }>;
  node: string;
}

// The observer runs in the page (a string: this file is type-checked without the DOM's types).
const observe = (node: string) => `(() => {
  window.bench = { seqAt: {}, stateAt: {} };
  const look = () => {
    const now = Date.now();
    for (const li of document.querySelectorAll('[data-testid=latest-events] li[data-seq]'))
      window.bench.seqAt[li.dataset.seq] ??= now;
    for (const row of document.querySelectorAll('[data-testid=nodes-table] [role=row]')) {
      if (row.querySelector('a')?.textContent !== ${JSON.stringify(node)}) continue;
      const state = row.querySelector('.state')?.textContent;
      if (state) window.bench.stateAt[state] ??= now;
    }
  };
  new MutationObserver(look).observe(document.body, { subtree: true, childList: true, characterData: true });
  look();
})()`;

const tablesFilled = `document.querySelectorAll('[data-testid=workloads-table] [role=row]').length > 1
  && document.querySelectorAll('[data-testid=nodes-table] [role=row]').length > 1`;

async function measure(page: Page, target: Target, loads: number, events: number) {
  const firstRenderMs: number[] = [];
  for (let i = 0; i < loads; i++) {
    await page.goto('about:blank');
    await page.goto(target.url);
    await page.waitForFunction(tablesFilled, undefined, { polling: 'raf', timeout: stepTimeoutMs });
    firstRenderMs.push(await page.evaluate<number>('performance.now()'));
  }
  // The watched node's row must be on screen: the tables render only visible rows.
  await page.getByLabel('Filter', { exact: true }).fill(target.node);
  await page.waitForFunction(
    `[...document.querySelectorAll('[data-testid=nodes-table] [role=row] a')].some((a) => a.textContent === ${JSON.stringify(target.node)})`,
    undefined,
    { timeout: stepTimeoutMs },
  );
  await page.evaluate(observe(target.node));
  const eventToListMs: number[] = [];
  const eventToStateMs: number[] = [];
  for (let i = 0; i < events; i++) {
    const on = i % 2 === 0;
    const state = on ? 'maintenance' : 'up';
    await page.evaluate('window.bench.stateAt = {}');
    const event = await target.toggle(on);
    await page.waitForFunction(
      `window.bench.seqAt[${event.seq}] !== undefined && window.bench.stateAt[${JSON.stringify(state)}] !== undefined`,
      undefined,
      { timeout: stepTimeoutMs },
    );
    const seen = await page.evaluate<{ seqAt: number; stateAt: number }>(
      `({ seqAt: window.bench.seqAt[${event.seq}], stateAt: window.bench.stateAt[${JSON.stringify(state)}] })`,
    );
    eventToListMs.push(seen.seqAt - event.at);
    eventToStateMs.push(seen.stateAt - event.at);
  }
  return { firstRenderMs, eventToListMs, eventToStateMs };
}

async function run(
  setup: string,
  size: { nodes: number; workloads: number },
  target: Target,
  loads: number,
  events: number,
): Promise<ConsoleBenchRow> {
  const browser = await launchBrowser();
  try {
    const context = await browser.newContext(contextOptions);
    await context.addInitScript(
      `sessionStorage.setItem(${JSON.stringify(tokenKey)}, ${JSON.stringify(target.token)})`,
    );
    const page = await context.newPage();
    const samples = await measure(page, target, loads, events);
    return {
      setup,
      ...size,
      firstRenderMs: stats(samples.firstRenderMs),
      eventToListMs: stats(samples.eventToListMs),
      eventToStateMs: stats(samples.eventToStateMs),
      samples,
    };
  } finally {
    await browser.close();
  }
}

/** (a) The demo cluster of the tests: real processes; maintenance through the API, as the console does. */
async function demoTarget(): Promise<{ target: Target; close: () => Promise<void> }> {
  const demo = await startDemo();
  const node = 'spare-1';
  const target: Target = {
    url: demo.cluster.url,
    token: demo.cluster.apiToken(),
    node,
    toggle: async (on) => {
      const response = await demo.cluster.api('POST', `/v1/nodes/${node}/maintenance`, { on });
      if (response.status !== 200) throw new Error(`maintenance: HTTP ${response.status}`);
      const kind = `node.maintenance.${on ? 'on' : 'off'}`;
      const event = (await demo.cluster.events(kind)).filter((e) => e.subject.name === node).at(-1);
      if (event === undefined) throw new Error(`no ${kind} event for ${node}`);
      return { seq: event.seq, at: event.at };
    },
  };
  return { target, close: () => demo.cluster.close() };
}

/** Store writes per transaction while filling the simulated state. */
const fillBatchMax = 500;

/** (b) 1,000 nodes and 5,000 workloads in the memory store of an in-process controller. */
async function simulatedTarget(size: { nodes: number; workloads: number }) {
  const store = new MemoryStore({ clock: systemClock });
  const controller = new Controller({
    store,
    clock: systemClock,
    config: controllerConfig(),
    logger: silentLogger,
    controllerId: 'bench',
    newClusterId: () => 'bench-cluster',
  });
  const now = systemClock.now();
  const pad = (n: number, width: number) => String(n).padStart(width, '0');
  const nodes: NodeRecord[] = [];
  for (let i = 1; i <= size.nodes; i++)
    nodes.push({
      name: `n${pad(i, 4)}`,
      site: `site-${i % 3}`,
      role: i % 10 === 0 ? 'spare' : 'production',
      capacity: { cpu: 32, memoryMiB: 131_072 },
      labels: { rack: `r${i % 40}` },
      address: '127.0.0.1',
      declared: true,
      liveness: 'up',
      livenessChangedAt: now,
      maintenance: false,
    });
  const production = nodes.filter((n) => n.role === 'production');
  const puts: { key: string; value: unknown }[] = nodes.map((n) => ({
    key: keys.node(n.name),
    value: n,
  }));
  for (let i = 1; i <= size.workloads; i++) {
    const name = `w${pad(i, 5)}`;
    const node = production[i % production.length]!.name;
    const spec = workloadSpecSchema.parse({
      name,
      driver: 'process',
      process: { command: ['sleep', 'infinity'] },
      resources: { cpu: 0.5, memoryMiB: 512 },
      endpoints: [{ name: 'http', port: 20_000 + (i % 40_000) }],
      probes: [{ name: 'health', type: 'http', endpoint: 'http', path: '/health' }],
      availability: { mode: 'ha' },
    });
    puts.push({
      key: keys.workload(name),
      value: { name, spec, epoch: 1, node, restartNonce: 0, avoid: [], updatedAt: now },
    });
    const instance: InstanceRecord = {
      workload: name,
      node,
      epoch: 1,
      state: 'healthy',
      ports: { http: 30_000 + (i % 30_000) },
      restarts: 0,
      restartNonce: 0,
      failoverRequested: false,
      probes: { health: { ok: true, consecutiveFailures: 0, lastCheckedAt: now } },
      reportedAt: now,
      stateSince: now,
    };
    puts.push({ key: keys.instance(name, node), value: instance });
  }
  for (let i = 0; i < puts.length; i += fillBatchMax)
    await store.txn({ puts: puts.slice(i, i + fillBatchMax) });
  await store.appendEvents([
    {
      at: now,
      kind: 'spec.applied',
      subject: { kind: 'cluster', name: 'bench' },
      message: 'simulated state filled',
    },
  ]);
  const token = 'bench-token-0123456789abcdef';
  const app = createApi(controller, { apiToken: token });
  const server = createAdaptorServer({ fetch: app.fetch }) as Server;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const watched = nodes[0]!;
  const target: Target = {
    url,
    token,
    node: watched.name,
    // What setMaintenance writes (src/controller/actions.ts): the record and its event, in one txn.
    toggle: async (on) => {
      const at = systemClock.now();
      const result = await store.txn({
        puts: [{ key: keys.node(watched.name), value: { ...watched, maintenance: on } }],
        events: [
          {
            at,
            kind: `node.maintenance.${on ? 'on' : 'off'}`,
            subject: { kind: 'node', name: watched.name },
            actor: 'bench',
            message: `maintenance ${on ? 'on' : 'off'} for ${watched.name}, by bench`,
          },
        ],
      });
      return { seq: result.events[0]!.seq, at };
    },
  };
  const close = async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await store.close();
  };
  return { target, close };
}

export async function benchConsole(
  options: { loads?: number; events?: number; nodes?: number; workloads?: number } = {},
): Promise<ConsoleBenchResult> {
  const loads = options.loads ?? 5;
  const events = options.events ?? 10;
  const size = { nodes: options.nodes ?? 1000, workloads: options.workloads ?? 5000 };
  const rows: ConsoleBenchRow[] = [];
  const demo = await demoTarget();
  try {
    rows.push(await run('demo cluster', { nodes: 3, workloads: 1 }, demo.target, loads, events));
  } finally {
    await demo.close();
  }
  const simulated = await simulatedTarget(size);
  try {
    rows.push(await run('simulated state', size, simulated.target, loads, events));
  } finally {
    await simulated.close();
  }
  return { settings: { loads, events, viewport }, rows };
}

export function formatConsoleBench(result: ConsoleBenchResult): string {
  const lines = ['console: overview first render, and event to screen (ms: median [min-max])'];
  for (const row of result.rows) {
    const f = (s: Stats) => `${s.median} [${s.min}-${s.max}]`;
    lines.push(
      `  ${row.setup} (${row.nodes} nodes, ${row.workloads} workloads): first render ${f(row.firstRenderMs)}; event to latest events ${f(row.eventToListMs)}; event to node state ${f(row.eventToStateMs)}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const result = await benchConsole();
  process.stdout.write(formatConsoleBench(result));
}
