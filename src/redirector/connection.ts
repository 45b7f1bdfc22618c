// One client connection through the redirector: wait (paused) for a target, connect to it with
// retries until connectWaitMs has passed since the client arrived, then pipe both ways. Waiting
// instead of refusing is what turns a failover into latency for the client (docs/redirector.md).
import { connect, type Socket } from 'node:net';
import type { Logger } from '../core/ports.js';
import type { Route } from '../core/model.js';
import type { EndpointState } from './endpoint.js';

export interface ConnectionLimits {
  /** How long a new client waits for a target that answers, counted from its arrival. */
  connectWaitMs: number;
  /** How long one connect attempt to a target may take. */
  connectAttemptTimeoutMs: number;
  /** Pause between failed connect attempts (unless the route's target changes sooner). */
  retryDelayMs: number;
}

export interface ConnectionContext {
  limits: ConnectionLimits;
  logger: Logger;
  isClosed(): boolean;
  /** Called once the connection no longer counts as pending or active. */
  onSettled(endpoint: EndpointState): void;
}

type Target = NonNullable<Route['target']>;

/** Serves one accepted client socket, created with pauseOnConnect so nothing is read while it waits. */
export async function serveClient(
  client: Socket,
  endpoint: EndpointState,
  context: ConnectionContext,
): Promise<void> {
  endpoint.pending.add(client);
  let upstream: Socket | null = null;
  try {
    upstream = await connectWithinDeadline(client, endpoint, context);
  } finally {
    endpoint.pending.delete(client);
  }
  if (upstream === null) {
    context.onSettled(endpoint);
    return;
  }
  pipeBothWays(client, upstream, endpoint, context);
}

/**
 * Returns a connected target socket, or null after closing the client. A target that is set gets
 * at least one full attempt, even with connectWaitMs 0; later attempts stop at the deadline.
 */
async function connectWithinDeadline(
  client: Socket,
  endpoint: EndpointState,
  context: ConnectionContext,
): Promise<Socket | null> {
  const { connectWaitMs, connectAttemptTimeoutMs, retryDelayMs } = context.limits;
  const deadlineMs = performance.now() + connectWaitMs;
  let attempts = 0;
  let lastFailure = 'no target';
  for (;;) {
    if (client.destroyed || context.isClosed()) return null;
    const remainingMs = deadlineMs - performance.now();
    const route = endpoint.route;
    if (route === null) {
      context.logger.log('info', 'route removed; closing waiting client', {
        endpoint: endpoint.key,
      });
      client.destroy();
      return null;
    }
    if (remainingMs <= 0 && (attempts > 0 || route.target === null)) break;
    if (route.target === null) {
      await endpoint.waitForChange(remainingMs);
      continue;
    }
    const timeoutMs =
      attempts === 0
        ? connectAttemptTimeoutMs
        : Math.max(1, Math.min(connectAttemptTimeoutMs, remainingMs));
    attempts += 1;
    const result = await connectOnce(route.target, timeoutMs, endpoint);
    if (!(result instanceof Error)) {
      if (!client.destroyed && !context.isClosed()) return result;
      result.destroy();
      return null;
    }
    // The instance may have just died and the controller not noticed yet: count and retry.
    endpoint.connectFailuresTotal += 1;
    lastFailure = `${route.target.host}:${route.target.port}: ${result.message}`;
    context.logger.log('debug', 'connect to target failed; retrying', {
      endpoint: endpoint.key,
      failure: lastFailure,
    });
    await endpoint.waitForChange(Math.min(retryDelayMs, deadlineMs - performance.now()));
  }
  endpoint.connectionsTimedOutTotal += 1;
  const message = `no target answered within connectWaitMs (${connectWaitMs}); closing client`;
  context.logger.log('warn', message, { endpoint: endpoint.key, attempts, lastFailure });
  client.destroy();
  return null;
}

/** One connect attempt; resolves with the socket, or with the reason it failed. Never rejects. */
function connectOnce(
  target: Target,
  timeoutMs: number,
  endpoint: EndpointState,
): Promise<Socket | Error> {
  return new Promise((resolve) => {
    const socket = connect({ host: target.host, port: target.port, allowHalfOpen: true });
    endpoint.connecting.add(socket);
    const finish = (result: Socket | Error): void => {
      clearTimeout(timer);
      endpoint.connecting.delete(socket);
      socket.removeListener('connect', onConnect);
      socket.removeListener('error', onError);
      socket.removeListener('close', onClose);
      if (result instanceof Error) socket.destroy();
      resolve(result);
    };
    const onConnect = (): void => finish(socket);
    const onError = (error: Error): void => finish(error);
    // close() of the redirector destroys attempts without an error; this settles them.
    const onClose = (): void => finish(new Error('connect attempt aborted'));
    const timer = setTimeout(() => finish(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
    socket.once('connect', onConnect);
    socket.once('error', onError);
    socket.once('close', onClose);
  });
}

/**
 * Pipes client and target both ways. An end from either side is passed on as a half-close (both
 * sockets allow half-open), so request/response protocols that shut down their sending side keep
 * working; an error on either side destroys both.
 */
function pipeBothWays(
  client: Socket,
  upstream: Socket,
  endpoint: EndpointState,
  context: ConnectionContext,
): void {
  endpoint.active.set(client, upstream);
  client.setNoDelay(true);
  upstream.setNoDelay(true);
  let openSockets = 2;
  const settle = (): void => {
    openSockets -= 1;
    if (openSockets > 0) return;
    endpoint.active.delete(client);
    context.onSettled(endpoint);
  };
  const abort = (side: string, error: Error): void => {
    context.logger.log('debug', `${side} connection failed; closing both sides`, {
      endpoint: endpoint.key,
      error: error.message,
    });
    client.destroy();
    upstream.destroy();
  };
  client.on('error', (error) => abort('client', error));
  upstream.on('error', (error) => abort('target', error));
  // A clean close of one side leaves the other to finish flushing; only a failure cuts it short.
  client.on('close', (hadError) => {
    if (hadError) upstream.destroy();
    settle();
  });
  upstream.on('close', (hadError) => {
    if (hadError) client.destroy();
    settle();
  });
  client.on('data', (chunk: Buffer) => {
    endpoint.inboundBytesTotal += chunk.length;
  });
  upstream.on('data', (chunk: Buffer) => {
    endpoint.outboundBytesTotal += chunk.length;
  });
  client.pipe(upstream);
  upstream.pipe(client);
}
