// Follows the controller's route table over its Server-Sent Events stream (GET /v1/routes/stream,
// `event: routes` + `data: <RouteTable JSON>`), trying each controller URL in turn with backoff.
// The last table stays in force for as long as no controller answers, indefinitely on purpose:
// the controller is outside the data path (ARCHITECTURE.md section 2), and dropping routes because
// it is down would turn a control-plane outage into a data-plane one.
import type { RouteTable } from '../core/model.js';
import type { Logger } from '../core/ports.js';
import { loadRouteCache, RouteCacheWriter } from './route-cache.js';
import { parseRouteTable } from './route-schema.js';
import { SseParser, type SseEvent } from './sse-parser.js';

export interface RouteClientOptions {
  /** Controllers to follow, tried in turn; one is enough. */
  controllerUrls: string[];
  token: string;
  /** Where the last table is kept for a restart while no controller answers. */
  cacheFile: string;
  logger: Logger;
  /** Called with each new table, the cached one first; must not throw (errors are logged). */
  onTable(table: RouteTable): void;
  /** First pause after a failed round of all controllers; doubles up to reconnectDelayMsMax. */
  reconnectDelayMsInitial?: number;
  reconnectDelayMsMax?: number;
  /**
   * A stream silent for this long is dropped and followed again (the controller sends a keep-alive
   * comment every second), so a controller host that vanished without a reset is noticed, as
   * agents notice it (3 s). This only reconnects: the table in force is kept.
   */
  streamIdleTimeoutMs?: number;
  /** The longest SSE event accepted, in UTF-16 characters. */
  eventCharsMax?: number;
}

type RouteClientLimits = Required<
  Pick<
    RouteClientOptions,
    'reconnectDelayMsInitial' | 'reconnectDelayMsMax' | 'streamIdleTimeoutMs' | 'eventCharsMax'
  >
>;

export const routeClientDefaults: RouteClientLimits = {
  reconnectDelayMsInitial: 100,
  reconnectDelayMsMax: 2000,
  streamIdleTimeoutMs: 3000,
  eventCharsMax: 16 * 1024 * 1024,
};

export const routesStreamPath = '/v1/routes/stream';

export class RouteClient {
  readonly limits: RouteClientLimits;
  private readonly options: RouteClientOptions;
  private readonly urls: string[];
  private readonly cache: RouteCacheWriter;
  private lastTable: RouteTable | null = null;
  private lastEncoded = '';
  private closed = false;
  private running: Promise<void> | null = null;
  private abortStream: AbortController | null = null;
  private wakeSleep: (() => void) | null = null;

  constructor(options: RouteClientOptions) {
    this.limits = validateLimits(options);
    this.urls = validateUrls(options.controllerUrls);
    this.options = options;
    this.cache = new RouteCacheWriter(options.cacheFile, options.logger);
  }

  /** The table in force: the last one delivered, from a controller or the cache. */
  table(): RouteTable | null {
    return this.lastTable;
  }

  /** Delivers the cached table, if any, then follows the controllers in the background. */
  async start(): Promise<void> {
    if (this.running !== null || this.closed) return;
    const cached = await loadRouteCache(this.options.cacheFile, this.options.logger);
    if (cached !== null && !this.closed) {
      this.options.logger.log(
        'info',
        'routing on the cached route table until a controller answers',
        {
          revision: cached.revision,
          routes: cached.routes.length,
        },
      );
      this.deliver(cached, { fromCache: true });
    }
    if (this.closed) return;
    this.running = this.run();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.abortStream?.abort(new Error('route client closed'));
    this.wakeSleep?.();
    await this.running;
    await this.cache.flush();
  }

  private async run(): Promise<void> {
    let index = 0;
    let failuresInRow = 0;
    let delayMs = this.limits.reconnectDelayMsInitial;
    while (!this.closed) {
      const url = this.urls[index] as string;
      const received = await this.follow(url);
      if (this.closed) return;
      if (received) {
        // This controller was serving: reconnect to it first, after the shortest pause.
        failuresInRow = 0;
        delayMs = this.limits.reconnectDelayMsInitial;
        await this.sleep(delayMs);
        continue;
      }
      failuresInRow += 1;
      index = (index + 1) % this.urls.length;
      // Try the next controller at once; pause only after every one of them has failed.
      if (failuresInRow % this.urls.length !== 0) continue;
      await this.sleep(delayMs);
      delayMs = Math.min(delayMs * 2, this.limits.reconnectDelayMsMax);
    }
  }

  /** Follows one controller's stream until it ends; true if it delivered at least one table. */
  private async follow(baseUrl: string): Promise<boolean> {
    const url = `${baseUrl.replace(/\/+$/, '')}${routesStreamPath}`;
    const abort = new AbortController();
    this.abortStream = abort;
    let idleTimer: NodeJS.Timeout | undefined;
    const resetIdleTimer = (): void => {
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => {
        abort.abort(
          new Error(`no data for streamIdleTimeoutMs (${this.limits.streamIdleTimeoutMs})`),
        );
      }, this.limits.streamIdleTimeoutMs);
    };
    let received = false;
    try {
      resetIdleTimer();
      const response = await fetch(url, {
        headers: { authorization: `Bearer ${this.options.token}`, accept: 'text/event-stream' },
        signal: abort.signal,
      });
      const contentType = response.headers.get('content-type') ?? '';
      if (!response.ok || response.body === null || !contentType.startsWith('text/event-stream')) {
        const hint = response.status === 401 ? ' (check the API token)' : '';
        this.options.logger.log('warn', `controller refused the route stream${hint}`, {
          url,
          status: response.status,
          contentType,
        });
        await response.body?.cancel();
        return false;
      }
      this.options.logger.log('info', 'following routes', { url });
      const parser = new SseParser(this.limits.eventCharsMax);
      const decoder = new TextDecoder();
      // Node's web streams are async iterable; the DOM-less typings do not say so.
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        resetIdleTimer();
        for (const event of parser.push(decoder.decode(chunk, { stream: true }))) {
          if (this.handleEvent(event, url)) received = true;
        }
      }
      this.options.logger.log('info', 'route stream ended', { url });
    } catch (error) {
      if (!this.closed) {
        this.options.logger.log('warn', 'cannot follow routes', { url, error: describe(error) });
      }
    } finally {
      clearTimeout(idleTimer);
      this.abortStream = null;
    }
    return received;
  }

  /** True when the event carried a valid table (new or not). */
  private handleEvent(event: SseEvent, url: string): boolean {
    if (event.event !== 'routes') {
      this.options.logger.log('debug', 'ignoring an unknown event', { url, event: event.event });
      return false;
    }
    const parsed = parseRouteTable(event.data);
    if (!parsed.ok) {
      this.options.logger.log('warn', 'ignoring a malformed route table', {
        url,
        error: parsed.error,
      });
      return false;
    }
    this.deliver(parsed.table, { fromCache: false });
    return true;
  }

  private deliver(table: RouteTable, { fromCache }: { fromCache: boolean }): void {
    if (this.lastTable !== null && table.revision < this.lastTable.revision) {
      this.options.logger.log('warn', 'ignoring a route table older than the one in force', {
        revision: table.revision,
        revisionInForce: this.lastTable.revision,
      });
      return;
    }
    const encoded = JSON.stringify(table);
    if (encoded === this.lastEncoded) return;
    this.lastTable = table;
    this.lastEncoded = encoded;
    try {
      this.options.onTable(table);
    } catch (error) {
      this.options.logger.log('error', 'onTable failed', { error: describe(error) });
    }
    if (!fromCache) this.cache.write(table);
  }

  private sleep(delayMs: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.wakeSleep = null;
        resolve();
      };
      const timer = setTimeout(wake, delayMs);
      this.wakeSleep = wake;
    });
  }
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  // fetch() reports "fetch failed" and puts the reason (ECONNREFUSED, ...) in `cause`.
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
  return `${error.message}${cause}`;
}

function validateUrls(urls: string[]): string[] {
  if (urls.length === 0) throw new RangeError('controllerUrls: expected at least one URL');
  for (const url of urls) {
    let protocol = '';
    try {
      protocol = new URL(url).protocol;
    } catch {
      // Reported below with the value.
    }
    if (protocol !== 'http:' && protocol !== 'https:') {
      throw new RangeError(
        `controllerUrls: expected http:// or https:// URLs, got ${JSON.stringify(url)}`,
      );
    }
  }
  return [...urls];
}

function validateLimits(options: RouteClientOptions): RouteClientLimits {
  const limits = { ...routeClientDefaults };
  for (const name of Object.keys(routeClientDefaults) as (keyof RouteClientLimits)[]) {
    const value = options[name];
    if (value === undefined) continue;
    if (!Number.isInteger(value) || value < 1 || value > 2_147_483_647) {
      throw new RangeError(
        `${name}: expected an integer from 1 to 2147483647, got ${String(value)}`,
      );
    }
    limits[name] = value;
  }
  if (limits.reconnectDelayMsMax < limits.reconnectDelayMsInitial) {
    throw new RangeError(
      `reconnectDelayMsMax: expected at least reconnectDelayMsInitial (${limits.reconnectDelayMsInitial}), got ${limits.reconnectDelayMsMax}`,
    );
  }
  return limits;
}
