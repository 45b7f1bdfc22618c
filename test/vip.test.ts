// Virtual IP endpoints on real hosts (network namespaces on one switch): a controller on h0,
// agents on h1 and h2, and the demo key-value service behind a VIP that a client namespace
// reaches with no proxy in the path. The story: the client reaches the service at VIP:port; the
// host running it crashes and the VIP answers from the other host within a bounded time; the
// crashed host comes back; then the active host is partitioned from the controller and the other
// host, the workload fails over, the partition heals, and at no sample from the heal on do both
// hosts hold the VIP, and at the end exactly the new owner does (docs/vip.md).
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { demoSpec } from '../src/cli/demo-spec.js';
import {
  cliPath,
  demoServicePath,
  waitFor,
  type NodeInfo,
  type WorkloadInfo,
} from './harness/cluster.js';
import { createHosts, type Host, type Hosts, hostsMissingReason } from './hosts/hosts.js';

const controllerPort = 7400;
const servicePort = 8080;
const fenceTimeoutMs = 3000;
/** The client's requests: a new connection each, abandoned after this long. */
const requestTimeoutMs = 250;
const requestPauseMs = 50;
/** The heal is watched this long, sampling both hosts' addresses this often. */
const watchMs = 5000;
const sampleIntervalMs = 50;

function missingTools(): string | undefined {
  const hosts = hostsMissingReason();
  if (hosts !== undefined) return hosts;
  const arping = spawnSync('arping', ['-V'], { encoding: 'utf8' });
  if (!/iputils/.test(`${arping.stdout}${arping.stderr}`))
    return 'iputils arping not installed (apt-get install iputils-arping)';
  return undefined;
}

// One GET /info every pauseMs on a new connection, abandoned after timeoutMs, a JSON line per
// request: when it started and ended, and who answered or why nobody did.
const clientScript = `
const http = require('node:http');
const [address, port, timeoutMs, pauseMs] = process.argv.slice(1);
const once = () => new Promise((resolve) => {
  const request = http.get({ host: address, port: Number(port), path: '/info', agent: false }, (res) => {
    let body = '';
    res.on('data', (chunk) => (body += chunk));
    res.on('end', () => { try { resolve({ node: JSON.parse(body).node }); } catch { resolve({ error: 'body' }); } });
    res.on('error', (e) => resolve({ error: e.code || e.message }));
  });
  // The whole request, connecting included (a SYN to an address nobody holds hangs).
  const timer = setTimeout(() => request.destroy(new Error('timeout')), Number(timeoutMs));
  request.on('close', () => clearTimeout(timer));
  request.on('error', (e) => resolve({ error: e.code || e.message }));
});
(async () => {
  for (;;) {
    const at = Date.now();
    const answer = await once();
    process.stdout.write(JSON.stringify({ at, doneAt: Date.now(), ...answer }) + '\\n');
    await new Promise((r) => setTimeout(r, Number(pauseMs)));
  }
})();
`;

const fetchScript = `
const [url, token, method, body] = process.argv.slice(1);
fetch(url, { method, headers: { authorization: 'Bearer ' + token, 'content-type': 'application/json' },
  ...(body ? { body } : {}), signal: AbortSignal.timeout(3000) })
  .then(async (r) => process.stdout.write(JSON.stringify({ status: r.status, body: await r.text() })))
  .catch((e) => { process.stderr.write(String(e)); process.exit(1); });
`;

interface Answer {
  /** When the request started and ended. */
  at: number;
  doneAt: number;
  node?: string;
  error?: string;
}

/** Follows the client's JSON lines. */
class Watcher {
  readonly answers: Answer[] = [];
  private rest = '';
  constructor(readonly child: ChildProcess) {
    child.stdout?.on('data', (chunk: Buffer) => {
      const lines = (this.rest + chunk.toString()).split('\n');
      this.rest = lines.pop() ?? '';
      for (const line of lines) if (line !== '') this.answers.push(JSON.parse(line) as Answer);
    });
  }
  /** The first answer from `node` in a request started at or after `since`. */
  firstFrom(node: string, since: number): Answer | undefined {
    return this.answers.find((a) => a.at >= since && a.node === node);
  }
  lastFrom(node: string, before: number): Answer | undefined {
    return this.answers.filter((a) => a.at < before && a.node === node).at(-1);
  }
}

describe('virtual IP endpoints', { skip: missingTools() }, () => {
  let hosts: Hosts;
  let h0: Host, h1: Host, h2: Host, client: Host;
  let dir: string;
  let vip: string;
  let watcher: Watcher;
  let failed = false;
  const controllerDir = () => join(dir, 'controller');
  const controllerUrl = () => `http://${h0.ip}:${controllerPort}`;

  /** The API, asked from h0 (the test's own namespace has no route to the hosts). */
  async function api<T>(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: T | undefined }> {
    const token = readFileSync(join(controllerDir(), 'api.token'), 'utf8').trim();
    const argv = [process.execPath, '-e', fetchScript, `${controllerUrl()}${path}`, token, method];
    const out = await h0.exec(body === undefined ? argv : [...argv, JSON.stringify(body)]);
    const parsed = JSON.parse(out) as { status: number; body: string };
    return {
      status: parsed.status,
      body: parsed.body === '' ? undefined : (JSON.parse(parsed.body) as T),
    };
  }

  async function workload(): Promise<WorkloadInfo> {
    const { status, body } = await api<WorkloadInfo>('GET', '/v1/workloads/kv');
    if (status !== 200 || body === undefined) throw new Error(`GET workload kv: HTTP ${status}`);
    return body;
  }

  function startAgent(host: Host): void {
    const agentDir = join(dir, host.name);
    const log = openSync(join(dir, `${host.name}.log`), 'a');
    host.spawn(
      [
        ...[process.execPath, cliPath, 'agent', '--name', host.name, '--address', host.ip],
        ...['--controller', controllerUrl(), '--data-dir', agentDir],
        ...['--token-file', join(controllerDir(), 'agent.token')],
        ...['--fence-timeout-ms', String(fenceTimeoutMs), '--cpu', '2', '--memory-mib', '2048'],
      ],
      { stdio: ['ignore', log, log], env: { ...process.env, CONTINUUM_LOG_LEVEL: 'info' } },
    );
    closeSync(log);
  }

  async function nodeUp(host: Host): Promise<void> {
    await waitFor(`node ${host.name} to be up`, 20_000, async () => {
      const { status, body } = await api<NodeInfo>('GET', `/v1/nodes/${host.name}`);
      return status === 200 && body?.state === 'up' && body.connected === true;
    });
  }

  /** Whether the host has the VIP on its interface. */
  async function holds(host: Host): Promise<boolean> {
    const out = await host.exec(['ip', '-o', '-4', 'addr', 'show', 'dev', host.interfaceName]);
    return out.includes(` ${vip}/`);
  }

  function hostNamed(name: string | null): Host {
    const host = [h1, h2].find((h) => h.name === name);
    if (host === undefined) throw new Error(`kv runs on ${String(name)}, not on h1 or h2`);
    return host;
  }

  function logs(): string {
    return ['controller', 'h1', 'h2']
      .map((name) => {
        const file = join(dir, `${name}.log`);
        const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
        return `--- ${name}.log (tail)\n${text.split('\n').slice(-40).join('\n')}`;
      })
      .join('\n');
  }

  before(async () => {
    if (!existsSync(cliPath) || !existsSync(demoServicePath))
      throw new Error(`${cliPath} not found: run "npm run build" first`);
    dir = mkdtempSync(join(tmpdir(), 'continuum-vip-'));
    hosts = await createHosts({ count: 3, name: 'vip' });
    client = await hosts.addClient();
    [h0, h1, h2] = hosts.hosts as [Host, Host, Host];
    vip = hosts.address(5);
    const log = openSync(join(dir, 'controller.log'), 'a');
    h0.spawn(
      [
        ...[process.execPath, cliPath, 'controller', '--host', h0.ip],
        ...['--port', String(controllerPort), '--data-dir', controllerDir()],
      ],
      { stdio: ['ignore', log, log], env: { ...process.env, CONTINUUM_LOG_LEVEL: 'info' } },
    );
    closeSync(log);
    await waitFor('the controller to write its tokens', 20_000, () =>
      existsSync(join(controllerDir(), 'api.token')),
    );
    const spec = demoSpec({ endpointPort: servicePort, servicePath: demoServicePath });
    spec.sites = [{ name: 'lan', description: 'one network segment' }];
    spec.nodes = [h1, h2].map((h) => ({
      name: h.name,
      site: 'lan',
      capacity: { cpu: 2, memoryMiB: 2048 },
    }));
    const kv = spec.workloads![0]!;
    // On the VIP and on the node's address (where the agent's probes go): every address.
    kv.process = { ...kv.process!, env: { HOST: '0.0.0.0' } };
    kv.endpoints = [
      { name: 'http', port: servicePort, vip: { address: `${vip}/${hosts.prefixLength}` } },
    ];
    await waitFor('the controller to take the spec', 20_000, async () => {
      const applied = await api('POST', '/v1/apply', spec);
      if (applied.status !== 200) throw new Error(`apply: ${JSON.stringify(applied.body)}`);
      return true;
    });
    startAgent(h1);
    startAgent(h2);
    await nodeUp(h1);
    await nodeUp(h2);
    await waitFor(
      'kv to be active',
      30_000,
      async () => (await workload()).phase === 'active',
    ).catch((error: unknown) => {
      failed = true;
      console.log(logs());
      throw error;
    });
    watcher = new Watcher(
      client.spawn([
        ...[process.execPath, '-e', clientScript, vip, String(servicePort)],
        ...[String(requestTimeoutMs), String(requestPauseMs)],
      ]),
    );
  });

  after(async () => {
    await hosts?.cleanup();
    if (dir === undefined) return;
    if (failed || process.env.VIP_TEST_KEEP !== undefined) console.log(`vip: logs kept in ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  });

  /** A step of the story; a failure prints the daemons' last log lines. */
  function step(name: string, fn: (t: TestContext) => Promise<void>): void {
    it(name, async (t) => {
      try {
        await fn(t);
      } catch (error) {
        failed = true;
        console.log(logs());
        throw error;
      }
    });
  }

  step('(a) the client reaches the service at VIP:port, on the node that runs it', async () => {
    const { node } = await workload();
    const answer = await waitFor('the VIP to answer', 20_000, () => watcher.firstFrom(node!, 0));
    assert.equal(answer.node, node);
    const health = await client.exec([
      ...[process.execPath, '-e'],
      `fetch('http://${vip}:${servicePort}/health').then(async (r) => console.log(r.status, await r.text()))`,
    ]);
    assert.match(health, /^200 /);
    assert.ok(await holds(hostNamed(node)), 'the active host holds the VIP');
    assert.ok(!(await holds(hostNamed(node === 'h1' ? 'h2' : 'h1'))), 'the other does not');
  });

  step(
    '(b) a crash of the active host: the VIP answers from the other host in bounded time',
    async (t) => {
      const before = await workload();
      const crashed = hostNamed(before.node);
      const survivor = crashed === h1 ? h2 : h1;
      const crashedAt = Date.now();
      await crashed.crash();
      const answer = await waitFor('the VIP to answer from the other host', 30_000, () =>
        watcher.firstFrom(survivor.name, crashedAt),
      );
      const lastOld = watcher.lastFrom(crashed.name, crashedAt);
      const takeoverMs = answer.doneAt - crashedAt;
      const gapMs = lastOld === undefined ? undefined : answer.doneAt - lastOld.doneAt;
      report(
        t,
        `crash of ${crashed.name}: the VIP answered from ${survivor.name} ${takeoverMs} ms after the crash (${gapMs ?? '?'} ms after the last answer from ${crashed.name})`,
      );
      assert.ok(takeoverMs < 15_000, 'takeover within 15 s');
      assert.ok(await holds(survivor));
      const after = await workload();
      assert.equal(after.node, survivor.name);
      assert.ok(after.epoch > before.epoch);
      // A crashed machine loses its addresses when it reboots; this namespace kept it. Its agent,
      // restarted while the link is still down, removes the VIP its predecessor left behind (its
      // instance is gone), and only then does the link come back.
      startAgent(crashed);
      await waitFor(
        `${crashed.name} to remove the VIP it left`,
        20_000,
        async () => !(await holds(crashed)),
      );
      await crashed.linkUp();
      await nodeUp(crashed);
    },
  );

  step(
    '(c) a partition of the active host: failover, heal, never two holders after the heal',
    async (t) => {
      const before = await workload();
      const isolated = hostNamed(before.node);
      const other = isolated === h1 ? h2 : h1;
      const partitionedAt = Date.now();
      await hosts.partition([isolated], [h0, other]);
      const samples: { at: number; isolated: boolean; other: boolean }[] = [];
      const sample = async () => {
        const [a, b] = await Promise.all([holds(isolated), holds(other)]);
        samples.push({ at: Date.now(), isolated: a, other: b });
      };
      const answer = await waitFor(
        'the VIP to answer from the other host',
        30_000,
        async () => {
          await sample();
          return watcher.firstFrom(other.name, partitionedAt);
        },
        sampleIntervalMs,
      );
      const withdrawn = samples.find((s) => !s.isolated);
      const both = samples.filter((s) => s.isolated && s.other).length;
      report(
        t,
        `partition of ${isolated.name}: it withdrew the VIP ${withdrawn === undefined ? '?' : withdrawn.at - partitionedAt} ms after the partition began (first sample without it), and the VIP answered from ${other.name} after ${answer.doneAt - partitionedAt} ms; samples during the partition with both holding: ${both} of ${samples.length}`,
      );
      const healedAt = Date.now();
      await hosts.heal();
      const watched: typeof samples = [];
      while (Date.now() - healedAt < watchMs) {
        const [a, b] = await Promise.all([holds(isolated), holds(other)]);
        watched.push({ at: Date.now(), isolated: a, other: b });
        await new Promise((r) => setTimeout(r, sampleIntervalMs));
      }
      const overlaps = watched.filter((s) => s.isolated && s.other);
      report(
        t,
        `after the heal: ${watched.length} samples in ${watchMs} ms, ${overlaps.length} with both holding`,
      );
      assert.equal(overlaps.length, 0, 'never both hosts hold the VIP after the heal');
      const last = watched.at(-1)!;
      assert.deepEqual(
        [last.isolated, last.other],
        [false, true],
        'exactly the new owner holds it',
      );
      const after = await workload();
      assert.equal(after.node, other.name);
      assert.ok(after.epoch > before.epoch);
      await waitFor('the VIP to answer from the new owner', 10_000, () =>
        watcher.firstFrom(other.name, Date.now() - 1000),
      );
    },
  );
});

function report(t: TestContext, line: string): void {
  t.diagnostic(line);
  console.log(`vip: ${line}`);
}
