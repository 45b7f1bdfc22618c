// Validation of a whole cluster spec: the schema first, then the cross-references and constraints
// that no single field can check (duplicates, dangling references, impossible placements).
import { parse as parseYaml, YAMLParseError } from 'yaml';
import type { z } from 'zod';
import {
  clusterSpecSchema,
  isReplicated,
  vipIp,
  vipProblems,
  type Capacity,
  type ClusterSpec,
  type WorkloadSpec,
} from './spec.js';
import type { ProbeSpec } from './probe-spec.js';

export interface SpecProblem {
  /** Where the problem is, e.g. `workloads[0].probes[1].endpoint`. */
  path: string;
  /** What was expected there. */
  message: string;
}

/** What the cluster already holds, so a spec may refer to it without repeating it. */
export interface SpecContext {
  sites?: readonly string[];
  nodes?: readonly {
    name: string;
    site: string;
    capacity?: Capacity;
    labels: Record<string, string>;
  }[];
  workloads?: readonly string[];
  /**
   * Endpoints of workloads already in the cluster, with the IP of their VIP if they have one; a
   * spec that redefines a workload frees its own.
   */
  endpoints?: readonly { workload: string; host: string; port: number; vip?: string }[];
}

export type SpecResult = { ok: true; spec: ClusterSpec } | { ok: false; problems: SpecProblem[] };

/** Limit on a spec document's size, checked before parsing. */
export const specTextBytesMax = 1_048_576;

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out === '' ? '(root)' : out;
}

/** A short description of a wrong value, so a message can say what it got as well as what it wanted. */
function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'string')
    return value.length > 40 ? `"${value.slice(0, 40)}..."` : JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (typeof value === 'object') return 'a map';
  return `a value of type ${typeof value}`;
}

/**
 * The value an issue is about. A discriminated union reports the whole object at the path of its
 * discriminator (`probes[0].type`), so the discriminator's own value is picked out of it.
 */
function issueValue(issue: z.core.$ZodIssue): unknown {
  const last = issue.path[issue.path.length - 1];
  const input = issue.input;
  if (issue.code === 'invalid_union' && typeof input === 'object' && input !== null) {
    if (typeof last === 'string' && !Array.isArray(input))
      return (input as Record<string, unknown>)[last];
  }
  return input;
}

// zod's own wording for a wrong type is "expected string, received number"; the schemas in spec.ts
// carry their own messages, and this covers any that do not (an object where a map was expected).
const zodTypeMessage = /^(?:Invalid input: )?expected (\w+), received \w+$/;

function describeIssue(issue: z.core.$ZodIssue): SpecProblem[] {
  const path = formatPath(issue.path);
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => ({
      path: formatPath([...issue.path, key]),
      message: 'unknown field (check its spelling and place)',
    }));
  }
  const zodType = zodTypeMessage.exec(issue.message)?.[1];
  let message = zodType
    ? `expected ${zodType === 'object' ? 'a map of fields' : `a ${zodType}`}`
    : issue.message.replace(/^Invalid input: /, '');
  // The input is present on the issue only because validateSpec asks for it (reportInput).
  const value = issueValue(issue);
  if (value === undefined && issue.code !== 'custom') message = `required: ${message}`;
  else if (!message.includes(', got ')) message = `${message}, got ${describeValue(value)}`;
  return [{ path, message }];
}

/** Parses YAML or JSON text (JSON is YAML) into a plain value, reporting the line of a syntax error. */
export function parseSpecText(
  text: string,
): { ok: true; value: unknown } | { ok: false; problems: SpecProblem[] } {
  if (Buffer.byteLength(text) > specTextBytesMax) {
    return {
      ok: false,
      problems: [{ path: '(document)', message: `expected at most ${specTextBytesMax} bytes` }],
    };
  }
  try {
    return { ok: true, value: parseYaml(text, { maxAliasCount: 100 }) as unknown };
  } catch (err) {
    const where =
      err instanceof YAMLParseError && err.linePos ? `line ${err.linePos[0].line}` : '(document)';
    const reason = (
      err instanceof Error ? (err.message.split('\n')[0] ?? '') : String(err)
    ).replace(/:$/, '');
    return { ok: false, problems: [{ path: where, message: `expected YAML or JSON: ${reason}` }] };
  }
}

export function validateSpec(input: unknown, context: SpecContext = {}): SpecResult {
  const parsed = clusterSpecSchema.safeParse(input ?? {}, { reportInput: true });
  if (!parsed.success) return { ok: false, problems: parsed.error.issues.flatMap(describeIssue) };
  const problems = crossCheck(parsed.data, context);
  return problems.length > 0 ? { ok: false, problems } : { ok: true, spec: parsed.data };
}

function duplicates(
  names: readonly string[],
  at: (index: number) => string,
  what: string,
): SpecProblem[] {
  const seen = new Map<string, number>();
  const problems: SpecProblem[] = [];
  names.forEach((name, index) => {
    const first = seen.get(name);
    if (first === undefined) seen.set(name, index);
    else
      problems.push({
        path: at(index),
        message: `duplicate ${what} "${name}" (first at ${at(first)})`,
      });
  });
  return problems;
}

function crossCheck(spec: ClusterSpec, context: SpecContext): SpecProblem[] {
  const problems: SpecProblem[] = [
    ...duplicates(
      spec.sites.map((s) => s.name),
      (i) => `sites[${i}].name`,
      'site',
    ),
    ...duplicates(
      spec.nodes.map((n) => n.name),
      (i) => `nodes[${i}].name`,
      'node',
    ),
    ...duplicates(
      spec.workloads.map((w) => w.name),
      (i) => `workloads[${i}].name`,
      'workload',
    ),
  ];
  const sites = new Set([...(context.sites ?? []), ...spec.sites.map((s) => s.name)]);
  spec.nodes.forEach((node, i) => {
    if (!sites.has(node.site))
      problems.push({
        path: `nodes[${i}].site`,
        message: `expected a declared site, got "${node.site}"`,
      });
  });
  const declared = new Map((context.nodes ?? []).map((n) => [n.name, n]));
  for (const node of spec.nodes) declared.set(node.name, node);
  const workloadNames = new Set([
    ...(context.workloads ?? []),
    ...spec.workloads.map((w) => w.name),
  ]);
  const redefined = new Set(spec.workloads.map((w) => w.name));
  const others = (context.endpoints ?? []).filter((e) => !redefined.has(e.workload));
  const ports: { host: string; port: number; path: string }[] = others.map((e) => ({
    host: e.vip ?? e.host,
    port: e.port,
    path: `workload ${e.workload}`,
  }));
  // A VIP belongs to one workload, across applies too.
  const vipOwners = new Map(
    others.flatMap((e) => (e.vip === undefined ? [] : [[e.vip, e.workload]])),
  );
  spec.workloads.forEach((workload, i) =>
    workload.endpoints.forEach((endpoint, j) => {
      const ip = vipIp(endpoint.vip);
      const owner = ip === undefined ? undefined : vipOwners.get(ip);
      if (owner !== undefined && owner !== workload.name)
        problems.push({
          path: `workloads[${i}].endpoints[${j}].vip.address`,
          message: `expected an address of this workload only: ${ip} is the VIP of workload "${owner}", already in the cluster`,
        });
    }),
  );
  problems.push(
    ...duplicates(
      // A replicated volume's name is taken on every node (its copies move between them).
      spec.workloads.flatMap((w) =>
        w.volumes.map((v) => (isReplicated(v) ? v.name : `${v.node ?? ''}/${v.name}`)),
      ),
      (i) => volumePath(spec, i),
      'volume (node/name, or name for a replicated one)',
    ),
  );
  spec.workloads.forEach((workload, i) => {
    problems.push(
      ...checkWorkload(workload, `workloads[${i}]`, {
        sites,
        workloadNames,
        nodes: [...declared.values()],
      }),
    );
    workload.endpoints.forEach((endpoint, j) => {
      const path = `workloads[${i}].endpoints[${j}].port`;
      // A VIP endpoint is served on the VIP itself; no redirector binds its host.
      const host = vipIp(endpoint.vip) ?? endpoint.host;
      // 0.0.0.0 binds every address, so it collides with any host on the same port.
      const owner = ports.find(
        (p) =>
          p.port === endpoint.port &&
          (p.host === host || p.host === '0.0.0.0' || host === '0.0.0.0'),
      );
      if (owner !== undefined) {
        problems.push({
          path,
          message: `expected a free port: ${host}:${endpoint.port} is already used by ${owner.path}`,
        });
      } else ports.push({ host, port: endpoint.port, path });
    });
  });
  return [...problems, ...vipProblems(spec.workloads)];
}

interface WorkloadContext {
  sites: Set<string>;
  workloadNames: Set<string>;
  nodes: { name: string; site: string; capacity?: Capacity; labels: Record<string, string> }[];
}

function checkWorkload(workload: WorkloadSpec, at: string, ctx: WorkloadContext): SpecProblem[] {
  const problems: SpecProblem[] = [];
  if (workload.driver === 'vm') {
    problems.push({
      path: `${at}.driver`,
      message: 'expected "process": the "vm" driver is reserved for a later release',
    });
  }
  if (workload.driver === 'process' && workload.process === undefined) {
    problems.push({
      path: `${at}.process`,
      message: 'required: a process section with a command for driver "process"',
    });
  }
  problems.push(
    ...duplicates(
      workload.endpoints.map((e) => e.name),
      (i) => `${at}.endpoints[${i}].name`,
      'endpoint',
    ),
  );
  const probeNames = workload.probes.map((p, i) => p.name ?? `#${i}`);
  problems.push(...duplicates(probeNames, (i) => `${at}.probes[${i}].name`, 'probe'));
  const endpoints = new Set(workload.endpoints.map((e) => e.name));
  workload.probes.forEach((probe, i) => {
    problems.push(...probeProblems(probe, `${at}.probes[${i}]`));
    if ((probe.type === 'tcp' || probe.type === 'http') && !endpoints.has(probe.endpoint)) {
      problems.push({
        path: `${at}.probes[${i}].endpoint`,
        message: `expected an endpoint of this workload, got "${probe.endpoint}"`,
      });
    }
    if (probe.timeoutMs > probe.intervalMs * 10) {
      problems.push({
        path: `${at}.probes[${i}].timeoutMs`,
        message: `expected a timeout of at most ten intervals (${probe.intervalMs * 10} ms), got ${probe.timeoutMs}`,
      });
    }
  });
  const { restart, placement } = workload.availability;
  if (restart.backoffInitialMs > restart.backoffMaxMs) {
    problems.push({
      path: `${at}.availability.restart.backoffInitialMs`,
      message: `expected at most backoffMaxMs (${restart.backoffMaxMs}), got ${restart.backoffInitialMs}`,
    });
  }
  placement.antiAffinity.forEach((name, i) => {
    const path = `${at}.availability.placement.antiAffinity[${i}]`;
    if (name === workload.name)
      problems.push({ path, message: 'expected another workload, not this one' });
    else if (!ctx.workloadNames.has(name))
      problems.push({ path, message: `expected a declared workload, got "${name}"` });
  });
  placement.sites.forEach((site, i) => {
    if (!ctx.sites.has(site)) {
      problems.push({
        path: `${at}.availability.placement.sites[${i}]`,
        message: `expected a declared site, got "${site}"`,
      });
    }
  });
  problems.push(...checkVolumes(workload, at, ctx.nodes));
  problems.push(...checkFeasible(workload, at, ctx.nodes));
  return problems;
}

/** The path of the i-th volume counted across all workloads of the spec. */
function volumePath(spec: ClusterSpec, index: number): string {
  let left = index;
  for (const [i, w] of spec.workloads.entries()) {
    if (left < w.volumes.length) return `workloads[${i}].volumes[${left}].name`;
    left -= w.volumes.length;
  }
  return 'workloads';
}

/** A volume without replicas pins its workload to the node that holds it. */
function checkVolumes(
  workload: WorkloadSpec,
  at: string,
  nodes: WorkloadContext['nodes'],
): SpecProblem[] {
  const problems: SpecProblem[] = [];
  if (workload.volumes.length > 0 && workload.driver !== 'process') {
    problems.push({ path: `${at}.volumes`, message: 'expected volumes only on driver "process"' });
  }
  problems.push(
    ...duplicates(
      workload.volumes.map((v) => v.mountPath),
      (i) => `${at}.volumes[${i}].mountPath`,
      'mount path',
    ),
  );
  const replicated = workload.volumes.filter(isReplicated);
  if (replicated.length > 0 && replicated.length < workload.volumes.length) {
    const i = workload.volumes.findIndex((v) => !isReplicated(v));
    problems.push({
      path: `${at}.volumes[${i}].replicas`,
      message:
        'expected every volume of a workload to be replicated, or none: a volume without replicas pins the workload to its node, a replicated one moves with it',
    });
  }
  const known = (node: string) => nodes.length === 0 || nodes.some((n) => n.name === node);
  // The other volumes are compared with the first one on a real node, so one typo is one problem.
  const first = workload.volumes.find((v) => v.node !== undefined && known(v.node));
  workload.volumes.forEach((volume, i) => {
    if (isReplicated(volume)) {
      if (volume.node !== undefined)
        problems.push({
          path: `${at}.volumes[${i}].node`,
          message: `expected no node: the controller places the ${volume.replicas} copies of a replicated volume`,
        });
      return;
    }
    if (volume.node === undefined) {
      problems.push({
        path: `${at}.volumes[${i}].node`,
        message:
          'expected the node that holds the volume (or replicas: 2 or more for a replicated volume)',
      });
    } else if (!known(volume.node)) {
      problems.push({
        path: `${at}.volumes[${i}].node`,
        message: `expected a declared node, got "${volume.node}"`,
      });
    } else if (first !== undefined && volume.node !== first.node) {
      problems.push({
        path: `${at}.volumes[${i}].node`,
        message: `expected the node of the workload's other volumes ("${first.node}"): a volume without replicas pins its workload to its node`,
      });
    }
  });
  return problems;
}

/** A workload that no declared node could ever hold is rejected now rather than left pending forever. */
function checkFeasible(
  workload: WorkloadSpec,
  at: string,
  nodes: WorkloadContext['nodes'],
): SpecProblem[] {
  if (nodes.length === 0) return [];
  const { labels, sites } = workload.availability.placement;
  const matching = nodes.filter(
    (n) =>
      Object.entries(labels).every(([k, v]) => n.labels[k] === v) &&
      (sites.length === 0 || sites.includes(n.site)),
  );
  if (matching.length === 0) {
    return [
      {
        path: `${at}.availability.placement`,
        message: 'expected labels and sites that at least one declared node matches',
      },
    ];
  }
  const sized = matching.filter((n) => n.capacity !== undefined);
  if (sized.length === matching.length) {
    const fits = sized.some(
      (n) =>
        n.capacity!.cpu >= workload.resources.cpu &&
        n.capacity!.memoryMiB >= workload.resources.memoryMiB,
    );
    if (!fits)
      return [
        {
          path: `${at}.resources`,
          message: 'expected resources that fit on at least one matching node',
        },
      ];
  }
  return [];
}

/** What one probe's fields cannot say alone: the target of a dependency, a limit of a resource probe, a script. */
function probeProblems(probe: ProbeSpec, at: string): SpecProblem[] {
  const problems: SpecProblem[] = [];
  if (probe.type === 'dependency' && (probe.tcp === undefined) === (probe.http === undefined))
    problems.push({
      path: at,
      message: 'expected exactly one target: tcp ("host:port") or http (a URL)',
    });
  if (
    probe.type === 'resource' &&
    probe.cpuPercentMax === undefined &&
    probe.memoryMiBMax === undefined &&
    probe.openFilesMax === undefined
  )
    problems.push({
      path: at,
      message: 'expected at least one limit: cpuPercentMax, memoryMiBMax or openFilesMax',
    });
  if (probe.action === 'script' && probe.remediation === undefined)
    problems.push({
      path: `${at}.remediation`,
      message: 'required for action "script": a remediation with the command to run',
    });
  if (probe.action !== 'script' && probe.remediation !== undefined)
    problems.push({
      path: `${at}.action`,
      message: `expected "script" where a remediation is given, got "${probe.action}"`,
    });
  return problems;
}
