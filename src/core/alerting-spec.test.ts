// The alerting section through the spec's validation: defaults filled in, every problem reported
// at its path with what was expected, and the rules in force (built-in, own, or both).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { builtinAlertRules, effectiveRules, kindMatches } from './alerting-spec.js';
import { validateSpec } from './spec-validate.js';

function problems(alerting: unknown): Record<string, string> {
  const result = validateSpec({ alerting });
  assert.equal(result.ok, false);
  return Object.fromEntries(result.ok ? [] : result.problems.map((p) => [p.path, p.message]));
}

describe('alerting spec', () => {
  it('fills in defaults for channels, routing and delivery', () => {
    const result = validateSpec({
      alerting: {
        channels: [
          { name: 'hook', type: 'webhook', url: 'https://hooks.example/x' },
          { name: 'mail', type: 'smtp', host: 'mx', from: 'a@b', to: ['c@d'] },
          { name: 'log', type: 'syslog', host: '10.0.0.1' },
          { name: 'run', type: 'script', command: ['/usr/local/bin/page'] },
        ],
      },
    });
    assert.ok(result.ok);
    const alerting = result.spec.alerting!;
    assert.deepEqual(alerting.routing, {
      groupBy: ['rule'],
      groupWaitMs: 5000,
      groupIntervalMs: 30_000,
      repeatIntervalMs: 14_400_000,
    });
    assert.equal(alerting.delivery.attemptsMax, 6);
    const [hook, mail, log] = alerting.channels;
    assert.equal(hook?.type === 'webhook' && hook.tlsRejectUnauthorized, true);
    assert.equal(mail?.type === 'smtp' && mail.starttls && mail.port === 25, true);
    assert.deepEqual(
      log?.type === 'syslog' && [log.port, log.protocol, log.facility, log.appName],
      [514, 'udp', 'daemon', 'continuum'],
    );
    assert.deepEqual(effectiveRules(alerting), builtinAlertRules);
  });

  it('reports each problem at its path', () => {
    const found = problems({
      channels: [
        { name: 'hook', type: 'webhook', url: 'http://x', secretFile: '/k', secretEnv: 'K' },
        { name: 'hook', type: 'pager' },
        { name: 'log', type: 'syslog', host: 'h', protocol: 'sctp', facility: 'local9' },
      ],
      rules: [{ name: 'r', on: [], severity: 'fatal' }],
      routing: { groupBy: ['node'], groupWaitMs: -1 },
      delivery: { attemptsMax: 0 },
    });
    assert.match(
      found['alerting.channels[1].type']!,
      /expected a channel of type "webhook", "smtp", "syslog" or "script"/,
    );
    assert.match(found['alerting.channels[2].protocol']!, /"udp" or "tcp"/);
    assert.match(found['alerting.channels[2].facility']!, /local0/);
    assert.match(found['alerting.rules[0].on']!, /at least one event kind/);
    assert.match(found['alerting.rules[0].severity']!, /"critical", "warning" or "info"/);
    assert.match(found['alerting.routing.groupBy[0]']!, /"rule", "subject" or "subjectKind"/);
    assert.match(found['alerting.routing.groupWaitMs']!, /between 0 and/);
    assert.match(found['alerting.delivery.attemptsMax']!, /between 1 and 100/);
  });

  it('checks what no field can alone: duplicates, unknown channels, loops on alert events, backoff order', () => {
    const found = problems({
      channels: [
        { name: 'hook', type: 'webhook', url: 'http://x', secretFile: '/k', secretEnv: 'K' },
        { name: 'hook', type: 'script', command: ['true'] },
      ],
      rules: [
        { name: 'r', on: ['alert'], channels: ['mail'] },
        { name: 'r', on: ['node.down'] },
        { name: 'node-down', on: ['node.down'] },
      ],
      defaults: true,
      delivery: { backoffInitialMs: 5000, backoffMaxMs: 1000 },
    });
    assert.match(found['alerting.channels[0].secretEnv']!, /not both/);
    assert.match(found['alerting.channels[1].name']!, /duplicate channel "hook"/);
    assert.match(found['alerting.rules[0].on[0]']!, /never fire on alerting events/);
    assert.match(
      found['alerting.rules[0].channels[0]']!,
      /expected a channel of this section, got "mail"/,
    );
    assert.match(found['alerting.rules[1].name']!, /duplicate rule "r"/);
    assert.match(found['alerting.rules[2].name']!, /built-in rule/);
    assert.match(found['alerting.delivery.backoffInitialMs']!, /at most backoffMaxMs/);
  });

  it('uses own rules instead of the built-in ones unless defaults: true', () => {
    const own = [{ name: 'mine', on: ['node.down'], resolvedBy: [], severity: 'info' as const }];
    assert.deepEqual(effectiveRules({ rules: own }), own);
    assert.equal(
      effectiveRules({ rules: own, defaults: true }).length,
      builtinAlertRules.length + 1,
    );
    assert.equal(effectiveRules({ defaults: false }).length, 0);
  });

  it('matches an event kind by itself or as a prefix', () => {
    assert.ok(kindMatches('node', 'node.down'));
    assert.ok(kindMatches('node.down', 'node.down'));
    assert.ok(!kindMatches('node', 'nodes.down'));
    assert.ok(!kindMatches('node.down', 'node'));
  });
});
