// The demo workload: a small HTTP key-value service that Continuum runs as a plain process in its
// demo and integration tests. It keeps its data in memory and in an append-only file in its working
// directory, and has a health switch that can be persisted, to stage a node-local fault that a
// restart in place does not cure. Node builtins only, so it runs anywhere Node does.
import {
  existsSync,
  fdatasyncSync,
  openSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Largest value a PUT may carry. */
export const valueBytesMax = 1_048_576;
/** Largest body of an admin request, which is a small JSON object. */
const adminBodyBytesMax = 4096;
/** Beyond this many bytes an oversized body is no longer drained; the connection is closed. */
const drainBytesMax = 16 * valueBytesMax;
const keyLengthMax = 1024;
const reasonLengthMax = 200;
/** How long SIGTERM waits for requests in flight before closing their connections. */
const stopGraceMs = 2000;

export const dataFileName = 'kv-data.jsonl';
export const unhealthyMarkerName = 'unhealthy';
export const slowMarkerName = 'slow';
/** The longest delay the slow switch adds to each answer. */
export const slowDelayMsMax = 60_000;

export interface KvServiceOptions {
  port: number;
  /** The IPv4 address to listen on (env HOST; default 127.0.0.1). */
  host?: string;
  /** The working directory that holds the data file and the health marker. */
  dir: string;
  env: NodeJS.ProcessEnv;
}

type LogEntry = { op: 'put'; key: string; value: string } | { op: 'del'; key: string };

/** Replays the data file. A torn last line (the process died mid-append) is skipped, not fatal. */
function loadData(file: string): Map<string, string> {
  const data = new Map<string, string>();
  if (!existsSync(file)) return data;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line === '') continue;
    let entry: LogEntry;
    try {
      entry = JSON.parse(line) as LogEntry;
    } catch {
      continue;
    }
    if (entry.op === 'put') data.set(entry.key, entry.value);
    else if (entry.op === 'del') data.delete(entry.key);
  }
  return data;
}

type BodyResult = { ok: true; body: Buffer } | { ok: false };

/**
 * Reads a body of at most `bytesMax`. An oversized body is drained (so the client gets a clean 413
 * rather than a reset connection) up to `drainBytesMax`, past which the request is abandoned.
 */
function readBody(req: IncomingMessage, bytesMax: number): Promise<BodyResult> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= bytesMax) chunks.push(chunk);
      else if (size > drainBytesMax) {
        req.removeAllListeners('data');
        resolve({ ok: false });
      }
    });
    req.on('end', () =>
      resolve(size <= bytesMax ? { ok: true, body: Buffer.concat(chunks) } : { ok: false }),
    );
    req.on('error', reject);
  });
}

function send(
  res: ServerResponse,
  status: number,
  body = '',
  type = 'text/plain; charset=utf-8',
): void {
  res.writeHead(status, body === '' ? {} : { 'content-type': type });
  res.end(body);
}

function tooLarge(req: IncomingMessage, res: ServerResponse, bytesMax: number): void {
  // If the body was abandoned rather than drained, the connection cannot be reused.
  if (!req.complete) res.setHeader('connection', 'close');
  send(res, 413, `body larger than ${bytesMax} bytes\n`);
}

/**
 * The in-memory map and its append-only file; every change is on file, and made durable (fdatasync,
 * which a replicated volume turns into a flush on every in-sync copy), before it is acknowledged.
 */
class KvStore {
  private readonly data: Map<string, string>;
  private fd: number | undefined;

  constructor(private readonly file: string) {
    this.data = loadData(file);
  }

  private append(entry: LogEntry): void {
    this.fd ??= openSync(this.file, 'a');
    writeSync(this.fd, `${JSON.stringify(entry)}\n`);
    fdatasyncSync(this.fd);
  }

  get(key: string): string | undefined {
    return this.data.get(key);
  }

  keys(): string[] {
    return [...this.data.keys()].sort();
  }

  put(key: string, value: string): void {
    this.append({ op: 'put', key, value });
    this.data.set(key, value);
  }

  delete(key: string): void {
    if (!this.data.has(key)) return;
    this.append({ op: 'del', key });
    this.data.delete(key);
  }
}

/** The health switch. A persisted fault lives in a marker file so that it outlives a restart. */
class HealthSwitch {
  reason: string | undefined;

  constructor(private readonly marker: string) {
    if (existsSync(marker)) this.reason = readFileSync(marker, 'utf8').trim() || 'marker present';
  }

  set(healthy: boolean, reason: string, persist: boolean): void {
    if (healthy) {
      this.reason = undefined;
      rmSync(this.marker, { force: true });
      return;
    }
    this.reason = reason;
    if (persist) writeFileSync(this.marker, `${reason}\n`);
  }
}

/**
 * The slow switch: every answer but the admin ones waits this long, to stage an application that
 * still answers but too slowly (for the latency probe). Persisted like the health switch.
 */
class SlowSwitch {
  delayMs = 0;

  constructor(private readonly marker: string) {
    if (existsSync(marker)) this.delayMs = Number(readFileSync(marker, 'utf8').trim()) || 0;
  }

  set(delayMs: number, persist: boolean): void {
    this.delayMs = delayMs;
    if (delayMs > 0 && persist) writeFileSync(this.marker, `${delayMs}\n`);
    else rmSync(this.marker, { force: true });
  }
}

/** The fields of an admin request's JSON object, or why the body is not one. */
function jsonFields(body: Buffer): Record<string, unknown> | string {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    return 'expected a JSON body';
  }
  if (typeof value !== 'object' || value === null) return 'expected a JSON object';
  return value as Record<string, unknown>;
}

function parseAdminSlow(body: Buffer): { delayMs: number; persist: boolean } | string {
  const fields = jsonFields(body);
  if (typeof fields === 'string') return fields;
  const { delayMs, persist = false } = fields;
  if (
    typeof delayMs !== 'number' ||
    !Number.isInteger(delayMs) ||
    delayMs < 0 ||
    delayMs > slowDelayMsMax
  )
    return `expected "delayMs" as a whole number of milliseconds from 0 to ${slowDelayMsMax}`;
  if (typeof persist !== 'boolean') return 'expected "persist" as true or false';
  return { delayMs, persist };
}

interface AdminHealthBody {
  healthy: boolean;
  reason: string;
  persist: boolean;
}

function parseAdminHealth(body: Buffer): AdminHealthBody | string {
  const fields = jsonFields(body);
  if (typeof fields === 'string') return fields;
  const { healthy, reason = 'switched off by /admin/health', persist = false } = fields;
  if (typeof healthy !== 'boolean') return 'expected "healthy" as true or false';
  if (typeof reason !== 'string' || reason.length > reasonLengthMax || /[\r\n]/.test(reason))
    return `expected "reason" as one line of at most ${reasonLengthMax} characters`;
  if (typeof persist !== 'boolean') return 'expected "persist" as true or false';
  return { healthy, reason, persist };
}

/** Decodes the key of `/kv/<key>`, or says why it is not a key. */
function parseKey(rawKey: string): { key: string } | { error: string } {
  let key: string;
  try {
    key = decodeURIComponent(rawKey);
  } catch {
    return { error: 'expected a percent-encoded key' };
  }
  if (key === '' || key.length > keyLengthMax)
    return { error: `expected a key of 1-${keyLengthMax} characters` };
  return { key };
}

interface Service {
  store: KvStore;
  health: HealthSwitch;
  slow: SlowSwitch;
  info: Record<string, unknown>;
}

async function handleKey(
  service: Service,
  req: IncomingMessage,
  res: ServerResponse,
  rawKey: string,
): Promise<void> {
  const parsed = parseKey(rawKey);
  if ('error' in parsed) return send(res, 400, `${parsed.error}\n`);
  const { key } = parsed;
  if (req.method === 'GET') {
    const value = service.store.get(key);
    return value === undefined ? send(res, 404, 'no such key\n') : send(res, 200, value);
  }
  if (req.method === 'PUT') {
    const body = await readBody(req, valueBytesMax);
    if (!body.ok) return tooLarge(req, res, valueBytesMax);
    service.store.put(key, body.body.toString('utf8'));
    return send(res, 204);
  }
  if (req.method === 'DELETE') {
    service.store.delete(key);
    return send(res, 204);
  }
  res.setHeader('allow', 'GET, PUT, DELETE');
  send(res, 405, 'expected GET, PUT or DELETE\n');
}

/** An admin switch: a small JSON body, parsed (400 with the reason) and applied (204). */
async function handleAdmin<T>(
  req: IncomingMessage,
  res: ServerResponse,
  parse: (body: Buffer) => T | string,
  apply: (value: T) => void,
): Promise<void> {
  const body = await readBody(req, adminBodyBytesMax);
  if (!body.ok) return tooLarge(req, res, adminBodyBytesMax);
  const parsed = parse(body.body);
  if (typeof parsed === 'string') return send(res, 400, `${parsed}\n`);
  apply(parsed);
  send(res, 204);
}

async function route(service: Service, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0] ?? '/';
  const get = req.method === 'GET';
  if (path === '/admin/slow' && req.method === 'POST')
    return handleAdmin(req, res, parseAdminSlow, (v) => service.slow.set(v.delayMs, v.persist));
  if (service.slow.delayMs > 0 && !path.startsWith('/admin/'))
    await new Promise((resolve) => setTimeout(resolve, service.slow.delayMs));
  if (path.startsWith('/kv/')) return handleKey(service, req, res, path.slice('/kv/'.length));
  if (path === '/kv' && get)
    return send(res, 200, JSON.stringify(service.store.keys()), 'application/json');
  if (path === '/health' && get) {
    const { reason } = service.health;
    return reason === undefined ? send(res, 200, 'ok') : send(res, 503, `unhealthy: ${reason}`);
  }
  if (path === '/info' && get)
    return send(
      res,
      200,
      JSON.stringify({ ...service.info, slowDelayMs: service.slow.delayMs }),
      'application/json',
    );
  if (path === '/admin/health' && req.method === 'POST')
    return handleAdmin(req, res, parseAdminHealth, (v) =>
      service.health.set(v.healthy, v.reason, v.persist),
    );
  send(res, 404, 'not found\n');
}

/** Starts the service; resolves once it listens. */
export function startKvService(options: KvServiceOptions): Promise<Server> {
  const epoch = Number(options.env.CONTINUUM_EPOCH);
  const service: Service = {
    store: new KvStore(join(options.dir, dataFileName)),
    health: new HealthSwitch(join(options.dir, unhealthyMarkerName)),
    slow: new SlowSwitch(join(options.dir, slowMarkerName)),
    info: {
      pid: process.pid,
      node: options.env.CONTINUUM_NODE ?? null,
      workload: options.env.CONTINUUM_WORKLOAD ?? null,
      epoch: options.env.CONTINUUM_EPOCH === undefined || !Number.isFinite(epoch) ? null : epoch,
      startedAt: new Date().toISOString(),
    },
  };
  const server = createServer((req, res) => {
    route(service, req, res).catch((err: unknown) => {
      // A failed write to the data file is this request's failure, not the process's.
      if (!res.headersSent) send(res, 500, `internal error: ${String(err)}\n`);
      else res.destroy();
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '127.0.0.1', () => resolve(server));
  });
}

/** Parses PORT; the service has no default port, since Continuum always assigns one. */
export function parsePort(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d{1,5}$/.test(value)) return undefined;
  const port = Number(value);
  return port >= 1 && port <= 65535 ? port : undefined;
}

async function main(): Promise<void> {
  const port = parsePort(process.env.PORT);
  if (port === undefined) {
    process.stderr.write(
      `kv-service: expected env PORT as a TCP port between 1 and 65535, got ${JSON.stringify(process.env.PORT ?? null)}\n`,
    );
    process.exit(2);
  }
  const host = process.env.HOST ?? '127.0.0.1';
  if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(host)) {
    process.stderr.write(
      `kv-service: expected env HOST as an IPv4 address, got ${JSON.stringify(host)}\n`,
    );
    process.exit(2);
  }
  let server: Server;
  try {
    server = await startKvService({ port, host, dir: process.cwd(), env: process.env });
  } catch (err) {
    process.stderr.write(`kv-service: cannot listen on ${host}:${port}: ${String(err)}\n`);
    process.exit(1);
  }
  const stop = () => {
    // close() lets requests in flight finish and drops idle keep-alive connections; a client that
    // keeps a connection busy past the grace period is cut off so that SIGTERM always ends us.
    server.close(() => process.exit(0));
    setTimeout(() => server.closeAllConnections(), stopGraceMs).unref();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  process.stdout.write(
    `kv-service listening on ${host}:${port} pid=${process.pid} epoch=${process.env.CONTINUUM_EPOCH ?? '-'}\n`,
  );
}

// Runs when executed directly (`node dist/demo/kv-service.js`), not when imported.
const entry = process.argv[1];
if (entry !== undefined && realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url))) {
  await main();
}
