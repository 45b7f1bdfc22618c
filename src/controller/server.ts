// The controller daemon: SQLite store under a data directory, tokens, the HTTP API and the agent
// session endpoint (WebSocket) on one port, bound to 127.0.0.1 unless told otherwise.
import { createAdaptorServer } from '@hono/node-server';
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import type { IncomingMessage, Server } from 'node:http';
import { join, resolve } from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';
import { isContinuumError } from '../core/errors.js';
import type { Logger } from '../core/ports.js';
import { agentMessageBytesMax, agentMessageSchema } from '../core/protocol.js';
import { systemClock } from '../platform/real-ports.js';
import { ensureToken } from '../platform/tokens.js';
import { SqliteStore } from '../store/sqlite.js';
import type { StateStore } from '../store/port.js';
import type { AgentChannel } from './agent-sessions.js';
import { createApi } from './api/app.js';
import { tokenMatches } from './api/auth.js';
import { controllerConfig, type ControllerConfig } from './config.js';
import { Controller } from './controller.js';

export interface ControllerServerOptions {
  dataDir: string;
  host?: string;
  port?: number;
  logger: Logger;
  config?: Partial<ControllerConfig>;
}

export interface RunningController {
  controller: Controller;
  server: Server;
  url: string;
  apiTokenFile: string;
  agentTokenFile: string;
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
  const apiToken = ensureToken(files.api);
  const agentToken = ensureToken(files.agent);
  const store: StateStore = new SqliteStore({
    path: join(options.dataDir, 'state.db'),
    clock: systemClock,
  });
  const controller = new Controller({
    store,
    clock: systemClock,
    config: controllerConfig(options.config),
    logger: options.logger,
    controllerId: `controller-${process.pid}`,
    newClusterId: () => randomUUID(),
  });
  await controller.start();
  const app = createApi(controller, { apiToken });
  const server = createAdaptorServer({ fetch: app.fetch }) as Server;
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
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 7400, options.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const port =
    typeof address === 'object' && address !== null ? address.port : (options.port ?? 7400);
  return {
    controller,
    server,
    url: `http://${options.host ?? '127.0.0.1'}:${port}`,
    apiTokenFile: files.api,
    agentTokenFile: files.agent,
    async close() {
      await controller.stop();
      for (const client of wss.clients) client.terminate();
      server.closeAllConnections?.();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await store.close();
    },
  };
}

/** One agent session: every message validated; a malformed one closes this session only. */
function serveAgent(controller: Controller, ws: WebSocket, logger: Logger): void {
  let node: string | undefined;
  const channel: AgentChannel = {
    send: (message) => ws.send(JSON.stringify(message)),
    close: (code, reason) => ws.close(code, reason),
  };
  let chain: Promise<void> = Promise.resolve();
  ws.on('message', (data) => {
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
        if (isContinuumError(err)) return reject(err.message, err.code);
        logger.log('error', 'agent message failed', { node, error: String(err) });
      }
    });
  });
  ws.on('close', () => controller.agentDisconnected(channel, node));
  ws.on('error', (err) => logger.log('warn', 'agent session error', { node, error: err.message }));
  function reject(reason: string, code = 'CONTINUUM_ERR_BAD_REQUEST'): void {
    logger.log('warn', 'closing agent session', { node, reason });
    if (ws.readyState === ws.OPEN)
      ws.send(JSON.stringify({ type: 'error', code, message: reason }));
    ws.close(4400, reason.slice(0, 120));
  }
}
