// Tests of the route client against a small node:http SSE server standing in for the controller:
// tables arrive, a dropped stream is followed again, the cache serves while no controller answers,
// bad tables and refusals are logged and survived, and a list of controllers is tried in turn.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import type { RouteTable } from '../core/model.js';
import { RouteClient, type RouteClientOptions } from './route-client.js';
import {
  captureLogger,
  ControllerStub,
  freePort,
  loopback,
  route,
  waitFor,
} from './test-support.js';

const token = 'test-token';
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function table(revision: number, targetPort: number | null = 9000): RouteTable {
  return { revision, routes: [route(8000, targetPort === null ? null : { port: targetPort })] };
}

async function startStub(): Promise<ControllerStub> {
  const stub = await new ControllerStub().start();
  cleanups.push(() => stub.stop());
  return stub;
}

async function cacheFile(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'continuum-routes-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return join(dir, 'nested', 'routes.json');
}

async function follow(urls: string[], options: Partial<RouteClientOptions> = {}) {
  const tables: RouteTable[] = [];
  const logger = captureLogger();
  const client = new RouteClient({
    controllerUrls: urls,
    token,
    cacheFile: options.cacheFile ?? (await cacheFile()),
    logger,
    onTable: (received) => tables.push(received),
    reconnectDelayMsInitial: 10,
    reconnectDelayMsMax: 40,
    ...options,
  });
  cleanups.push(() => client.close());
  await client.start();
  return { client, tables, logger, revisions: () => tables.map((t) => t.revision) };
}

describe('RouteClient', () => {
  it('receives tables with the bearer token and writes the last one to the cache', async () => {
    const stub = await startStub();
    stub.current = table(1);
    const file = await cacheFile();
    const { client, revisions } = await follow([stub.url], { cacheFile: file });
    await waitFor('revision 1', () => revisions().includes(1));
    stub.publish(table(2, 9001));
    await waitFor('revision 2', () => revisions().includes(2));
    assert.deepEqual(revisions(), [1, 2]);
    assert.equal(stub.requests[0]?.authorization, `Bearer ${token}`);
    assert.deepEqual(client.table(), table(2, 9001));
    await client.close();
    assert.deepEqual(JSON.parse(await readFile(file, 'utf8')), table(2, 9001));
  });

  it('follows the stream again after the controller drops it, and gets the new table', async () => {
    const stub = await startStub();
    stub.current = table(1);
    const { revisions, logger } = await follow([stub.url]);
    await waitFor('revision 1', () => revisions().includes(1));
    stub.current = table(2, null);
    stub.dropStreams();
    await waitFor('revision 2', () => revisions().includes(2));
    assert.equal(stub.requests.length, 2);
    assert.ok(logger.has('route stream ended') || logger.has('cannot follow routes'));
  });

  it('routes on the cached table at start while no controller answers', async () => {
    const file = await cacheFile();
    const stub = await startStub();
    stub.current = table(7, 9007);
    const first = await follow([stub.url], { cacheFile: file });
    await waitFor('revision 7', () => first.revisions().includes(7));
    await first.client.close();
    await stub.stop();

    const second = await follow([stub.url], { cacheFile: file });
    assert.deepEqual(second.tables, [table(7, 9007)]);
    await waitFor('a failed attempt to be logged', () => second.logger.has('cannot follow routes'));
    assert.deepEqual(second.client.table(), table(7, 9007));
  });

  it('ignores an invalid cache file and starts with no table', async () => {
    const file = await cacheFile();
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, '{"revision": "nope"}');
    const { tables, logger } = await follow([`http://${loopback}:${await freePort()}`], {
      cacheFile: file,
    });
    assert.deepEqual(tables, []);
    assert.ok(logger.has('ignoring an invalid cached route table'));
  });

  it('logs and ignores malformed tables, and keeps following the stream', async () => {
    const stub = await startStub();
    stub.current = table(1);
    const { revisions, logger } = await follow([stub.url]);
    await waitFor('revision 1', () => revisions().includes(1));
    stub.send(null, '{"revision": 2, "routes": [');
    stub.send(null, JSON.stringify({ revision: 3, routes: [{ workload: 'web' }] }));
    stub.publish(table(4));
    await waitFor('revision 4', () => revisions().includes(4));
    assert.deepEqual(revisions(), [1, 4]);
    const malformed = logger.entries.filter(
      (e) => e.message === 'ignoring a malformed route table',
    );
    assert.equal(malformed.length, 2);
    assert.match(String(malformed[0]?.fields.error), /not JSON/);
    assert.match(String(malformed[1]?.fields.error), /routes\.0\./);
    assert.equal(stub.requests.length, 1);
  });

  it('logs a 401 and retries with growing pauses until the controller accepts', async () => {
    const stub = await startStub();
    stub.current = table(1);
    stub.statuses = [401, 401, 401, 401];
    const { revisions, logger } = await follow([stub.url], {
      reconnectDelayMsInitial: 20,
      reconnectDelayMsMax: 60,
    });
    await waitFor('revision 1', () => revisions().includes(1));
    const refusals = logger.entries.filter((e) => e.message.includes('controller refused'));
    assert.equal(refusals.length, 4);
    assert.equal(refusals[0]?.fields.status, 401);
    const gaps = stub.requests.slice(1).map((r, i) => r.at - (stub.requests[i]?.at ?? 0));
    // Lower bounds only (timers never fire early by more than a millisecond; they may fire late).
    [20, 40, 60, 60].forEach((pauseMs, i) => assert.ok((gaps[i] ?? 0) >= pauseMs - 2, `gap ${i}`));
  });

  it('tries the next controller at once when the first is down', async () => {
    const down = `http://${loopback}:${await freePort()}`;
    const stub = await startStub();
    stub.current = table(3);
    const { revisions, logger } = await follow([down, stub.url], {
      reconnectDelayMsInitial: 60_000,
      reconnectDelayMsMax: 60_000,
    });
    await waitFor('revision 3', () => revisions().includes(3));
    assert.ok(logger.entries.some((e) => e.fields.url === `${down}/v1/routes/stream`));
  });

  it('ignores a table older than the one in force', async () => {
    const stub = await startStub();
    stub.current = table(5);
    const { revisions, logger } = await follow([stub.url]);
    await waitFor('revision 5', () => revisions().includes(5));
    stub.publish(table(4));
    stub.publish(table(6));
    await waitFor('revision 6', () => revisions().includes(6));
    assert.deepEqual(revisions(), [5, 6]);
    assert.ok(logger.has('older than the one in force'));
  });

  it('validates its options and names the bad value', () => {
    const base = {
      token,
      cacheFile: '/nonexistent/routes.json',
      logger: captureLogger(),
      onTable: () => undefined,
    };
    assert.throws(() => new RouteClient({ ...base, controllerUrls: [] }), /controllerUrls/);
    assert.throws(
      () => new RouteClient({ ...base, controllerUrls: ['ftp://x'] }),
      /controllerUrls.*"ftp:\/\/x"/,
    );
    assert.throws(
      () => new RouteClient({ ...base, controllerUrls: ['http://x'], reconnectDelayMsInitial: 0 }),
      { name: 'RangeError', message: /reconnectDelayMsInitial.*got 0/ },
    );
  });
});
