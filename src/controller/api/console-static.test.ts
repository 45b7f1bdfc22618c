// Serving the built console: content types and cache headers, traversal refused (plain and
// encoded), a clear 404 when the console was not built, and the API beside it left as it was.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Hono } from 'hono';
import { consoleDirCandidates, fileWithin, mountConsole } from './console-static.js';
import { startInProcessApi, testApiToken, type InProcessApi } from './test-support.js';

describe('console static files', () => {
  const base = mkdtempSync(join(tmpdir(), 'continuum-console-static-'));
  const dir = join(base, 'console');
  let app: Hono;

  before(() => {
    mkdirSync(join(dir, 'assets'), { recursive: true });
    writeFileSync(join(dir, 'index.html'), '<!doctype html><title>console</title>');
    writeFileSync(join(dir, 'assets', 'index-abc.js'), 'console.log(1)');
    writeFileSync(join(dir, 'assets', 'index-abc.css'), 'body{}');
    writeFileSync(join(dir, 'assets', 'index-abc.js.map'), '{}');
    writeFileSync(join(base, 'secret.txt'), 'not for the browser');
    app = new Hono();
    mountConsole(app, { dir });
  });
  after(() => rmSync(base, { recursive: true, force: true }));

  it('serves index.html at / with a content type, revalidation and a content security policy', async () => {
    const response = await app.request('/');
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.equal(response.headers.get('cache-control'), 'no-cache');
    assert.match(response.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
    assert.match(await response.text(), /<title>console<\/title>/);
  });

  it('serves hashed assets with their content types, cached for good', async () => {
    const cases: [string, string][] = [
      ['/assets/index-abc.js', 'text/javascript; charset=utf-8'],
      ['/assets/index-abc.css', 'text/css; charset=utf-8'],
      ['/assets/index-abc.js.map', 'application/json; charset=utf-8'],
    ];
    for (const [path, type] of cases) {
      const response = await app.request(path);
      assert.equal(response.status, 200, path);
      assert.equal(response.headers.get('content-type'), type, path);
      assert.match(response.headers.get('cache-control') ?? '', /immutable/, path);
      assert.equal(response.headers.get('x-content-type-options'), 'nosniff');
    }
    assert.equal((await app.request('/assets/missing.js')).status, 404);
  });

  it('refuses paths that leave the console directory, plain or encoded', async () => {
    for (const path of [
      '/assets/../../secret.txt',
      '/assets/..%2f..%2fsecret.txt',
      '/assets/%2e%2e/%2e%2e/secret.txt',
      '/assets/..%5c..%5csecret.txt',
      '/assets/%00index-abc.js',
    ]) {
      const response = await app.request(`http://localhost${path}`);
      const text = await response.text();
      assert.ok(response.status === 400 || response.status === 404, `${path}: ${response.status}`);
      assert.doesNotMatch(text, /not for the browser/, path);
    }
    assert.equal(fileWithin(dir, 'assets/../../secret.txt'), undefined);
    assert.equal(fileWithin(dir, 'assets/%2e%2e/x'), undefined);
    assert.equal(fileWithin(dir, 'assets/a%E0%A4%A.js'), undefined, 'malformed encoding');
    assert.equal(fileWithin(dir, 'assets/index-abc.js'), join(dir, 'assets', 'index-abc.js'));
  });

  it('answers a clear 404 when the console was not built', async () => {
    const bare = new Hono();
    mountConsole(bare, { dir: join(base, 'nowhere') });
    for (const path of ['/', '/assets/index-abc.js']) {
      const response = await bare.request(path);
      assert.equal(response.status, 404);
      assert.match(await response.text(), /console was not built.*npm run build/);
    }
  });

  it('looks beside the compiled module first, then in the repository dist/', () => {
    const [beside, repo] = consoleDirCandidates(
      'file:///pkg/dist/controller/api/console-static.js',
    );
    assert.equal(beside, '/pkg/dist/console/');
    assert.equal(repo, '/pkg/dist/console/', 'a second look in the same place is harmless');
    const fromSource = consoleDirCandidates('file:///repo/src/controller/api/console-static.ts');
    assert.equal(fromSource[1], '/repo/dist/console/');
  });
});

describe('the API with the console mounted', () => {
  const token = testApiToken;
  let api: InProcessApi;
  let app: InProcessApi['app'];

  before(async () => {
    api = await startInProcessApi();
    app = api.app;
  });
  after(() => api.close());

  it('keeps /healthz and /v1 as they were: JSON, and the token still required', async () => {
    const health = await app.request('/healthz');
    assert.equal(health.status, 200);
    assert.equal(((await health.json()) as { ok: boolean }).ok, true);
    const refused = await app.request('/v1/nodes');
    assert.equal(refused.status, 401);
    const nodes = await app.request('/v1/nodes', { headers: { authorization: `Bearer ${token}` } });
    assert.equal(nodes.status, 200);
    const unknown = await app.request('/v1/nothing', {
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(
      ((await unknown.json()) as { error: { code: string } }).error.code,
      'CONTINUUM_ERR_NOT_FOUND',
    );
  });

  it('serves the console at / without a token (the page itself holds no cluster data)', async () => {
    const page = await app.request('/');
    assert.ok(page.status === 200 || page.status === 404, `status ${page.status}`);
    assert.match(page.headers.get('content-type') ?? '', /^text\/(html|plain)/);
  });
});
