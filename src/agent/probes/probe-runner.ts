// The real probe runner: one TCP, HTTP or exec check against a local instance. A check never
// throws; every failure comes back as { ok: false, error } in words an operator understands.
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { performance } from 'node:perf_hooks';
import { parseHostPort, type ProbeSpec } from '../../core/probe-spec.js';
import { workloadEnvironment } from '../drivers/process/environment.js';
import type { ProbeRunner, ProbeTarget } from './probe.js';

/** Most of an HTTP body read to look for bodyMatch; the rest is not read. */
export const httpBodyBytesMax = 64 * 1024;
/** Characters of an exec probe's output quoted in its error. */
export const execOutputTailChars = 200;

type TcpProbe = Extract<ProbeSpec, { type: 'tcp' }>;
type HttpProbe = Extract<ProbeSpec, { type: 'http' }>;
type ExecProbe = Extract<ProbeSpec, { type: 'exec' }>;
type DependencyProbe = Extract<ProbeSpec, { type: 'dependency' }>;

export const realProbeRunner: ProbeRunner = {
  async run(probe, target, signal) {
    const startedAt = performance.now();
    const failure = await check(probe, target, signal).catch((err: unknown) =>
      err instanceof Error ? err.message : String(err),
    );
    const durationMs = Math.round((performance.now() - startedAt) * 10) / 10;
    if (failure === undefined) return { ok: true, durationMs };
    if (failure instanceof AnsweredWrongly) {
      return { ok: false, durationMs, error: failure.message, answered: true };
    }
    return { ok: false, durationMs, error: failure, answered: false };
  },
};

/**
 * A failure where the target did answer, only not as expected (status, body, exit code). The
 * agent counts these even while an instance starts; a plain string means nobody answered.
 */
class AnsweredWrongly {
  constructor(readonly message: string) {}
}

type Failure = string | AnsweredWrongly;

/** Resolves undefined when healthy, or why it is not. */
function check(
  probe: ProbeSpec,
  target: ProbeTarget,
  signal?: AbortSignal,
): Promise<Failure | undefined> {
  if (signal?.aborted) return Promise.resolve('probe cancelled');
  switch (probe.type) {
    case 'tcp':
      return checkTcp(probe, target, signal);
    case 'http':
      return checkHttp(probe, target, signal);
    case 'exec':
      return checkExec(probe, target, signal);
    case 'dependency':
      return checkDependency(probe, signal);
    case 'resource':
      // Measured by the instance runner from the driver's stats (resource-check.ts).
      return Promise.resolve('a resource probe is judged from the driver, not run');
  }
}

/** Something the instance needs, reached from this node: a TCP connect or an HTTP GET. */
function checkDependency(
  probe: DependencyProbe,
  signal?: AbortSignal,
): Promise<Failure | undefined> {
  if (probe.http !== undefined) return fetchAndJudge(probe.http, probe, signal);
  const target = parseHostPort(probe.tcp ?? '');
  if (target === undefined) return Promise.resolve(`no target: ${String(probe.tcp)}`);
  return connectTcp(target.host, target.port, probe.timeoutMs, signal);
}

function endpointPort(endpoint: string, target: ProbeTarget): number | string {
  const port = target.ports[endpoint];
  if (port !== undefined) return port;
  const known = Object.keys(target.ports);
  return `endpoint "${endpoint}" has no port on this instance (known: ${known.length === 0 ? 'none' : known.join(', ')})`;
}

function checkTcp(
  probe: TcpProbe,
  target: ProbeTarget,
  signal?: AbortSignal,
): Promise<Failure | undefined> {
  const port = endpointPort(probe.endpoint, target);
  if (typeof port === 'string') return Promise.resolve(port);
  return connectTcp(target.host, port, probe.timeoutMs, signal);
}

function connectTcp(
  host: string,
  port: number,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<Failure | undefined> {
  const address = `${host}:${port}`;
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const finish = (error: string | undefined): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve(error);
    };
    const onAbort = (): void => finish('probe cancelled');
    const timer = setTimeout(
      () => finish(`tcp ${address}: no connection within ${timeoutMs} ms`),
      timeoutMs,
    );
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => finish(undefined));
    socket.once('error', (err: NodeJS.ErrnoException) =>
      finish(`tcp ${address}: ${err.code ?? err.message}`),
    );
  });
}

async function checkHttp(
  probe: HttpProbe,
  target: ProbeTarget,
  signal?: AbortSignal,
): Promise<Failure | undefined> {
  const port = endpointPort(probe.endpoint, target);
  if (typeof port === 'string') return port;
  return fetchAndJudge(`http://${target.host}:${port}${probe.path}`, probe, signal);
}

/** GET url; healthy when the status is expected and the body holds bodyMatch (if any). */
async function fetchAndJudge(
  url: string,
  probe: { timeoutMs: number; expectStatus: number; bodyMatch?: string },
  signal?: AbortSignal,
): Promise<Failure | undefined> {
  const timeout = AbortSignal.timeout(probe.timeoutMs);
  const signals = signal === undefined ? [timeout] : [timeout, signal];
  try {
    // Redirects are not followed: a health endpoint that redirects is reported as such.
    const response = await fetch(url, { signal: AbortSignal.any(signals), redirect: 'manual' });
    if (response.status !== probe.expectStatus) {
      await response.body?.cancel();
      return new AnsweredWrongly(
        `http GET ${url}: status ${response.status}, expected ${probe.expectStatus}`,
      );
    }
    if (probe.bodyMatch === undefined) {
      await response.body?.cancel();
      return undefined;
    }
    const body = await readBodyPrefix(response, httpBodyBytesMax);
    if (body.includes(probe.bodyMatch)) return undefined;
    return new AnsweredWrongly(
      `http GET ${url}: body does not contain ${JSON.stringify(probe.bodyMatch)} (first ${httpBodyBytesMax} bytes read)`,
    );
  } catch (err) {
    if (timeout.aborted) return `http GET ${url}: no answer within ${probe.timeoutMs} ms`;
    if (signal?.aborted) return 'probe cancelled';
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    return `http GET ${url}: ${cause?.code ?? cause?.message ?? (err as Error).message}`;
  }
}

async function readBodyPrefix(response: Response, bytesMax: number): Promise<string> {
  if (response.body === null) return '';
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  while (total < bytesMax) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    total += value.length;
  }
  await reader.cancel();
  return Buffer.concat(chunks).subarray(0, bytesMax).toString('utf8');
}

function checkExec(
  probe: ExecProbe,
  target: ProbeTarget,
  signal?: AbortSignal,
): Promise<Failure | undefined> {
  const [file, ...args] = probe.command;
  const what = `exec ${probe.command.join(' ')}`;
  return new Promise((resolve) => {
    // Its own process group, so a timeout ends whatever the check started, not just its shell.
    const child = spawn(file ?? '', args, {
      cwd: target.cwd,
      env: workloadEnvironment(target.env),
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const keep = (chunk: Buffer): void => {
      output = (output + chunk.toString('utf8')).slice(-execOutputTailChars);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const killGroup = (): void => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    };
    const tail = (): string => (output.trim() === '' ? '' : `; output: ${output.trim()}`);
    let settled = false;
    const finish = (error: Failure | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      child.stdout.destroy();
      child.stderr.destroy();
      resolve(error);
    };
    const onAbort = (): void => {
      killGroup();
      finish('probe cancelled');
    };
    // The verdict is known at exit, but the output is complete only once the pipes close; a
    // background process holding them open must not turn a finished check into a timeout.
    // A non-zero exit is an answer (the check ran and said no), unlike a timeout.
    let verdict: string | undefined;
    const timer = setTimeout(() => {
      if (verdict !== undefined) return finish(new AnsweredWrongly(`${verdict}${tail()}`));
      killGroup();
      finish(`${what}: did not finish within ${probe.timeoutMs} ms${tail()}`);
    }, probe.timeoutMs);
    signal?.addEventListener('abort', onAbort, { once: true });
    child.once('error', (err) => finish(`${what}: ${err.message}`));
    child.once('exit', (code, exitSignal) => {
      if (code === 0) return finish(undefined);
      verdict = `${what}: ${code === null ? `killed by ${exitSignal}` : `exit code ${code}`}`;
    });
    child.once('close', () => {
      if (verdict !== undefined) finish(new AnsweredWrongly(`${verdict}${tail()}`));
    });
  });
}
