// `continuum up`: a whole demo cluster on this machine. The controller runs in this process (SQLite
// under the data directory); three agents and the redirector run as separate OS processes, each
// agent in its own process group so that killing that group is a faithful node crash.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { applySpec } from '../controller/actions.js';
import { listNodes, listWorkloads } from '../controller/queries.js';
import { startControllerServer } from '../controller/server.js';
import { streamLogger } from '../platform/logger.js';
import { parsePort } from './commands-daemons.js';
import { describeAttachDetection, detectAttachMethods } from '../storage/attach/index.js';
import { demoNodes, demoServicePath, demoSpec, demoVolume } from './demo-spec.js';
import { stopDemo } from './up-stop.js';
import { metricsAddresses, metricsLines } from './up-metrics.js';
import { continuumHome } from './paths.js';

interface UpOptions {
  dataDir: string;
  port: number;
  endpointPort: number;
}

function spawnDaemon(args: string[], logFile: string): ChildProcess {
  const out = openSync(logFile, 'a');
  // detached: its own process group, so `kill -9 -- -PGID` takes down this "node" and nothing else.
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, ...args], {
    detached: true,
    stdio: ['ignore', out, out],
  });
  return child;
}

async function waitUntil(
  what: string,
  timeoutMs: number,
  check: () => Promise<boolean>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(
    `${what} did not happen within ${timeoutMs} ms; see the logs under the data directory`,
  );
}

export function addUpCommand(program: Command): void {
  program
    .command('up')
    .description(
      'start a demo cluster on this machine: controller, three agents, redirector and a protected key-value service',
    )
    .option('--data-dir <dir>', 'where everything is kept', continuumHome())
    .option('--port <port>', 'API port', parsePort, 7400)
    .option('--endpoint-port <port>', 'port of the demo service endpoint', parsePort, 8080)
    .action(async (opts: UpOptions) => runUp(opts));
}

async function runUp(input: UpOptions): Promise<void> {
  const opts = { ...input, dataDir: resolve(input.dataDir) };
  const logger = streamLogger({ name: 'controller', level: 'warn' });
  const servicePath = demoServicePath();
  const controllerDir = join(opts.dataDir, 'controller');
  const running = await startControllerServer({ dataDir: controllerDir, port: opts.port, logger });
  // The demo's keys go on a replicated volume where this machine can attach one.
  const detection = await detectAttachMethods();
  const volumeRoot = detection.preferred === null ? undefined : join(opts.dataDir, 'mnt');
  const spec = demoSpec({
    endpointPort: opts.endpointPort,
    servicePath,
    ...(volumeRoot === undefined ? {} : { volumeRoot }),
  });
  // Nodes first, the service once every node has joined: otherwise it starts on whichever agent
  // is up first, a spare as likely as not, and the demo's story (a failover to the spare) is lost.
  await applySpec(running.controller, { ...spec, workloads: [] }, 'continuum-up');
  const children: { name: string; child: ChildProcess }[] = [];
  const metrics = await metricsAddresses([...demoNodes.map((n) => n.name), 'redirector']);
  for (const node of demoNodes) {
    const dir = join(opts.dataDir, 'nodes', node.name);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const args = [
      'agent',
      '--name',
      node.name,
      '--role',
      node.role,
      '--site',
      'local',
      '--data-dir',
      dir,
      '--controller',
      running.url,
      '--token-file',
      running.agentTokenFile,
      '--metrics-listen',
      metrics.get(node.name)!,
    ];
    children.push({ name: node.name, child: spawnDaemon(args, join(dir, 'agent.log')) });
  }
  const redirectorDir = join(opts.dataDir, 'redirector');
  mkdirSync(redirectorDir, { recursive: true, mode: 0o700 });
  children.push({
    name: 'redirector',
    child: spawnDaemon(
      [
        'redirector',
        '--controller',
        running.url,
        '--token-file',
        running.apiTokenFile,
        '--cache-file',
        join(redirectorDir, 'routes.json'),
        '--metrics-listen',
        metrics.get('redirector')!,
      ],
      join(redirectorDir, 'redirector.log'),
    ),
  });
  const redirector = children.at(-1)!.child;
  writeFileSync(join(redirectorDir, 'redirector.pid'), `${redirector.pid}\n`);
  for (const { name, child } of children) {
    child.on('exit', (code, signal) =>
      process.stderr.write(
        `continuum up: ${name} exited (${signal ?? `code ${code}`}); the rest keeps running\n`,
      ),
    );
  }
  await waitUntil('every demo node joining', 60_000, async () => {
    const up = new Set(
      (await listNodes(running.controller)).filter((n) => n.state === 'up').map((n) => n.name),
    );
    return demoNodes.every((n) => up.has(n.name));
  });
  await applySpec(running.controller, spec, 'continuum-up');
  const endpoint = `http://127.0.0.1:${opts.endpointPort}`;
  await waitUntil('the demo service becoming active', 60_000, async () =>
    (await listWorkloads(running.controller)).some((w) => w.name === 'kv' && w.phase === 'active'),
  );
  await waitUntil(
    'the endpoint serving',
    30_000,
    async () => (await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(2000) })).ok,
  );
  const kv = (await listWorkloads(running.controller)).find((w) => w.name === 'kv');
  const owner = kv?.node ?? 'node-1';
  const copies = kv?.volumes?.[demoVolume.name];
  const storage =
    copies === undefined
      ? `kv keeps its keys in each node's directory (${describeAttachDetection(detection)})`
      : `kv keeps its keys on volume ${demoVolume.name}, ${demoVolume.replicas} copies in sync (${copies.isr.join(', ')}): a failover loses none`;
  process.stdout.write(
    [
      'Continuum is up.',
      `  endpoint (demo key-value service): ${endpoint}    try: curl -X PUT --data hello ${endpoint}/kv/greeting`,
      `  API:                                ${running.url}`,
      `  API token:                          ${running.apiTokenFile}`,
      `  data directory:                     ${opts.dataDir}`,
      '',
      storage,
      `kv runs on ${owner}. Kill that node (agent and everything it runs) to watch a failover:`,
      `  kill -9 -$(cat ${join(opts.dataDir, 'nodes', owner, 'agent.pid')})`,
      'then:',
      `  curl ${endpoint}/health && continuum get failovers`,
      '  continuum events --follow',
      '',
      ...metricsLines(running.url, metrics),
      '',
      'Ctrl-C stops everything.',
      '',
    ].join('\n'),
  );
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    void stopDemo({
      controller: running.controller,
      children,
      dataDir: opts.dataDir,
      nodes: demoNodes,
      logger,
    })
      .then(() => running.close())
      .then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
