// The API in-process (Hono app.request): tokens are required, malformed bodies and specs get a
// 400 with a stable code and located problems, and a rejected request changes nothing in the store.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startInProcessApi, testApiToken as token, type InProcessApi } from './test-support.js';

const auth = { authorization: `Bearer ${token}` };

const validSpec = `
sites: [{ name: dc1 }]
nodes:
  - { name: n1, site: dc1, capacity: { cpu: 2, memoryMiB: 1024 } }
workloads:
  - name: web
    driver: process
    process: { command: [sleep, "1000"] }
    endpoints: [{ name: http, port: 18080 }]
    probes: [{ type: http, endpoint: http, path: /health }]
`;

describe('API', () => {
  let api: InProcessApi;
  let store: InProcessApi['store'];
  let app: InProcessApi['app'];

  before(async () => {
    api = await startInProcessApi();
    ({ store, app } = api);
  });
  after(() => api.close());

  async function revision(): Promise<number> {
    return (await store.range('')).revision;
  }

  it('answers 401 with a coded error without a token or with a wrong one', async () => {
    const variants: Record<string, string>[] = [
      {},
      { authorization: 'Bearer wrong-token-0123456789' },
      { authorization: token },
    ];
    for (const headers of variants) {
      const response = await app.request('/v1/nodes', { headers });
      assert.equal(response.status, 401);
      const body = (await response.json()) as { error: { code: string } };
      assert.equal(body.error.code, 'CONTINUUM_ERR_UNAUTHORIZED');
    }
  });

  it('applies a valid spec and lists what it created', async () => {
    const response = await app.request('/v1/apply', {
      method: 'POST',
      headers: auth,
      body: validSpec,
    });
    assert.equal(response.status, 200);
    const body = (await response.json()) as { created: string[] };
    assert.deepEqual(body.created.sort(), ['node/n1', 'workload/web']);
    const workloads = (await (await app.request('/v1/workloads', { headers: auth })).json()) as {
      items: { name: string; epoch: number }[];
    };
    assert.deepEqual(
      workloads.items.map((w) => w.name),
      ['web'],
    );
  });

  const badRequests: {
    name: string;
    path: string;
    body: string;
    code: string;
    problemPath?: string;
  }[] = [
    {
      name: 'YAML syntax error',
      path: '/v1/apply',
      body: 'workloads: [',
      code: 'CONTINUUM_ERR_SPEC_INVALID',
      problemPath: 'line 1',
    },
    {
      name: 'spec with a wrong type',
      path: '/v1/apply',
      body: 'workloads: [{ name: x, driver: process, process: { command: [a] }, endpoints: [{ name: h, port: "80" }] }]',
      code: 'CONTINUUM_ERR_SPEC_INVALID',
      problemPath: 'workloads[0].endpoints[0].port',
    },
    {
      name: 'spec with an unknown field',
      path: '/v1/apply',
      body: 'workloadz: []',
      code: 'CONTINUUM_ERR_SPEC_INVALID',
      problemPath: 'workloadz',
    },
    {
      name: 'switchover body that is not JSON',
      path: '/v1/workloads/web/switchover',
      body: '{to:',
      code: 'CONTINUUM_ERR_BAD_REQUEST',
    },
    {
      name: 'switchover with an unknown field',
      path: '/v1/workloads/web/switchover',
      body: '{"target":"n1"}',
      code: 'CONTINUUM_ERR_BAD_REQUEST',
    },
    {
      name: 'maintenance without "on"',
      path: '/v1/nodes/n1/maintenance',
      body: '{}',
      code: 'CONTINUUM_ERR_BAD_REQUEST',
    },
    {
      name: 'maintenance with a string',
      path: '/v1/nodes/n1/maintenance',
      body: '{"on":"yes"}',
      code: 'CONTINUUM_ERR_BAD_REQUEST',
    },
  ];

  for (const bad of badRequests) {
    it(`rejects a ${bad.name} with 400 ${bad.code} and changes nothing`, async () => {
      const before = await revision();
      const response = await app.request(bad.path, {
        method: 'POST',
        headers: auth,
        body: bad.body,
      });
      assert.equal(response.status, 400);
      const body = (await response.json()) as {
        error: { code: string; message: string; details?: { problems: { path: string }[] } };
      };
      assert.equal(body.error.code, bad.code);
      if (bad.problemPath !== undefined) {
        assert.ok(
          body.error.details?.problems.some((p) => p.path === bad.problemPath),
          JSON.stringify(body.error),
        );
      }
      assert.equal(await revision(), before, 'the store is unchanged');
    });
  }

  // Each malformed spec is rejected whole through the API with its problem located, and the store is unchanged.
  const w = (extra: string) =>
    `workloads: [{ name: w2, driver: process, process: { command: [a] }${extra} }]`;
  const malformedSpecs: [string, string][] = [
    [
      'nodes: [{ name: n2, site: dc1, capacity: { cpu: "two", memoryMiB: 1 } }]',
      'nodes[0].capacity.cpu',
    ],
    [
      'nodes: [{ name: n2, site: dc1, capacity: { cpu: -1, memoryMiB: 1 } }]',
      'nodes[0].capacity.cpu',
    ],
    ['nodes: [{ name: n2, site: nowhere }]', 'nodes[0].site'],
    ['nodes: [{ name: N_2, site: dc1 }]', 'nodes[0].name'],
    ['nodes: [{ name: n2, site: dc1, role: backup }]', 'nodes[0].role'],
    [
      'workloads: [{ name: d, driver: process, process: { command: [a] } }, { name: d, driver: process, process: { command: [a] } }]',
      'workloads[1].name',
    ],
    [w(', resources: { cpu: 1, memoryMiB: -5 }'), 'workloads[0].resources.memoryMiB'],
    [w(', endpoints: [{ name: h, port: 70000 }]'), 'workloads[0].endpoints[0].port'],
    [w(', probes: [{ type: tcp, endpoint: missing }]'), 'workloads[0].probes[0].endpoint'],
    [
      w(', availability: { placement: { antiAffinity: [ghost] } }'),
      'workloads[0].availability.placement.antiAffinity[0]',
    ],
    [
      w(', availability: { placement: { sites: [mars] } }'),
      'workloads[0].availability.placement.sites[0]',
    ],
    [
      w(', availability: { placement: { labels: { gpu: "yes" } } }'),
      'workloads[0].availability.placement',
    ],
    [w(', resources: { cpu: 64, memoryMiB: 1 }'), 'workloads[0].resources'],
    [
      w(', availability: { restart: { backoffInitialMs: 9000, backoffMaxMs: 100 } }'),
      'workloads[0].availability.restart.backoffInitialMs',
    ],
    ['workloads: [{ name: w3, driver: vm }]', 'workloads[0].driver'],
    ['workloads: [{ name: w3, driver: process }]', 'workloads[0].process'],
    [w(', endpoints: [{ name: h, port: 18080 }]'), 'workloads[0].endpoints[0].port'],
    [
      'workloads: [{ name: w3, driver: process, process: { command: [] } }]',
      'workloads[0].process.command',
    ],
  ];
  for (const [text, path] of malformedSpecs) {
    it(`rejects a malformed spec at ${path} and changes nothing`, async () => {
      const before = await revision();
      const response = await app.request('/v1/apply', {
        method: 'POST',
        headers: auth,
        body: `sites: [{ name: dc1 }]\n${text}`,
      });
      assert.equal(response.status, 400);
      const body = (await response.json()) as {
        error: { code: string; details: { problems: { path: string; message: string }[] } };
      };
      assert.equal(body.error.code, 'CONTINUUM_ERR_SPEC_INVALID');
      const problem = body.error.details.problems.find((p) => p.path === path);
      assert.ok(problem, `a problem at ${path}: ${JSON.stringify(body.error.details.problems)}`);
      assert.match(problem.message, /expected|duplicate|already used|unknown|required/);
      assert.equal(await revision(), before, 'the store is unchanged');
    });
  }

  it('rejects a body over the size limit with 413', async () => {
    const before = await revision();
    const response = await app.request('/v1/apply', {
      method: 'POST',
      headers: { ...auth, 'content-length': String(2_000_000) },
      body: 'x'.repeat(2_000_000),
    });
    assert.equal(response.status, 413);
    assert.equal(
      ((await response.json()) as { error: { code: string } }).error.code,
      'CONTINUUM_ERR_BODY_TOO_LARGE',
    );
    assert.equal(await revision(), before);
  });

  it('answers 404 with a coded error for unknown objects and routes', async () => {
    const missing = await app.request('/v1/workloads/nope/restart', {
      method: 'POST',
      headers: auth,
      body: '{}',
    });
    assert.equal(missing.status, 404);
    assert.equal(
      ((await missing.json()) as { error: { code: string } }).error.code,
      'CONTINUUM_ERR_WORKLOAD_NOT_FOUND',
    );
    const route = await app.request('/v1/nope', { headers: auth });
    assert.equal(route.status, 404);
  });

  it('journals actions with who did them', async () => {
    const response = await app.request('/v1/workloads/web/restart', {
      method: 'POST',
      headers: { ...auth, 'x-continuum-actor': 'alice' },
      body: '{}',
    });
    assert.equal(response.status, 200);
    const events = (await (
      await app.request('/v1/events?kind=workload.restart', { headers: auth })
    ).json()) as { items: { actor?: string }[] };
    assert.equal(events.items.at(-1)?.actor, 'alice');
  });
});
