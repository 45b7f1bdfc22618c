// `continuum alerts ...`: alerts with their delivery status, the rules and channels in force,
// silences (create, list, remove) and a test notification. Tables for people, -o json for scripts.
import type { Command } from 'commander';
import type { AlertRecord, Silence } from '../controller/alerts/model.js';
import type { TestResult } from '../controller/alerts/test-send.js';
import type { AlertRule } from '../core/alerting-spec.js';
import { clientOf, print, withClientOptions } from './client-options.js';
import { clockTime, duration, table } from './format.js';

/** "90s", "15m", "1h30m", "2d": a silence's length. */
export function parseDurationMs(text: string): number {
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  const parts = [...text.matchAll(/(\d+)(ms|s|m|h|d)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text)
    throw new Error(`--for: expected a duration like 30m, 1h or 1h30m, got "${text}"`);
  return parts.reduce((sum, p) => sum + Number(p[1]) * units[p[2]!]!, 0);
}

function deliverySummary(alert: AlertRecord): string {
  const entries = Object.entries(alert.deliveries);
  if (entries.length === 0) return alert.silencedBy === undefined ? '-' : 'silenced';
  return entries
    .map(([channel, d]) => `${channel}:${d.status}${d.attempts > 1 ? `(${d.attempts})` : ''}`)
    .join(' ');
}

const alertRows = (items: AlertRecord[]) =>
  table(
    ['FIRED', 'STATUS', 'SEVERITY', 'RULE', 'SUBJECT', 'EVENTS', 'DELIVERY', 'MESSAGE'],
    items.map((a) => [
      clockTime(a.firedAt),
      a.silencedBy === undefined ? a.status : `${a.status} (silenced)`,
      a.severity,
      a.rule,
      `${a.subject.kind}/${a.subject.name}`,
      a.events,
      deliverySummary(a),
      a.message,
    ]),
  );

/** What GET /v1/alerts/channels shows of a channel (alert-routes.ts publicChannel). */
interface ChannelView {
  name: string;
  type: string;
  url?: string;
  host?: string;
  port?: number;
  command?: string;
}

export function addAlertCommands(program: Command): void {
  const alerts = program.command('alerts').description('alerts, rules, channels and silences');
  withClientOptions(alerts.command('list'))
    .description('firing alerts, and recent ones with --all')
    .option('--all', 'include recently resolved alerts')
    .action(async (opts: { all?: boolean }, cmd: Command) => {
      const { client, output } = clientOf(cmd);
      const result = await client.request<{ items: AlertRecord[]; recent: AlertRecord[] }>(
        'GET',
        '/v1/alerts',
      );
      const items = opts.all === true ? [...result.items, ...result.recent] : result.items;
      print(output, opts.all === true ? result : result.items, () =>
        items.length === 0 ? 'no alerts' : alertRows(items),
      );
    });
  withClientOptions(alerts.command('rules'))
    .description('the rules in force (the built-in ones unless the spec names others)')
    .action(async (_o, cmd: Command) => {
      const { client, output } = clientOf(cmd);
      const { items } = await client.request<{ items: AlertRule[] }>('GET', '/v1/alerts/rules');
      print(output, items, () =>
        table(
          ['NAME', 'SEVERITY', 'ON', 'RESOLVED BY', 'CHANNELS'],
          items.map((r) => [
            r.name,
            r.severity,
            r.on.join(','),
            r.resolvedBy.join(',') || '(notice)',
            r.channels?.join(',') ?? 'all',
          ]),
        ),
      );
    });
  withClientOptions(alerts.command('channels'))
    .description('the channels in force (without their secrets)')
    .action(async (_o, cmd: Command) => {
      const { client, output } = clientOf(cmd);
      const { items } = await client.request<{ items: ChannelView[] }>(
        'GET',
        '/v1/alerts/channels',
      );
      print(output, items, () =>
        table(
          ['NAME', 'TYPE', 'TARGET'],
          items.map((ch) => [
            ch.name,
            ch.type,
            ch.url ?? (ch.host === undefined ? ch.command : `${ch.host}:${ch.port ?? ''}`),
          ]),
        ),
      );
    });
  withClientOptions(alerts.command('silence'))
    .description('mute alerts of a rule and/or subject for a while (recorded, not sent)')
    .option('--rule <name>', 'rule name')
    .option('--subject <name>', 'subject name ("web", "n1") or kind/name ("node/n1")')
    .requiredOption('--for <duration>', 'how long, like 30m, 1h, 2d')
    .option('--comment <text>', 'why', '')
    .action(
      async (
        opts: { rule?: string; subject?: string; for: string; comment: string },
        cmd: Command,
      ) => {
        if (opts.rule === undefined && opts.subject === undefined)
          throw new Error('silence: expected --rule, --subject or both');
        const { client, output } = clientOf(cmd);
        const silence = await client.request<Silence>(
          'POST',
          '/v1/alerts/silences',
          JSON.stringify({
            ...(opts.rule === undefined ? {} : { rule: opts.rule }),
            ...(opts.subject === undefined ? {} : { subject: opts.subject }),
            durationMs: parseDurationMs(opts.for),
            comment: opts.comment,
          }),
        );
        print(output, silence, () => `silence ${silence.id} until ${clockTime(silence.until)}`);
      },
    );
  withClientOptions(alerts.command('silences'))
    .description('silences, active and expired')
    .action(async (_o, cmd: Command) => {
      const { client, output } = clientOf(cmd);
      const { items } = await client.request<{ items: (Silence & { active: boolean })[] }>(
        'GET',
        '/v1/alerts/silences',
      );
      const now = Date.now();
      print(output, items, () =>
        table(
          ['ID', 'STATE', 'RULE', 'SUBJECT', 'ENDS', 'BY', 'COMMENT'],
          items.map((s) => [
            s.id,
            s.active ? `active (${duration(s.until - now)} left)` : 'expired',
            s.matchers.rule ?? '*',
            s.matchers.subject ?? '*',
            clockTime(s.until),
            s.createdBy,
            s.comment,
          ]),
        ),
      );
    });
  withClientOptions(alerts.command('unsilence <id>'))
    .description('remove a silence')
    .action(async (id: string, _o, cmd: Command) => {
      const { client, output } = clientOf(cmd);
      const result = await client.request<unknown>(
        'DELETE',
        `/v1/alerts/silences/${encodeURIComponent(id)}`,
      );
      print(output, result, () => `silence ${id} removed`);
    });
  withClientOptions(alerts.command('test'))
    .description("send a test notification now and report each channel's outcome")
    .option('--channel <name>', 'only this channel (default: all)')
    .action(async (opts: { channel?: string }, cmd: Command) => {
      const { client, output } = clientOf(cmd);
      const { items } = await client.request<{ items: TestResult[] }>(
        'POST',
        '/v1/alerts/test',
        JSON.stringify(opts.channel === undefined ? {} : { channel: opts.channel }),
      );
      print(output, items, () =>
        items.length === 0
          ? 'no channels configured'
          : table(
              ['CHANNEL', 'TYPE', 'RESULT', 'TIME', 'ERROR'],
              items.map((r) => [
                r.channel,
                r.type,
                r.ok ? 'delivered' : 'failed',
                duration(r.durationMs),
                r.error,
              ]),
            ),
      );
      if (items.some((r) => !r.ok)) process.exitCode = 1;
    });
}
