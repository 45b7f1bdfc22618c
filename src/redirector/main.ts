// Starts a redirector daemon: a RouteClient following the controllers feeds a Redirector. The CLI
// command `continuum redirector` calls runRedirector and closes it on SIGINT or SIGTERM.
import type { Logger } from '../core/ports.js';
import {
  listenMetrics,
  parseMetricsListen,
  type MetricsListener,
} from '../platform/metrics-listener.js';
import { RedirectorMetrics } from './redirector-metrics.js';
import { Redirector, type RedirectorOptions } from './proxy.js';
import { RouteClient, type RouteClientOptions } from './route-client.js';

export interface RunRedirectorOptions
  extends
    Omit<RedirectorOptions, 'logger'>,
    Pick<
      RouteClientOptions,
      'reconnectDelayMsInitial' | 'reconnectDelayMsMax' | 'streamIdleTimeoutMs' | 'eventCharsMax'
    > {
  controllerUrls: string[];
  token: string;
  cacheFile: string;
  logger: Logger;
  /** Serve Prometheus metrics at http://<this>/metrics, "host:port" (default: not at all). */
  metricsListen?: string;
}

export interface RunningRedirector {
  redirector: Redirector;
  routeClient: RouteClient;
  /** Where the metrics are served, with metricsListen. */
  metricsUrl?: string;
  /** Stops following routes, then stops listening and destroys every connection. */
  close(): Promise<void>;
}

export async function runRedirector(options: RunRedirectorOptions): Promise<RunningRedirector> {
  const { controllerUrls, token, cacheFile, logger } = options;
  if (options.metricsListen !== undefined) parseMetricsListen(options.metricsListen);
  // Both constructors validate their options, so a bad value fails here before anything listens.
  const redirector = new Redirector({
    logger: logger.child({ component: 'redirector' }),
    connectWaitMs: options.connectWaitMs,
    pendingConnectionsMax: options.pendingConnectionsMax,
    connectAttemptTimeoutMs: options.connectAttemptTimeoutMs,
    retryDelayMs: options.retryDelayMs,
    listenRetryDelayMs: options.listenRetryDelayMs,
  });
  const routeClient = new RouteClient({
    controllerUrls,
    token,
    cacheFile,
    logger: logger.child({ component: 'route-client' }),
    onTable: (table) => redirector.applyRoutes(table),
    reconnectDelayMsInitial: options.reconnectDelayMsInitial,
    reconnectDelayMsMax: options.reconnectDelayMsMax,
    streamIdleTimeoutMs: options.streamIdleTimeoutMs,
    eventCharsMax: options.eventCharsMax,
  });
  await routeClient.start();
  let metricsListener: MetricsListener | undefined;
  try {
    if (options.metricsListen !== undefined) {
      const metrics = new RedirectorMetrics(() => redirector.stats());
      metricsListener = await listenMetrics(options.metricsListen, metrics, logger);
    }
  } catch (err) {
    await routeClient.close();
    await redirector.close();
    throw err;
  }
  let closing: Promise<void> | null = null;
  return {
    redirector,
    routeClient,
    ...(metricsListener === undefined ? {} : { metricsUrl: metricsListener.url }),
    close: () =>
      (closing ??= (async () => {
        await metricsListener?.close();
        await routeClient.close();
        await redirector.close();
      })()),
  };
}
