// /v1/alerts in-process (Hono app.request): an applied spec configures channels and rules, shown
// without secrets; a bad alerting section is refused at its path and changes nothing; a spec
// without the section keeps the configuration; silences are created, listed and removed with
// located errors and coded 404s; a test notification reaches a real receiver and reports a failure.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { closedPort, startReceiver } from '../alerts/channels/test-support.js';
import { startInProcessApi, testApiToken, type InProcessApi } from './test-support.js';

const token = testApiToken;
const auth = { authorization: `Bearer ${token}`, 'x-continuum-actor': 'alice' };

describe('alert API', () => {
  let api: InProcessApi;
  let store: InProcessApi['store'];
  let app: InProcessApi['app'];
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let refused = 0;

  before(async () => {
    api = await startInProcessApi();
    ({ store, app } = api);
    receiver = await startReceiver();
    refused = await closedPort();
  });
  after(async () => {
    await receiver.close();
    await api.close();
  });

  const get = async <T>(path: string) => {
    const response = await app.request(path, { headers: auth });
    assert.equal(response.status, 200, path);
    return (await response.json()) as T;
  };
  const send = (method: string, path: string, body: string) =>
    app.request(path, { method, headers: auth, body });

  it('lists the built-in rules and no channels before any configuration', async () => {
    const rules = await get<{ items: { name: string }[] }>('/v1/alerts/rules');
    assert.ok(rules.items.some((r) => r.name === 'node-down'));
    assert.deepEqual((await get<{ items: unknown[] }>('/v1/alerts/channels')).items, []);
    const alerts = await get<{ items: unknown[]; counters: { fired: number } }>('/v1/alerts');
    assert.deepEqual(alerts.items, []);
    assert.equal(alerts.counters.fired, 0);
  });

  it('refuses an alerting section with problems at their paths, applying nothing', async () => {
    const response = await send(
      'POST',
      '/v1/apply',
      `alerting:
  channels: [{ name: hook, type: webhook, url: "ftp://x" }]
  rules: [{ name: r1, on: [alert.fired], channels: [nope] }]`,
    );
    assert.equal(response.status, 400);
    const body = (await response.json()) as {
      error: { code: string; details: { problems: { path: string }[] } };
    };
    assert.equal(body.error.code, 'CONTINUUM_ERR_SPEC_INVALID');
    assert.deepEqual(body.error.details.problems.map((p) => p.path).sort(), [
      'alerting.channels[0].url',
      'alerting.rules[0].channels[0]',
      'alerting.rules[0].on[0]',
    ]);
    assert.deepEqual((await get<{ items: unknown[] }>('/v1/alerts/channels')).items, []);
  });

  it('configures channels and rules from an applied spec, showing no secret', async () => {
    const spec = `alerting:
  channels:
    - { name: hook, type: webhook, url: "${receiver.url}", secretEnv: HOOK_KEY, headers: { authorization: "Bearer hidden" } }
    - { name: down, type: webhook, url: "http://127.0.0.1:${refused}/" }
    - { name: mail, type: smtp, host: localhost, from: a@b.test, to: [c@d.test], username: u, passwordFile: /etc/pw }
  rules: [{ name: web-failover, on: [failover], resolvedBy: [failover.completed], channels: [hook] }]
`;
    const response = await send('POST', '/v1/apply', spec);
    assert.equal(response.status, 200);
    assert.deepEqual(((await response.json()) as { created: string[] }).created, [
      'alerting/config',
    ]);
    const channels = await get<{ items: Record<string, unknown>[] }>('/v1/alerts/channels');
    const text = JSON.stringify(channels);
    for (const secret of ['hidden', 'token=abc', 'HOOK_KEY', '/etc/pw'])
      assert.ok(!text.includes(secret), `no ${secret}`);
    assert.deepEqual(
      channels.items.map((c) => c.name),
      ['hook', 'down', 'mail'],
    );
    assert.equal(channels.items[0]!.signed, true);
    const rules = await get<{ items: { name: string }[] }>('/v1/alerts/rules');
    assert.deepEqual(
      rules.items.map((r) => r.name),
      ['web-failover'],
      'own rules replace the built-in ones',
    );
    const again = await send('POST', '/v1/apply', 'sites: [{ name: dc9 }]');
    assert.equal(again.status, 200);
    assert.equal(
      (await get<{ items: unknown[] }>('/v1/alerts/channels')).items.length,
      3,
      'a spec without alerting keeps it',
    );
  });

  it('creates, lists and removes silences, with located errors', async () => {
    const bad = await send('POST', '/v1/alerts/silences', JSON.stringify({ durationMs: 10 }));
    assert.equal(bad.status, 400);
    const problems = (
      (await bad.json()) as { error: { details: { problems: { path: string }[] } } }
    ).error.details.problems;
    assert.ok(problems.some((p) => p.path === 'body.durationMs'));
    const created = await send(
      'POST',
      '/v1/alerts/silences',
      JSON.stringify({
        rule: 'node-down',
        subject: 'n1',
        durationMs: 3_600_000,
        comment: 'maintenance',
      }),
    );
    assert.equal(created.status, 201);
    const silence = (await created.json()) as { id: string; until: number; createdBy: string };
    assert.equal(silence.createdBy, 'alice');
    assert.equal(silence.until, 1_000_000 + 3_600_000);
    const list = await get<{ items: { id: string; active: boolean }[] }>('/v1/alerts/silences');
    assert.deepEqual(
      list.items.map((s) => [s.id, s.active]),
      [[silence.id, true]],
    );
    const journal = await store.readEvents({ kinds: ['alert.silenced'] });
    assert.equal(journal[0]?.actor, 'alice');
    assert.equal((await send('DELETE', `/v1/alerts/silences/${silence.id}`, '')).status, 200);
    const gone = await send('DELETE', `/v1/alerts/silences/${silence.id}`, '');
    assert.equal(gone.status, 404);
    assert.equal(
      ((await gone.json()) as { error: { code: string } }).error.code,
      'CONTINUUM_ERR_ALERT_SILENCE_NOT_FOUND',
    );
  });

  it('sends a test notification and reports each channel, failures included', async () => {
    process.env.HOOK_KEY = 'k';
    const one = await send('POST', '/v1/alerts/test', JSON.stringify({ channel: 'hook' }));
    assert.equal(one.status, 200);
    assert.deepEqual(
      ((await one.json()) as { items: { channel: string; ok: boolean }[] }).items.map((r) => [
        r.channel,
        r.ok,
      ]),
      [['hook', true]],
    );
    const body = JSON.parse(receiver.received.at(-1)!.body) as { test: boolean };
    assert.equal(body.test, true);
    const down = await send('POST', '/v1/alerts/test', JSON.stringify({ channel: 'down' }));
    const result = ((await down.json()) as { items: { ok: boolean; error: string }[] }).items[0]!;
    assert.equal(result.ok, false);
    assert.match(result.error, /ECONNREFUSED/);
    const unknown = await send('POST', '/v1/alerts/test', JSON.stringify({ channel: 'nope' }));
    assert.equal(unknown.status, 404);
    assert.equal(
      ((await unknown.json()) as { error: { code: string } }).error.code,
      'CONTINUUM_ERR_ALERT_CHANNEL_NOT_FOUND',
    );
  });
});
