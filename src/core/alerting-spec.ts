// The `alerting` section of the cluster spec: channels (webhook, SMTP, syslog, script), rules
// over journal event kinds, routing (grouping and its timers) and delivery limits. Like the rest of
// the spec it is desired state, validated whole with located problems (docs/alerts.md).
import { z } from 'zod';
import { nameSchema, wholeNumber } from './spec-fields.js';

const msBetween = (what: string, min: number, max: number) => wholeNumber(what, min, max, ' ms');
const text = (what: string, max: number) =>
  z
    .string({ error: `expected ${what}` })
    .min(1, { error: `expected ${what}` })
    .max(max, { error: `expected ${what} of at most ${max} characters` });
const port = wholeNumber('a TCP/UDP port', 1, 65535);
const absolutePath = (what: string) =>
  z
    .string({ error: `expected ${what} as an absolute path` })
    .regex(/^\/[^\0]*$/, { error: `expected ${what} as an absolute path` });
const hostSchema = text('a host name or IP address', 253);

/** Largest delivery timeout of any channel: a channel that takes longer is failing. */
export const alertDeliveryTimeoutMsMax = 300_000;
const deliveryTimeout = msBetween('a delivery timeout', 100, alertDeliveryTimeoutMsMax);

const tlsOptions = {
  /** false accepts any certificate (a self-signed test server); documented as unsafe. */
  tlsRejectUnauthorized: z.boolean({ error: 'expected true or false' }).default(true),
  /** PEM file of the CA that signed the server's certificate, beside the system ones. */
  caFile: absolutePath('a CA file').optional(),
};

const webhookChannel = z.strictObject({
  name: nameSchema,
  type: z.literal('webhook'),
  url: z
    .string({ error: 'expected an http:// or https:// URL' })
    .regex(/^https?:\/\/[^\s]+$/, { error: 'expected an http:// or https:// URL' }),
  /** File holding the HMAC-SHA256 key that signs each request (never stored in the cluster). */
  secretFile: absolutePath('a secret file').optional(),
  /** Environment variable of the controller holding the HMAC key. */
  secretEnv: z
    .string({ error: 'expected an environment variable name' })
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { error: 'expected an environment variable name' })
    .optional(),
  headers: z
    .record(
      z
        .string({ error: 'expected a header name' })
        .regex(/^[A-Za-z0-9-]{1,64}$/, { error: 'expected a header name of letters, digits, "-"' }),
      text('a header value', 1024),
      { error: 'expected headers as a map of name: value' },
    )
    .default({}),
  timeoutMs: deliveryTimeout.default(10_000),
  ...tlsOptions,
});

const smtpChannel = z.strictObject({
  name: nameSchema,
  type: z.literal('smtp'),
  host: hostSchema,
  port: port.default(25),
  /** Implicit TLS from the first byte (port 465); otherwise STARTTLS as `starttls` says. */
  secure: z.boolean({ error: 'expected true or false' }).default(false),
  /** Upgrade with STARTTLS when the server offers it. */
  starttls: z.boolean({ error: 'expected true or false' }).default(true),
  /** Refuse to send unless the connection is upgraded (a server that offers no STARTTLS fails). */
  requireTls: z.boolean({ error: 'expected true or false' }).default(false),
  from: text('a sender address', 254),
  to: z
    .array(text('a recipient address', 254), { error: 'expected a list of recipient addresses' })
    .min(1, { error: 'expected at least one recipient' })
    .max(50, { error: 'expected at most 50 recipients' }),
  username: text('a user name', 254).optional(),
  passwordFile: absolutePath('a password file').optional(),
  timeoutMs: deliveryTimeout.default(15_000),
  ...tlsOptions,
});

/** Syslog facilities by name (RFC 5424 section 6.2.1). */
export const syslogFacilities = {
  kern: 0,
  user: 1,
  mail: 2,
  daemon: 3,
  auth: 4,
  syslog: 5,
  lpr: 6,
  news: 7,
  uucp: 8,
  cron: 9,
  authpriv: 10,
  ftp: 11,
  local0: 16,
  local1: 17,
  local2: 18,
  local3: 19,
  local4: 20,
  local5: 21,
  local6: 22,
  local7: 23,
} as const;
const facilityNames = Object.keys(syslogFacilities) as [keyof typeof syslogFacilities];

const syslogChannel = z.strictObject({
  name: nameSchema,
  type: z.literal('syslog'),
  host: hostSchema,
  port: port.default(514),
  protocol: z.enum(['udp', 'tcp'], { error: 'expected "udp" or "tcp"' }).default('udp'),
  facility: z
    .enum(facilityNames, { error: `expected a facility: ${facilityNames.join(', ')}` })
    .default('daemon'),
  /** RFC 5424 APP-NAME: printable US-ASCII, at most 48 characters. */
  appName: z
    .string({ error: 'expected an app name' })
    .regex(/^[!-~]{1,48}$/, { error: 'expected an app name of 1-48 printable ASCII characters' })
    .default('continuum'),
  timeoutMs: deliveryTimeout.default(5_000),
});

const scriptChannel = z.strictObject({
  name: nameSchema,
  type: z.literal('script'),
  /** Run without a shell; the notification arrives as JSON on standard input. */
  command: z
    .array(text('each word of the command', 4096), { error: 'expected a command as a list' })
    .min(1, { error: 'expected a command of at least one word' }),
  timeoutMs: deliveryTimeout.default(10_000),
});

export const alertChannelSchema = z.discriminatedUnion(
  'type',
  [webhookChannel, smtpChannel, syslogChannel, scriptChannel],
  { error: 'expected a channel of type "webhook", "smtp", "syslog" or "script"' },
);

export const alertSeverities = ['critical', 'warning', 'info'] as const;

/** An event kind, or a prefix of kinds: "node" matches "node.down", "node.up", ... */
const kindPattern = z
  .string({ error: 'expected an event kind such as "node.down", or a prefix such as "node"' })
  .regex(/^[a-z0-9][a-z0-9.-]{0,63}$/, {
    error: 'expected an event kind such as "node.down", or a prefix such as "node"',
  });

export const alertRuleSchema = z.strictObject({
  name: nameSchema,
  /** Event kinds (or prefixes) that make the alert fire for the event's subject. */
  on: z
    .array(kindPattern, { error: 'expected a list of event kinds' })
    .min(1, { error: 'expected at least one event kind' }),
  /**
   * Event kinds that clear it for the same subject. Without any, the alert is a notice: announced
   * once, then closed (docs/alerts.md).
   */
  resolvedBy: z.array(kindPattern, { error: 'expected a list of event kinds' }).default([]),
  severity: z
    .enum(alertSeverities, { error: 'expected "critical", "warning" or "info"' })
    .default('warning'),
  /** Channel names; all channels when absent. */
  channels: z.array(nameSchema, { error: 'expected a list of channel names' }).optional(),
  summary: text('a summary', 500).optional(),
});

export const alertGroupLabels = ['rule', 'subject', 'subjectKind'] as const;

export const alertRoutingSchema = z
  .strictObject({
    groupBy: z
      .array(z.enum(alertGroupLabels, { error: 'expected "rule", "subject" or "subjectKind"' }), {
        error: 'expected a list of "rule", "subject", "subjectKind"',
      })
      .default(['rule']),
    groupWaitMs: msBetween('a group wait', 0, 3_600_000).default(5_000),
    groupIntervalMs: msBetween('a group interval', 100, 86_400_000).default(30_000),
    repeatIntervalMs: msBetween('a repeat interval', 1_000, 7 * 86_400_000).default(14_400_000),
  })
  .default({
    groupBy: ['rule'],
    groupWaitMs: 5_000,
    groupIntervalMs: 30_000,
    repeatIntervalMs: 14_400_000,
  });

export const alertDeliverySchema = z
  .strictObject({
    /** Attempts per notification and channel, the first included. */
    attemptsMax: wholeNumber('a number of attempts', 1, 100).default(6),
    backoffInitialMs: msBetween('an initial backoff', 10, 3_600_000).default(1_000),
    backoffMaxMs: msBetween('a maximum backoff', 10, 3_600_000).default(60_000),
    /** Notifications waiting per channel; beyond it a new one fails at once as "queue full". */
    queueLengthMax: wholeNumber('a queue length', 1, 10_000).default(100),
  })
  .default({ attemptsMax: 6, backoffInitialMs: 1_000, backoffMaxMs: 60_000, queueLengthMax: 100 });

const alertingObject = z.strictObject(
  {
    channels: z.array(alertChannelSchema, { error: 'expected a list of channels' }).default([]),
    rules: z.array(alertRuleSchema, { error: 'expected a list of rules' }).optional(),
    /** Include the built-in rules (default: only when `rules` is absent). */
    defaults: z.boolean({ error: 'expected true or false' }).optional(),
    routing: alertRoutingSchema,
    delivery: alertDeliverySchema,
  },
  { error: 'expected a map with channels, rules, routing, delivery' },
);

export const alertingSpecSchema = alertingObject.superRefine((section, ctx) => {
  for (const problem of alertingProblems(section)) ctx.addIssue({ code: 'custom', ...problem });
});

export type AlertChannelSpec = z.infer<typeof alertChannelSchema>;
export type AlertRule = z.infer<typeof alertRuleSchema>;
export type AlertRouting = z.infer<typeof alertRoutingSchema>;
export type AlertDelivery = z.infer<typeof alertDeliverySchema>;
export type AlertingSpec = z.infer<typeof alertingSpecSchema>;
export type AlertSeverity = (typeof alertSeverities)[number];
export type AlertGroupLabel = (typeof alertGroupLabels)[number];

/** Whether an event kind matches a pattern: the kind itself or any kind under it. */
export function kindMatches(pattern: string, kind: string): boolean {
  return kind === pattern || kind.startsWith(`${pattern}.`);
}

/** Alerts never fire on the alerting's own events: a failing channel would alert about itself. */
export function isAlertEventKind(kind: string): boolean {
  return kindMatches('alert', kind);
}

/**
 * The built-in rules, used when the section names none. Each event kind here is one the
 * controller journals (docs/alerts.md lists where).
 */
export const builtinAlertRules: readonly AlertRule[] = [
  {
    name: 'workload-blocked',
    on: ['workload.blocked'],
    resolvedBy: ['placement.completed', 'failover.completed', 'switchover.completed'],
    severity: 'critical',
    summary: 'a workload cannot be placed anywhere: it is not running',
  },
  {
    name: 'instance-failed',
    on: ['instance.failed'],
    resolvedBy: ['instance.healthy'],
    severity: 'critical',
    summary: 'an instance failed (its restart budget is spent)',
  },
  {
    name: 'failover',
    on: ['failover.decided', 'failover.started'],
    resolvedBy: ['failover.completed'],
    severity: 'warning',
    summary: 'a workload is failing over to another node',
  },
  {
    name: 'redundancy-degraded',
    on: ['volume.isr-shrunk'],
    resolvedBy: ['volume.isr-grown'],
    severity: 'warning',
    summary: 'a replica left the in-sync set: one fewer copy protects the volume',
  },
  {
    name: 'replica-outdated',
    on: ['volume.fenced'],
    resolvedBy: ['volume.resynced'],
    severity: 'warning',
    summary: 'a former primary was fenced: its copy is outdated until resynced',
  },
  {
    name: 'resync-stalled',
    on: ['volume.resync-stalled'],
    resolvedBy: ['volume.resync-resumed', 'volume.resynced'],
    severity: 'warning',
    summary: 'a resync made no progress for resyncStallMs: a copy stays out of sync',
  },
  {
    name: 'node-down',
    on: ['node.down'],
    resolvedBy: ['node.up'],
    severity: 'critical',
    summary: 'a node stopped sending heartbeats',
  },
  // Not on instance.unhealthy: one failed check below its threshold makes an instance unhealthy
  // for a moment, and an alert per blip is the flood operators learn to ignore. probe.failed
  // comes once a probe's own threshold is crossed (docs/probes.md).
  {
    name: 'probe-degraded',
    on: ['probe.failed'],
    resolvedBy: ['probe.recovered'],
    severity: 'warning',
    summary: 'an application probe crossed its threshold (latency, errors, resources, dependency)',
  },
  {
    name: 'leadership-changed',
    on: ['controller.elected'],
    resolvedBy: [],
    severity: 'info',
    summary: 'another controller leads the cluster',
  },
];

/** The rules in force: the section's own, the built-in ones, or both (`defaults: true`). */
export function effectiveRules(
  section: Pick<AlertingSpec, 'rules' | 'defaults'> | undefined,
): AlertRule[] {
  const own = section?.rules ?? [];
  const withDefaults = section?.defaults ?? section?.rules === undefined;
  return withDefaults ? [...builtinAlertRules, ...own] : [...own];
}

type Problem = { path: (string | number)[]; message: string };

/** What no single field can check: duplicate names, unknown channels, loops on alert events. */
export function alertingProblems(section: z.infer<typeof alertingObject>): Problem[] {
  const problems: Problem[] = [];
  const channels = section.channels;
  const seen = new Map<string, number>();
  channels.forEach((channel, i) => {
    const first = seen.get(channel.name);
    if (first !== undefined)
      problems.push({
        path: ['channels', i, 'name'],
        message: `duplicate channel "${channel.name}" (first at alerting.channels[${first}].name)`,
      });
    else seen.set(channel.name, i);
    if (
      channel.type === 'webhook' &&
      channel.secretFile !== undefined &&
      channel.secretEnv !== undefined
    )
      problems.push({
        path: ['channels', i, 'secretEnv'],
        message: 'expected secretFile or secretEnv, not both',
      });
  });
  const builtin = new Set(section.defaults === true ? builtinAlertRules.map((r) => r.name) : []);
  const rules = new Map<string, number>();
  (section.rules ?? []).forEach((rule, i) => {
    if (builtin.has(rule.name) || rules.has(rule.name))
      problems.push({
        path: ['rules', i, 'name'],
        message: builtin.has(rule.name)
          ? `duplicate rule "${rule.name}": a built-in rule has this name (defaults: true)`
          : `duplicate rule "${rule.name}" (first at alerting.rules[${rules.get(rule.name)}].name)`,
      });
    else rules.set(rule.name, i);
    rule.on.forEach((kind, j) => {
      if (isAlertEventKind(kind) || kindMatches(kind, 'alert'))
        problems.push({
          path: ['rules', i, 'on', j],
          message: 'expected a kind outside "alert.": alerts never fire on alerting events',
        });
    });
    (rule.channels ?? []).forEach((name, j) => {
      if (!seen.has(name))
        problems.push({
          path: ['rules', i, 'channels', j],
          message: `expected a channel of this section, got "${name}"`,
        });
    });
  });
  const delivery = section.delivery;
  if (delivery.backoffInitialMs > delivery.backoffMaxMs)
    problems.push({
      path: ['delivery', 'backoffInitialMs'],
      message: `expected at most backoffMaxMs (${delivery.backoffMaxMs}), got ${delivery.backoffInitialMs}`,
    });
  return problems;
}
