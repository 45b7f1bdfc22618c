// Probe specs: health checks run next to the instance (tcp, http, exec), checks of what the
// application needs from its node (dependency) and of what it consumes (resource), each with the
// thresholds that make it fail (consecutive failures, a latency quantile or an error rate over a
// sliding window) and the rung of the remediation ladder it starts from (docs/probes.md).
import { z } from 'zod';
import { commandSchema, durationMs, nameSchema, text, wholeNumber } from './spec-fields.js';

const fraction = (what: string, min: number) => {
  const expected = `expected ${what} between ${min} and 1`;
  return z.number({ error: expected }).min(min, { error: expected }).max(1, { error: expected });
};

/**
 * What a failing probe does first. `restart` and `script` climb the ladder (ARCHITECTURE.md
 * section 4) when their rung does not cure it; `failover` skips the restarts; `alert` only reports.
 */
export const probeActionSchema = z.enum(['alert', 'script', 'restart', 'failover'], {
  error: 'expected an action: "alert", "script", "restart" or "failover"',
});

/** Fails when this quantile of check durations over the window exceeds thresholdMs. */
export const latencyThresholdSchema = z.strictObject({
  thresholdMs: durationMs('a latency threshold', 600_000),
  quantile: fraction('a quantile', 0.5).default(0.95),
  windowMs: durationMs('a window', 3_600_000).default(30_000),
  /** Fewer checks than this in the window say nothing yet (a restart empties the window). */
  samplesMin: wholeNumber('a number of checks', 1, 10_000).default(5),
});

/** Fails when more than this fraction of the checks over the window failed. */
export const errorRateThresholdSchema = z.strictObject({
  max: fraction('a fraction of failed checks', 0),
  windowMs: durationMs('a window', 3_600_000).default(60_000),
  samplesMin: wholeNumber('a number of checks', 1, 10_000).default(10),
});

/** The command a `script` action runs (in the instance's directory and environment). */
export const remediationSchema = z.strictObject({
  command: commandSchema,
  timeoutMs: durationMs('a timeout', 600_000).default(30_000),
});

const probeCommon = {
  name: nameSchema.optional(),
  intervalMs: durationMs('an interval', 3_600_000).default(1000),
  timeoutMs: durationMs('a timeout', 600_000).default(1000),
  failureThreshold: wholeNumber('a whole number of failures', 1, 100).default(3),
  action: probeActionSchema.default('restart'),
  remediation: remediationSchema.optional(),
};

/** Thresholds over a window of checks, for the probes whose checks have a duration and an outcome. */
const windowThresholds = {
  latency: latencyThresholdSchema.optional(),
  errorRate: errorRateThresholdSchema.optional(),
};

const httpPath = z
  .string({ error: 'expected a path starting with "/"' })
  .startsWith('/', { error: 'expected a path starting with "/"' });

const hostPortExpected = 'expected "host:port" with an IPv4 address or a host name';
const hostPortRegex = /^([A-Za-z0-9.-]{1,253}):(\d{1,5})$/;

/** Splits "host:port"; undefined when it is not one. */
export function parseHostPort(value: string): { host: string; port: number } | undefined {
  const match = hostPortRegex.exec(value);
  if (match === null) return undefined;
  const port = Number(match[2]);
  return port >= 1 && port <= 65535 ? { host: match[1]!, port } : undefined;
}

const hostPortSchema = z
  .string({ error: hostPortExpected })
  .refine((v) => parseHostPort(v) !== undefined, { error: hostPortExpected });

const httpUrlExpected = 'expected an http:// URL';
const httpUrlSchema = z
  .string({ error: httpUrlExpected })
  .max(2048, { error: 'expected a URL of at most 2048 characters' })
  .refine((v) => URL.canParse(v) && new URL(v).protocol === 'http:', { error: httpUrlExpected });

export const probeSpecSchema = z.discriminatedUnion(
  'type',
  [
    z.strictObject({
      type: z.literal('tcp'),
      endpoint: nameSchema,
      ...probeCommon,
      ...windowThresholds,
    }),
    z.strictObject({
      type: z.literal('http'),
      endpoint: nameSchema,
      path: httpPath.default('/'),
      expectStatus: wholeNumber('an HTTP status', 100, 599).default(200),
      bodyMatch: text('a body match', 1024).optional(),
      ...probeCommon,
      ...windowThresholds,
    }),
    z.strictObject({
      type: z.literal('exec'),
      command: commandSchema,
      ...probeCommon,
      ...windowThresholds,
    }),
    // Something the instance needs, checked from its node. Failing over helps only when the node
    // lost its way there; when the dependency is down for every node, moving does not bring it
    // back, so the default action is to alert.
    z.strictObject({
      type: z.literal('dependency'),
      tcp: hostPortSchema.optional(),
      http: httpUrlSchema.optional(),
      expectStatus: wholeNumber('an HTTP status', 100, 599).default(200),
      ...probeCommon,
      action: probeActionSchema.default('alert'),
      ...windowThresholds,
    }),
    // What the instance's processes consume; over a limit failureThreshold checks in a row fails.
    z.strictObject({
      type: z.literal('resource'),
      cpuPercentMax: z
        .number({ error: 'expected a CPU percentage (100 is one core)' })
        .positive({ error: 'expected a CPU percentage (100 is one core) above 0' })
        .max(100_000, { error: 'expected a CPU percentage of at most 100000' })
        .optional(),
      memoryMiBMax: wholeNumber('a memory limit in MiB', 1, 16_777_216).optional(),
      openFilesMax: wholeNumber('a number of open files', 1, 16_777_216).optional(),
      ...probeCommon,
    }),
  ],
  { error: 'expected a probe of type "tcp", "http", "exec", "dependency" or "resource"' },
);

export type ProbeSpec = z.infer<typeof probeSpecSchema>;
export type ProbeAction = z.infer<typeof probeActionSchema>;

/** A probe's name in reports and the journal: its own, or its type and position. */
export function probeName(probe: ProbeSpec, index: number): string {
  return probe.name ?? `${probe.type}-${index}`;
}

/** Probes whose success means the instance serves: they decide when a starting instance is healthy. */
export function isReadinessProbe(probe: ProbeSpec): boolean {
  return (
    probe.action !== 'alert' &&
    (probe.type === 'tcp' || probe.type === 'http' || probe.type === 'exec')
  );
}
