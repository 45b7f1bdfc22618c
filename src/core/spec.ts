// The cluster spec: sites, nodes and workloads, as zod schemas. A spec is validated whole; every
// problem is reported with its path and what was expected, and nothing of an invalid spec is applied.
import { z } from 'zod';
import { alertingSpecSchema } from './alerting-spec.js';
import {
  nameSchema,
  text,
  wholeNumber,
  listOf,
  commandSchema,
  labelsSchema,
  positive,
  positiveInt,
  durationMs,
} from './spec-fields.js';
import { probeSpecSchema } from './probe-spec.js';

export { nameSchema } from './spec-fields.js';
export { probeSpecSchema, type ProbeSpec } from './probe-spec.js';

export const siteSpecSchema = z.strictObject({
  name: nameSchema,
  description: text('a description', 200).optional(),
});

export const capacitySchema = z.strictObject({
  cpu: positive('a positive number of CPUs'),
  memoryMiB: positiveInt('a positive whole number of MiB'),
  diskGiB: positive('a positive number of GiB').optional(),
});

export const nodeRoleSchema = z.enum(['production', 'spare'], {
  error: 'expected "production" or "spare"',
});

export const nodeSpecSchema = z.strictObject({
  name: nameSchema,
  site: nameSchema,
  role: nodeRoleSchema.default('production'),
  capacity: capacitySchema.optional(),
  labels: labelsSchema.default({}),
});

export const resourcesSchema = z.strictObject({
  cpu: z
    .number({ error: 'expected a number of CPUs' })
    .nonnegative({ error: 'expected a number of CPUs >= 0' })
    .default(0),
  memoryMiB: z
    .number({ error: 'expected a whole number of MiB' })
    .int({ error: 'expected a whole number of MiB' })
    .nonnegative({ error: 'expected a whole number of MiB >= 0' })
    .default(0),
});

/** An IPv4 address with its prefix length, "a.b.c.d/len", as `ip addr add` takes it. */
const vipAddressRegex = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;
const vipAddressExpected =
  'expected an IPv4 address with its prefix length, like "192.168.1.50/24" (not a network, ' +
  'broadcast, loopback, multicast or unspecified address)';

/** The parts of a VIP address, or undefined when it is not one a host may hold. */
export function parseVipAddress(
  text: string,
): { ip: string; prefixLength: number; value: number } | undefined {
  const match = vipAddressRegex.exec(text);
  if (match === null) return undefined;
  const octets = match.slice(1, 5).map(Number);
  const prefixLength = Number(match[5]);
  if (octets.some((o) => o > 255) || prefixLength < 1 || prefixLength > 32) return undefined;
  const [first] = octets as [number];
  if (first === 0 || first === 127 || first >= 224) return undefined;
  const value = octets.reduce((sum, octet) => sum * 256 + octet, 0);
  // Below /31 the lowest and highest addresses of the subnet name the network and its broadcast.
  const size = 2 ** (32 - prefixLength);
  const offset = value % size;
  if (prefixLength < 31 && (offset === 0 || offset === size - 1)) return undefined;
  return { ip: octets.join('.'), prefixLength, value };
}

const interfaceExpected =
  'expected a network interface name of 1-15 letters, digits, ".", "_" or "-"';

/**
 * A virtual IP: the agent of the active instance adds it to its interface and announces it with
 * gratuitous ARP; a stopped or fenced instance's agent removes it (docs/vip.md).
 */
export const vipSpecSchema = z.strictObject(
  {
    address: z
      .string({ error: vipAddressExpected })
      .refine((text) => parseVipAddress(text) !== undefined, { error: vipAddressExpected }),
    /** Default: the interface whose subnet holds the address (or the route to it). */
    interface: z
      .string({ error: interfaceExpected })
      .regex(/^[A-Za-z0-9._-]{1,15}$/, { error: interfaceExpected })
      .optional(),
  },
  { error: 'expected a map with address (and optionally interface)' },
);

export const endpointSpecSchema = z.strictObject({
  name: nameSchema,
  /**
   * The stable port the redirector listens on for this endpoint; with a VIP, the port the
   * instance itself listens on (on the VIP), since no proxy is in the path.
   */
  port: z
    .number({ error: 'expected a TCP port number' })
    .int({ error: 'expected a TCP port number' })
    .min(1, { error: 'expected a TCP port between 1 and 65535' })
    .max(65535, { error: 'expected a TCP port between 1 and 65535' }),
  /** The address the redirector binds; loopback unless told otherwise. */
  host: z.ipv4({ error: 'expected an IPv4 address' }).default('127.0.0.1'),
  /** A virtual IP that follows the active instance instead of a redirector route. */
  vip: vipSpecSchema.optional(),
});

export const restartPolicySchema = z
  .strictObject({
    maxRestarts: wholeNumber('a whole number of restarts', 0, 1000).default(3),
    windowMs: durationMs('a window', 86_400_000).default(60_000),
    backoffInitialMs: durationMs('an initial backoff', 600_000).default(100),
    backoffMaxMs: durationMs('a maximum backoff', 3_600_000).default(5_000),
  })
  .default({ maxRestarts: 3, windowMs: 60_000, backoffInitialMs: 100, backoffMaxMs: 5_000 });

export const placementSchema = z
  .strictObject({
    labels: labelsSchema.default({}),
    antiAffinity: listOf(nameSchema, 'workload names').default([]),
    sites: listOf(nameSchema, 'site names').default([]),
  })
  .default({ labels: {}, antiAffinity: [], sites: [] });

export const availabilitySchema = z
  .strictObject({
    mode: z
      .literal('ha', { error: 'expected "ha" (other modes come with later releases)' })
      .default('ha'),
    priority: wholeNumber('a priority', 0, 1000).default(100),
    restart: restartPolicySchema,
    placement: placementSchema,
  })
  .default({
    mode: 'ha',
    priority: 100,
    restart: { maxRestarts: 3, windowMs: 60_000, backoffInitialMs: 100, backoffMaxMs: 5_000 },
    placement: { labels: {}, antiAffinity: [], sites: [] },
  });

export const processSpecSchema = z.strictObject({
  command: commandSchema,
  env: z
    .record(
      z
        .string({ error: 'expected an environment variable name' })
        .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { error: 'expected an environment variable name' }),
      z.string({ error: 'expected an environment variable value as a string' }),
      { error: 'expected environment variables as a map of NAME: value' },
    )
    .default({}),
  /** Working directory; relative paths are under the instance's own directory on the node. */
  cwd: z
    .string({ error: 'expected a directory path' })
    .min(1, { error: 'expected a non-empty directory path' })
    .optional(),
  stopGraceMs: durationMs('a stop grace period', 600_000).default(5_000),
});

/** The largest volume a spec may ask for: 16 TiB, in MiB. */
export const volumeSizeMiBMax = 16 * 1024 * 1024;

/** Copies a replicated volume may have (the primary's included). */
export const volumeReplicasMax = 5;

/**
 * A block volume mounted into a `process` instance. With `replicas: 1` (the default) it lives on
 * the one `node` named, and the workload can run only there: it restarts in place but cannot fail
 * over. With `replicas` of 2 or more the controller places the copies on distinct nodes, every
 * write is answered only once each in-sync copy has it (mode `sync`), and the workload fails over
 * to a node holding an in-sync copy (docs/replication.md).
 */
export const volumeMountSpecSchema = z.strictObject({
  name: nameSchema,
  node: nameSchema.optional(),
  sizeMiB: wholeNumber('a size in MiB', 1, volumeSizeMiBMax),
  replicas: wholeNumber('a replica count', 1, volumeReplicasMax).default(1),
  mode: z
    .literal('sync', { error: 'expected "sync" (asynchronous replication comes later)' })
    .default('sync'),
  /** Put each copy on a different site (as far as there are sites with nodes up). */
  spreadSites: z.boolean({ error: 'expected true or false' }).default(false),
  mountPath: z
    .string({ error: 'expected an absolute directory path' })
    .regex(/^\/(?:[^\0]*[^/\0])?$/, {
      error: 'expected an absolute directory path (starting with "/", no trailing "/")',
    })
    .max(4096, { error: 'expected a path of at most 4096 characters' }),
  fileSystem: z.literal('ext4', { error: 'expected "ext4"' }).default('ext4'),
});

/**
 * A path of the spec as one node uses it: `{node}` is replaced by the node's name, so that several
 * nodes on one machine (`continuum up`, tests) mount a volume, or run an instance, in directories
 * of their own.
 */
export function pathOnNode(path: string, node: string): string {
  return path.replaceAll('{node}', node);
}

/** Whether a volume is replicated (placed by the controller) rather than pinned to one node. */
export function isReplicated(volume: { replicas: number }): boolean {
  return volume.replicas > 1;
}

export const workloadSpecSchema = z.strictObject({
  name: nameSchema,
  driver: z.enum(['process', 'vm'], { error: 'expected driver "process" (or "vm", reserved)' }),
  process: processSpecSchema.optional(),
  resources: resourcesSchema.default({ cpu: 0, memoryMiB: 0 }),
  endpoints: listOf(endpointSpecSchema, 'endpoints').default([]),
  probes: listOf(probeSpecSchema, 'probes').default([]),
  volumes: listOf(volumeMountSpecSchema, 'volumes').default([]),
  availability: availabilitySchema,
});

export const clusterSpecSchema = z.strictObject({
  apiVersion: z
    .literal('continuum/v1', { error: 'expected "continuum/v1"' })
    .default('continuum/v1'),
  sites: listOf(siteSpecSchema, 'sites').default([]),
  nodes: listOf(nodeSpecSchema, 'nodes').default([]),
  workloads: listOf(workloadSpecSchema, 'workloads').default([]),
  /** Alert channels, rules and routing (alerting-spec.ts); an apply without it keeps the current. */
  alerting: alertingSpecSchema.optional(),
});

/** The IP of an endpoint's VIP (without its prefix length), or undefined for a proxied endpoint. */
export function vipIp(vip: VipSpec | undefined): string | undefined {
  return vip === undefined ? undefined : parseVipAddress(vip.address)?.ip;
}

/**
 * A VIP belongs to one workload (it moves with that workload's active instance); the endpoints
 * of one workload may share it, on different ports, only with the same prefix and interface.
 * Problems come as { path, message }, like the rest of the spec's validation (spec-validate.ts).
 */
export function vipProblems(
  workloads: readonly WorkloadSpec[],
): { path: string; message: string }[] {
  const problems: { path: string; message: string }[] = [];
  const seen = new Map<string, { workload: string; vip: VipSpec; path: string }>();
  workloads.forEach((workload, i) =>
    workload.endpoints.forEach((endpoint, j) => {
      const ip = vipIp(endpoint.vip);
      if (ip === undefined || endpoint.vip === undefined) return;
      const path = `workloads[${i}].endpoints[${j}].vip`;
      const first = seen.get(ip);
      if (first === undefined) seen.set(ip, { workload: workload.name, vip: endpoint.vip, path });
      else if (first.workload !== workload.name)
        problems.push({
          path: `${path}.address`,
          message: `expected an address of this workload only: ${ip} is the VIP of workload "${first.workload}" (${first.path})`,
        });
      else if (
        first.vip.address !== endpoint.vip.address ||
        first.vip.interface !== endpoint.vip.interface
      )
        problems.push({
          path,
          message: `expected the same address and interface as ${first.path}, which shares ${ip}`,
        });
    }),
  );
  return problems;
}

export type SiteSpec = z.infer<typeof siteSpecSchema>;
export type NodeSpec = z.infer<typeof nodeSpecSchema>;
export type Capacity = z.infer<typeof capacitySchema>;
export type NodeRole = z.infer<typeof nodeRoleSchema>;
export type Resources = z.infer<typeof resourcesSchema>;
export type EndpointSpec = z.infer<typeof endpointSpecSchema>;
export type VipSpec = z.infer<typeof vipSpecSchema>;
export type RestartPolicy = z.infer<typeof restartPolicySchema>;
export type Placement = z.infer<typeof placementSchema>;
export type WorkloadSpec = z.infer<typeof workloadSpecSchema>;
export type ClusterSpec = z.infer<typeof clusterSpecSchema>;
/** A spec as written by a person, before defaults are filled in. */
export type ClusterSpecInput = z.input<typeof clusterSpecSchema>;
