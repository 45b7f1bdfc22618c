// `npm run bench`: every benchmark, with its results saved under bench/results/. Options:
// --runs N (default 20) and --hog-seconds S (default 300) for the restore benchmark;
// --chaos-seconds S (default 300, 0 skips) and --chaos-seed N (default 1) for the chaos run;
// then the simulator: seeds per second, decisions for a site loss at 1,000 nodes and 5,000
// workloads, and a simulated site loss at --sim-nodes (default 1000) / --sim-workloads (5000);
// then the NBD server against qemu-nbd and nbdkit with fio: --nbd-seconds S per fio job (default 5,
// 0 skips), --nbd-rounds N (default 1; medians), --nbd-servers (default continuum,qemu-nbd,nbdkit);
// then replication (bench/replication.ts): 2 and 3 synchronous copies against unreplicated with
// the same fio jobs, --repl-seconds S per job (default 5, 0 skips), --repl-rounds N (default 1),
// and delta against full resync on a --resync-gib G volume (default 4, 0 skips); then the demo's
// restore time after a node crash with its keys on a 2-copy volume, --runs N rounds, with the
// acknowledged keys lost (bench/replication-restore.ts).
// --only restore,chaos,simulation,nbd,replication,replicated-restore runs only those sections
// (default: all). Not in the default list: --only vrrp, the keepalived VRRP takeover reference
// (bench/vrrp.ts; root, nftables and keepalived, about 2 minutes): a master host crash between
// two network namespaces at advert_int 1 s (VRRP v2), 0.1 s and 0.01 s (v3), --vrrp-runs N
// crashes each (default 10). --only controllers: several controllers on etcd
// (bench/controllers.ts): the leader SIGKILLed --runs N times, time until a follower leads and
// until every agent is back with it, then node-crash restore with 2 controllers on etcd against
// 1 on SQLite in the same run (--controllers C, default 2).
// --only console: the browser console in headless chromium (bench/console.ts): time to first
// render of the overview and from an event to the screen, with the demo cluster and with a
// simulated 1,000-node, 5,000-workload controller state.
// --only probes: probe overhead (bench/probes.ts): one agent's CPU and memory with
// --probe-instances instances (default 100) each with 3 probes at 1 s, against none, and HAProxy
// running the same health checks in the same run.
// --only alerts: alert latency from a journal event to webhook delivery (bench/alerts.ts), 20
// samples, against Prometheus Alertmanager (prometheus-alertmanager) in the same run.
import { parseArgs } from 'node:util';
import { benchAlerts, formatAlertsBench } from './alerts.js';
import { benchChaos } from './chaos.js';
import { benchConsole, formatConsoleBench } from './console.js';
import { benchControllers, formatControllersBench } from './controllers.js';
import { benchNbd, parseNbdServers } from './nbd.js';
import { formatNbdBench } from './nbd-format.js';
import { benchProbes, formatProbesBench } from './probes.js';
import { benchReplication, parseReplicationOptions } from './replication.js';
import { formatReplicationBench } from './replication-format.js';
import { benchReplicatedRestore } from './replication-restore.js';
import { benchRestore, saveResult } from './restore.js';
import { benchScale } from './scale.js';
import { benchSimScale } from './sim-scale.js';
import { benchVrrp, formatVrrpBench } from './vrrp.js';
import { runSeed } from '../src/sim/run-seed.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '20' },
    'hog-seconds': { type: 'string', default: '300' },
    'chaos-seconds': { type: 'string', default: '300' },
    'chaos-seed': { type: 'string', default: '1' },
    'sim-nodes': { type: 'string', default: '1000' },
    'sim-workloads': { type: 'string', default: '5000' },
    'nbd-seconds': { type: 'string', default: '5' },
    'nbd-rounds': { type: 'string', default: '1' },
    'nbd-servers': { type: 'string', default: 'continuum,qemu-nbd,nbdkit' },
    'repl-seconds': { type: 'string', default: '5' },
    'repl-rounds': { type: 'string', default: '1' },
    'resync-gib': { type: 'string', default: '4' },
    'vrrp-runs': { type: 'string', default: '10' },
    controllers: { type: 'string', default: '2' },
    'probe-instances': { type: 'string', default: '100' },
    only: {
      type: 'string',
      default: 'restore,chaos,simulation,nbd,replication,replicated-restore,console,probes,alerts',
    },
  },
});
const sections = [
  'restore',
  'chaos',
  'simulation',
  'nbd',
  'replication',
  'replicated-restore',
  'vrrp',
  'controllers',
  'console',
  'probes',
  'alerts',
] as const;
const only = new Set(values.only.split(',').map((s) => s.trim()));
for (const name of only) {
  if (!(sections as readonly string[]).includes(name))
    throw new RangeError(`--only: expected a list of ${sections.join(', ')}; got "${name}"`);
}
const simNodes = Number(values['sim-nodes']);
const simWorkloads = Number(values['sim-workloads']);
if (
  !Number.isInteger(simNodes) ||
  simNodes < 1 ||
  !Number.isInteger(simWorkloads) ||
  simWorkloads < 0
)
  throw new RangeError('--sim-nodes and --sim-workloads: expected whole numbers (nodes >= 1)');
const runs = Number(values.runs);
const hogSeconds = Number(values['hog-seconds']);
if (!Number.isInteger(runs) || runs < 1)
  throw new RangeError(`--runs: expected a positive whole number, got ${values.runs}`);
if (!Number.isFinite(hogSeconds) || hogSeconds < 0)
  throw new RangeError(`--hog-seconds: expected seconds >= 0, got ${values['hog-seconds']}`);
const chaosSeconds = Number(values['chaos-seconds']);
const chaosSeed = Number(values['chaos-seed']);
if (!Number.isFinite(chaosSeconds) || chaosSeconds < 0)
  throw new RangeError(`--chaos-seconds: expected seconds >= 0, got ${values['chaos-seconds']}`);
if (!Number.isInteger(chaosSeed))
  throw new RangeError(`--chaos-seed: expected a whole number, got ${values['chaos-seed']}`);
const nbdSeconds = Number(values['nbd-seconds']);
const nbdRounds = Number(values['nbd-rounds']);
if (!Number.isInteger(nbdSeconds) || nbdSeconds < 0)
  throw new RangeError(`--nbd-seconds: expected a whole number >= 0, got ${values['nbd-seconds']}`);
if (!Number.isInteger(nbdRounds) || nbdRounds < 1)
  throw new RangeError(
    `--nbd-rounds: expected a positive whole number, got ${values['nbd-rounds']}`,
  );
const nbdServers = parseNbdServers(values['nbd-servers']);
const vrrpRuns = Number(values['vrrp-runs']);
if (!Number.isInteger(vrrpRuns) || vrrpRuns < 1)
  throw new RangeError(`--vrrp-runs: expected a positive whole number, got ${values['vrrp-runs']}`);
const controllerCount = Number(values.controllers);
if (!Number.isInteger(controllerCount) || controllerCount < 2 || controllerCount > 5)
  throw new RangeError(`--controllers: expected 2 to 5, got ${values.controllers}`);
const replicationOptions = parseReplicationOptions({
  seconds: values['repl-seconds'],
  rounds: values['repl-rounds'],
  resyncGiB: values['resync-gib'],
});

if (only.has('restore')) {
  const result = await benchRestore({ runs, hogSeconds });
  const { samples: _samples, ...summary } = result;
  process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  process.stdout.write(`saved ${saveResult('restore', result)}\n`);
}

if (only.has('chaos') && chaosSeconds > 0) {
  const chaos = await benchChaos({ seed: chaosSeed, durationMs: chaosSeconds * 1000 });
  const { actions, failovers, ...chaosSummary } = chaos;
  const counts = { actions: actions.length, failovers: failovers.length };
  process.stdout.write(`${JSON.stringify({ chaos: { ...chaosSummary, ...counts } }, null, 2)}\n`);
  process.stdout.write(`saved ${saveResult('chaos', chaos)}\n`);
}

if (only.has('simulation')) {
  const seedsStarted = performance.now();
  const seedCount = 200;
  for (let seed = 1; seed <= seedCount; seed++) await runSeed({ seed, mix: 'swarm' });
  const seedsPerSecond = seedCount / ((performance.now() - seedsStarted) / 1000);
  const scale = benchScale({ nodes: 1000, sites: 3, workloads: 5000 });
  const simScale = await benchSimScale({ nodes: simNodes, workloads: simWorkloads });
  const simulation = {
    seedsPerSecondOneCore: Math.round(seedsPerSecond * 10) / 10,
    decisions: scale,
    siteLoss: simScale,
  };
  process.stdout.write(`${JSON.stringify({ simulation }, null, 2)}\n`);
  process.stdout.write(`saved ${saveResult('simulation', simulation)}\n`);
}

if (only.has('nbd') && nbdSeconds > 0) {
  const nbd = await benchNbd({
    seconds: nbdSeconds,
    rounds: nbdRounds,
    fileMiB: 1024,
    servers: nbdServers,
    transports: ['unix', 'tcp'],
  });
  process.stdout.write(formatNbdBench(nbd));
  process.stdout.write(`saved ${saveResult('nbd', nbd)}\n`);
}

if (only.has('replication')) {
  const replication = await benchReplication(replicationOptions);
  process.stdout.write(formatReplicationBench(replication));
  process.stdout.write(`saved ${saveResult('replication', replication)}\n`);
}

if (only.has('replicated-restore')) {
  const result = await benchReplicatedRestore(runs);
  const { samples: _samples, ...summary } = result;
  process.stdout.write(`${JSON.stringify({ replicatedRestore: summary }, null, 2)}\n`);
  process.stdout.write(`saved ${saveResult('replicated-restore', result)}\n`);
}

if (only.has('vrrp')) {
  const vrrp = await benchVrrp({ runs: vrrpRuns });
  process.stdout.write(formatVrrpBench(vrrp));
  if (vrrp.skipped === undefined) process.stdout.write(`saved ${saveResult('vrrp', vrrp)}\n`);
}

if (only.has('controllers')) {
  const controllers = await benchControllers({
    runs,
    controllers: controllerCount,
    leaderLeaseMs: 2000,
  });
  process.stdout.write(`${formatControllersBench(controllers)}\n`);
  if (!('skipped' in controllers))
    process.stdout.write(`saved ${saveResult('controllers', controllers)}\n`);
}

if (only.has('console')) {
  const consoleBench = await benchConsole();
  process.stdout.write(formatConsoleBench(consoleBench));
  process.stdout.write(`saved ${saveResult('console', consoleBench)}\n`);
}

if (only.has('probes')) {
  const instances = Number(values['probe-instances']);
  if (!Number.isInteger(instances) || instances < 1 || instances > 1000)
    throw new RangeError(`--probe-instances: expected 1 to 1000, got ${values['probe-instances']}`);
  const probes = await benchProbes({ instances, seconds: 30 });
  process.stdout.write(formatProbesBench(probes));
  if (!('skipped' in probes)) process.stdout.write(`saved ${saveResult('probes', probes)}\n`);
}

if (only.has('alerts')) {
  const alerts = await benchAlerts({ samples: 20 });
  process.stdout.write(formatAlertsBench(alerts));
  if (!('skipped' in alerts)) process.stdout.write(`saved ${saveResult('alerts', alerts)}\n`);
}
