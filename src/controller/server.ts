// The controller daemon: its store (SQLite under the data directory, or etcd shared by several
// controllers that elect a leader), tokens, the HTTP API and the agent session endpoint
// (WebSocket) on one port, bound to 127.0.0.1 unless told otherwise.
import { createAdaptorServer } from '@hono/node-server';
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import type { IncomingMessage, Server } from 'node:http';
import { join, resolve } from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';
import { isContinuumError } from '../core/errors.js';
import type { Logger } from '../core/ports.js';
import {
  agentMessageBytesMax,
  agentMessageSchema,
  controllerUrlLengthMax,
} from '../core/protocol.js';
import { systemClock } from '../platform/real-ports.js';
import { ensureToken, newToken, writeToken } from '../platform/tokens.js';
import { EtcdStore } from '../store/etcd.js';
import { SqliteStore } from '../store/sqlite.js';
import type { StateStore } from '../store/port.js';
import type { AgentChannel } from './agent-sessions.js';
import { createApi } from './api/app.js';
import { tokenMatches } from './api/auth.js';
import { controllerConfig, type ControllerConfig } from './config.js';
import { Controller } from './controller.js';
import { AlertShell } from './alerts/shell.js';
import { ControllerMetrics } from './metrics/controller-metrics.js';
import { listenMetrics, type MetricsListener } from '../platform/metrics-listener.js';

export interface ControllerServerOptions {
  dataDir: string;
  host?: string;
  port?: number;
  logger: Logger;
  config?: Partial<ControllerConfig>;
  /**
   * Share an etcd with other controllers: one is elected leader, the others follow. The API and
   * agent tokens are then kept in etcd (made by the first controller) and copied to the data
   * directory, so every controller accepts the same ones.
   */
  etcd?: { endpoints: string[]; prefix?: string; leaseTtlMs?: number };
  /** The URL others reach this controller at (default: http://host:port). */
  advertiseUrl?: string;
  /** This controller's name in the journal and the leader key (default controller-<pid>). */
  controllerId?: string;
  /**
   * Also serve GET /metrics without auth at this "host:port" (for scrapers that cannot send the
   * API token); /metrics on the API port always asks for the token.
   */
  metricsListen?: string;
}

/** Key prefix of a cluster's records in a shared etcd, unless told otherwise. */
export const etcdPrefixDefault = 'continuum/';
const tokensKey = 'controller/tokens';

export interface RunningController {
  controller: Controller;
  server: Server;
  url: string;
  apiTokenFile: string;
  agentTokenFile: string;
  /** The alert shell (docs/alerts.md); tests wait on alerts.settled(). */
  alerts: AlertShell;
  metrics: ControllerMetrics;
  /** The unauthenticated metrics address, with metricsListen. */
  metricsUrl?: string;
  close(): Promise<void>;
}

export const tokenFiles = (dataDir: string) => ({
  api: join(dataDir, 'api.token'),
  agent: join(dataDir, 'agent.token'),
});

export async function startControllerServer(
  input: ControllerServerOptions,
): Promise<RunningController> {
  const options = { ...input, dataDir: resolve(input.dataDir) };
  mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  const files = tokenFiles(options.dataDir);
  const store: StateStore =
    options.etcd === undefined
      ? new SqliteStore({ path: join(options.dataDir, 'state.db'), clock: systemClock })
      : await EtcdStore.open({
          endpoints: options.etcd.endpoints,
          prefix: options.etcd.prefix ?? etcdPrefixDefault,
        });
  let server: Server | undefined;
  try {
    return await serveController(options, store, files, (s) => (server = s));
  } catch (err) {
    server?.closeAllConnections?.();
    if (server?.listening === true) await new Promise((resolve) => server!.close(resolve));
    await store.close();
    throw err;
  }
}

async function serveController(
  options: ControllerServerOptions & { dataDir: string },
  store: StateStore,
  files: { api: string; agent: string },
  listening: (server: Server) => void,
): Promise<RunningController> {
  const { apiToken, agentToken } =
    options.etcd === undefined
      ? { apiToken: ensureToken(files.api), agentToken: ensureToken(files.agent) }
      : await sharedTokens(store, files);
  // Listening first tells the controller its own URL (port 0 picks one), which the leader key
  // carries; requests before the API exists are answered 503.
  const api: { app?: ReturnType<typeof createApi> } = {};
  const server = createAdaptorServer({
    fetch: (request: Request) =>
      api.app?.fetch(request) ?? new Response('controller starting', { status: 503 }),
  }) as Server;
  listening(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 7400, options.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const port =
    typeof address === 'object' && address !== null ? address.port : (options.port ?? 7400);
  const url = `http://${options.host ?? '127.0.0.1'}:${port}`;
  const controller = new Controller({
    store,
    clock: systemClock,
    config: controllerConfig(options.config),
    logger: options.logger,
    controllerId: options.controllerId ?? `controller-${process.pid}`,
    newClusterId: () => randomUUID(),
    ...(options.etcd === undefined
      ? {}
      : {
          leadership: {
            url: options.advertiseUrl ?? url,
            ...(options.etcd.leaseTtlMs === undefined
              ? {}
              : { leaseTtlMs: options.etcd.leaseTtlMs }),
          },
        }),
  });
  const metrics = new ControllerMetrics(controller);
  // Bound before the controller starts, so a taken address fails the start with nothing running.
  let metricsListener: MetricsListener | undefined;
  if (options.metricsListen !== undefined)
    metricsListener = await listenMetrics(options.metricsListen, metrics, options.logger);
  api.app = createApi(controller, { apiToken, metrics });
  // Counting from before the start, so this controller's own start or election is counted.
  metrics.start();
  await controller.start();
  // Alerting runs while this controller leads (alerts/shell.ts checks); it stops before the controller.
  const alerts = new AlertShell({
    store: controller.store,
    clock: systemClock,
    logger: options.logger.child({ component: 'alerts' }),
    isLeader: () => controller.isLeader,
  });
  alerts.start();
  const wss = new WebSocketServer({ noServer: true, maxPayload: agentMessageBytesMax });
  server.on('upgrade', (request: IncomingMessage, socket, head) => {
    if (
      request.url !== '/v1/agent/session' ||
      !tokenMatches(request.headers.authorization, agentToken)
    ) {
      socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    wss.handleUpgrade(request, socket, head, (ws) => serveAgent(controller, ws, options.logger));
  });
  return {
    controller,
    server,
    url,
    apiTokenFile: files.api,
    agentTokenFile: files.agent,
    alerts,
    metrics,
    ...(metricsListener === undefined ? {} : { metricsUrl: metricsListener.url }),
    async close() {
      metrics.stop();
      await metricsListener?.close();
      await alerts.stop();
      await controller.stop();
      for (const client of wss.clients) client.terminate();
      server.closeAllConnections?.();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await store.close();
    },
  };
}

/**
 * The API and agent tokens of a cluster whose controllers share etcd: the first controller makes
 * them, every controller copies them into its data directory (mode 0600) for the CLI beside it.
 */
async function sharedTokens(
  store: StateStore,
  files: { api: string; agent: string },
): Promise<{ apiToken: string; agentToken: string }> {
  const made = { apiToken: newToken(), agentToken: newToken() };
  await store.txn({
    compares: [{ key: tokensKey, modRevision: 0 }],
    puts: [{ key: tokensKey, value: made }],
  });
  const tokens = (await store.get<{ apiToken: string; agentToken: string }>(tokensKey))!.value;
  writeToken(files.api, tokens.apiToken);
  writeToken(files.agent, tokens.agentToken);
  return tokens;
}

/** One agent session: every message validated; a malformed one closes this session only. */
function serveAgent(controller: Controller, ws: WebSocket, logger: Logger): void {
  let node: string | undefined;
  const channel: AgentChannel = {
    send: (message) => ws.send(JSON.stringify(message)),
    // A WebSocket close reason holds at most 123 bytes.
    close: (code, reason) => ws.close(code, Buffer.from(reason).subarray(0, 120).toString()),
  };
  let chain: Promise<void> = Promise.resolve();
  ws.on('message', (data) => {
    // Contact counts on arrival, not when the messages ahead of this one are done.
    if (node !== undefined) controller.agentArrived(channel, node);
    chain = chain.then(async () => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(
          Array.isArray(data)
            ? Buffer.concat(data).toString('utf8')
            : Buffer.from(data as ArrayBuffer).toString('utf8'),
        );
      } catch {
        return reject('expected JSON');
      }
      const message = agentMessageSchema.safeParse(parsed);
      if (!message.success)
        return reject(
          `invalid message: ${message.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
        );
      try {
        node = await controller.agentMessage(channel, node, message.data);
      } catch (err) {
        if (isContinuumError(err)) return reject(err.message, err.code, leaderNamed(err.details));
        logger.log('error', 'agent message failed', { node, error: String(err) });
      }
    });
  });
  ws.on('close', () => controller.agentDisconnected(channel, node));
  ws.on('error', (err) => logger.log('warn', 'agent session error', { node, error: err.message }));
  function reject(reason: string, code = 'CONTINUUM_ERR_BAD_REQUEST', leader?: string): void {
    logger.log('warn', 'closing agent session', { node, reason });
    if (ws.readyState === ws.OPEN)
      ws.send(JSON.stringify({ type: 'error', code, message: reason, leader }));
    ws.close(4400, reason.slice(0, 120));
  }
}

/** The leader's URL a NOT_LEADER error carries (leader-guard.ts), so the agent goes straight there. */
function leaderNamed(details: unknown): string | undefined {
  if (typeof details !== 'object' || details === null || !('leader' in details)) return undefined;
  const { leader } = details;
  return typeof leader === 'string' && leader.length <= controllerUrlLengthMax ? leader : undefined;
}
