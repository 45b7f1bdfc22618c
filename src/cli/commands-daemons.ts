// Commands that start daemons: controller, agent, redirector. Each runs until SIGINT or SIGTERM.
import { InvalidArgumentError, type Command } from 'commander';
import { join } from 'node:path';
import { agentReplicationListenDefault, startAgent } from '../agent/daemon.js';
import { agentFenceTimeoutMsDefault } from '../agent/self-fence.js';
import { parseListenAddress } from '../agent/volume-replication.js';
import {
  leaderLeaseTtlMsDefault,
  leaderLeaseTtlMsMax,
  leaderLeaseTtlMsMin,
} from '../controller/leadership.js';
import {
  controllerConfig,
  defaultControllerConfig,
  type DetectionConfig,
} from '../controller/config.js';
import { etcdPrefixDefault, startControllerServer } from '../controller/server.js';
import { runRedirector } from '../redirector/main.js';
import { streamLogger } from '../platform/logger.js';
import { loopPollWindowUsDefault, parseLoopPollWindowUs } from '../platform/loop-poll.js';
import { parseMetricsListen } from '../platform/metrics-listener.js';
import { readToken } from '../platform/tokens.js';
import { continuumHome, defaultControllerUrl } from './paths.js';

export function parsePort(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`expected a TCP port between 0 and 65535, got "${value}"`);
  return port;
}

/** A whole number of milliseconds from 1 to one hour, for `flag`. */
function parseMilliseconds(flag: string): (value: string) => number {
  return (value) => {
    const ms = Number(value);
    if (!/^\d+$/.test(value) || ms < 1 || ms > 3_600_000)
      throw new Error(`${flag}: expected whole milliseconds from 1 to 3600000, got "${value}"`);
    return ms;
  };
}

function parseLabels(value: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const pair of value.split(',').filter(Boolean)) {
    const [k, v] = pair.split('=');
    if (!k || v === undefined) throw new Error(`--labels: expected key=value pairs, got "${pair}"`);
    labels[k] = v;
  }
  return labels;
}

/** --metrics-listen host:port, checked when the flag is read. */
const metricsListenOption = (value: string): string => (parseMetricsListen(value), value);

function untilSignal(close: () => Promise<void>): void {
  let closing = false;
  const stop = () => {
    if (closing) return;
    closing = true;
    void close().then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

export function addDaemonCommands(program: Command): void {
  program
    .command('controller')
    .description(
      'run the controller: API, reconcile loop, agent sessions (SQLite store, or etcd shared by ' +
        'several controllers that elect a leader)',
    )
    .option('--data-dir <dir>', 'state, tokens', join(continuumHome(), 'controller'))
    .option('--host <address>', 'address to bind', '127.0.0.1')
    .option('--port <port>', 'API port', parsePort, 7400)
    .option(
      '--etcd <urls>',
      'etcd client URLs, comma-separated: keep state in etcd and elect a leader with the other ' +
        'controllers there',
    )
    .option('--etcd-prefix <prefix>', 'key prefix of this cluster in etcd', etcdPrefixDefault)
    .option(
      '--advertise-url <url>',
      'URL at which agents, the CLI and other controllers reach this one (default http://host:port)',
    )
    .option(
      '--leader-lease-ms <ms>',
      `TTL of the leader lease: a dead leader is replaced about this long after it died (etcd ` +
        `raises values below 2000)`,
      parseLeaseTtl,
      leaderLeaseTtlMsDefault,
    )
    .option('--name <id>', "this controller's name in the journal (default controller-<pid>)")
    .option(
      '--metrics-listen <host:port>',
      'also serve GET /metrics without auth here (on the API port it needs the API token)',
      metricsListenOption,
    )
    .option(
      '--heartbeat-interval-ms <ms>',
      'how often agents send a heartbeat (the controller tells them)',
      parseMilliseconds('--heartbeat-interval-ms'),
      defaultControllerConfig.heartbeatIntervalMs,
    )
    .option(
      '--suspect-after-ms <ms>',
      'a node without a heartbeat this long is suspect; nothing moves yet (at least two intervals)',
      parseMilliseconds('--suspect-after-ms'),
      defaultControllerConfig.suspectAfterMs,
    )
    .option(
      '--down-after-ms <ms>',
      'a node without a heartbeat this long is down and its workloads fail over; an agent ' +
        'restarted within it re-attaches to its instances (more than --suspect-after-ms)',
      parseMilliseconds('--down-after-ms'),
      defaultControllerConfig.downAfterMs,
    )
    .action(
      async (opts: {
        dataDir: string;
        host: string;
        port: number;
        etcd?: string;
        etcdPrefix: string;
        advertiseUrl?: string;
        leaderLeaseMs: number;
        name?: string;
        metricsListen?: string;
        heartbeatIntervalMs: number;
        suspectAfterMs: number;
        downAfterMs: number;
      }) => {
        const logger = streamLogger({ name: 'controller' });
        const detection = detectionOptions(opts);
        const running = await startControllerServer({
          config: detection,
          dataDir: opts.dataDir,
          host: opts.host,
          port: opts.port,
          logger,
          ...(opts.etcd === undefined
            ? {}
            : {
                etcd: {
                  endpoints: parseUrlList('--etcd', opts.etcd),
                  prefix: opts.etcdPrefix,
                  leaseTtlMs: opts.leaderLeaseMs,
                },
              }),
          ...(opts.advertiseUrl === undefined
            ? {}
            : { advertiseUrl: parseUrlList('--advertise-url', opts.advertiseUrl)[0]! }),
          ...(opts.name === undefined ? {} : { controllerId: opts.name }),
          ...(opts.metricsListen === undefined ? {} : { metricsListen: opts.metricsListen }),
        });
        logger.log('info', `controller listening on ${running.url}`, {
          store: opts.etcd === undefined ? 'sqlite' : `etcd ${opts.etcd}`,
          apiTokenFile: running.apiTokenFile,
          agentTokenFile: running.agentTokenFile,
          ...(running.metricsUrl === undefined ? {} : { metricsUrl: running.metricsUrl }),
        });
        untilSignal(() => running.close());
      },
    );
  program
    .command('agent')
    .description('run a node agent')
    .requiredOption('--name <node>', 'node name')
    .option('--site <site>', 'site of this node', 'local')
    .option('--role <role>', 'production or spare', 'production')
    .option('--labels <k=v,...>', 'node labels', parseLabels, {})
    .option('--address <address>', 'address where instances are reachable', '127.0.0.1')
    .option('--cpu <n>', 'CPUs offered (default: all)', Number)
    .option('--memory-mib <n>', 'memory offered in MiB (default: all)', Number)
    .option('--data-dir <dir>', 'agent state and instance files')
    .option('--controller <urls>', 'controller address(es), comma-separated', defaultControllerUrl)
    .option(
      '--replication-listen <host:port>',
      "where this node's volume server takes replication links (port 0: any free port)",
      (value: string) => (parseListenAddress(value), value),
      agentReplicationListenDefault,
    )
    .option(
      '--volume-loop-poll-us <us>',
      "how long this node's volume server keeps its event loop turning after replies leave " +
        `(its --loop-poll-us; default ${loopPollWindowUsDefault}, 0: never)`,
      (value: string) => parseLoopPollWindowUs(value, '--volume-loop-poll-us'),
    )
    .option(
      '--fence-timeout-ms <ms>',
      'cut off from the controller this long while a replicated volume here holds writes, ' +
        'the agent fences it and stops its instance',
      parseMilliseconds('--fence-timeout-ms'),
      agentFenceTimeoutMsDefault,
    )
    .option(
      '--metrics-listen <host:port>',
      'serve Prometheus metrics at http://host:port/metrics (default: off)',
      metricsListenOption,
    )
    .option(
      '--token-file <path>',
      'agent token file',
      join(continuumHome(), 'controller', 'agent.token'),
    )
    .action(
      async (opts: {
        name: string;
        site: string;
        role: string;
        labels: Record<string, string>;
        address: string;
        cpu?: number;
        memoryMib?: number;
        dataDir?: string;
        controller: string;
        replicationListen: string;
        volumeLoopPollUs?: number;
        fenceTimeoutMs: number;
        metricsListen?: string;
        tokenFile: string;
      }) => {
        if (opts.role !== 'production' && opts.role !== 'spare')
          throw new Error(`--role: expected "production" or "spare", got "${opts.role}"`);
        const logger = streamLogger({ name: `agent ${opts.name}` });
        const agent = await startAgent({
          node: opts.name,
          site: opts.site,
          role: opts.role,
          labels: opts.labels,
          address: opts.address,
          capacity: {
            ...(opts.cpu === undefined ? {} : { cpu: opts.cpu }),
            ...(opts.memoryMib === undefined ? {} : { memoryMiB: opts.memoryMib }),
          },
          dataDir: opts.dataDir ?? join(continuumHome(), 'nodes', opts.name),
          controllerUrls: opts.controller.split(','),
          token: readToken(opts.tokenFile),
          logger,
          replicationListen: opts.replicationListen,
          ...(opts.volumeLoopPollUs === undefined
            ? {}
            : { volumeLoopPollUs: opts.volumeLoopPollUs }),
          fenceTimeoutMs: opts.fenceTimeoutMs,
          ...(opts.metricsListen === undefined ? {} : { metricsListen: opts.metricsListen }),
        });
        if (agent.metricsUrl !== undefined)
          logger.log('info', `agent metrics at ${agent.metricsUrl}`);
        untilSignal(() => agent.close());
      },
    );
  program
    .command('redirector')
    .description('run the redirector: a stable address per endpoint, following the active instance')
    .option('--controller <urls>', 'controller address(es), comma-separated', defaultControllerUrl)
    .option(
      '--token-file <path>',
      'API token file',
      join(continuumHome(), 'controller', 'api.token'),
    )
    .option(
      '--cache-file <path>',
      'last known routes, used while no controller answers',
      join(continuumHome(), 'redirector', 'routes.json'),
    )
    .option(
      '--connect-wait-ms <ms>',
      'how long a new connection waits for an active instance',
      Number,
      15_000,
    )
    .option(
      '--metrics-listen <host:port>',
      'serve Prometheus metrics at http://host:port/metrics (default: off)',
      metricsListenOption,
    )
    .action(
      async (opts: {
        controller: string;
        tokenFile: string;
        cacheFile: string;
        connectWaitMs: number;
        metricsListen?: string;
      }) => {
        const logger = streamLogger({ name: 'redirector' });
        const running = await runRedirector({
          controllerUrls: opts.controller.split(','),
          token: readToken(opts.tokenFile),
          cacheFile: opts.cacheFile,
          logger,
          connectWaitMs: opts.connectWaitMs,
          ...(opts.metricsListen === undefined ? {} : { metricsListen: opts.metricsListen }),
        });
        if (running.metricsUrl !== undefined)
          logger.log('info', `redirector metrics at ${running.metricsUrl}`);
        untilSignal(() => running.close());
      },
    );
}

/**
 * The detection timings of the controller command, checked together before anything starts (an
 * error, not a commander refusal, so main prints it): it names the option, not the config field.
 */
function detectionOptions(
  opts: Pick<DetectionConfig, 'heartbeatIntervalMs' | 'suspectAfterMs' | 'downAfterMs'>,
): Partial<DetectionConfig> {
  const detection = {
    heartbeatIntervalMs: opts.heartbeatIntervalMs,
    suspectAfterMs: opts.suspectAfterMs,
    downAfterMs: opts.downAfterMs,
  };
  try {
    controllerConfig(detection);
  } catch (err) {
    if (!(err instanceof RangeError)) throw err;
    throw new Error(
      err.message
        .replace(/^controller config /, '')
        .replace(
          /\b(heartbeatIntervalMs|suspectAfterMs|downAfterMs)\b/g,
          (field) => `--${kebab(field)}`,
        ),
    );
  }
  return detection;
}

/** downAfterMs -> down-after-ms */
function kebab(field: string): string {
  return field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

function parseLeaseTtl(value: string): number {
  const ms = Number(value);
  if (!Number.isInteger(ms) || ms < leaderLeaseTtlMsMin || ms > leaderLeaseTtlMsMax)
    throw new InvalidArgumentError(
      `expected a whole number of milliseconds from ${leaderLeaseTtlMsMin} to ${leaderLeaseTtlMsMax}`,
    );
  return ms;
}

/** A comma-separated list of http(s) URLs; anything else is refused naming the option. */
function parseUrlList(option: string, value: string): string[] {
  const urls = value
    .split(',')
    .map((u) => u.trim())
    .filter(Boolean);
  if (urls.length === 0) throw new InvalidArgumentError(`${option}: expected at least one URL`);
  for (const url of urls) {
    if (!/^https?:\/\/[^/\s]+\/?$/.test(url))
      throw new InvalidArgumentError(
        `${option}: expected URLs like http://127.0.0.1:2379, got ${JSON.stringify(url)}`,
      );
  }
  return urls;
}
