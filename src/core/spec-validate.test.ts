// Tests of the spec validator: a full valid spec is accepted with its defaults, each kind of
// malformed spec is rejected with the exact path and a message saying what was expected, every
// problem is reported at once, and random valid specs (and their one-field corruptions) behave.
// Specs here are loosely typed on purpose: the tests corrupt them in ways the input type forbids.
/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-member-access,
   @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-call,
   @typescript-eslint/no-unsafe-return */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { stringify } from 'yaml';
import {
  formatPath,
  parseSpecText,
  specTextBytesMax,
  validateSpec,
  type SpecContext,
  type SpecProblem,
} from './spec-validate.js';

/** A spec as a person would write it: two sites, two production nodes and a spare, two workloads. */
function fullSpec(): Record<string, any> {
  return {
    apiVersion: 'continuum/v1',
    sites: [{ name: 'east' }, { name: 'west', description: 'second room' }],
    nodes: [
      { name: 'n1', site: 'east', capacity: { cpu: 8, memoryMiB: 16384 }, labels: { disk: 'ssd' } },
      {
        name: 'n2',
        site: 'west',
        role: 'production',
        capacity: { cpu: 8, memoryMiB: 16384 },
        labels: { disk: 'ssd' },
      },
      {
        name: 'spare1',
        site: 'west',
        role: 'spare',
        capacity: { cpu: 16, memoryMiB: 32768 },
        labels: { disk: 'ssd' },
      },
    ],
    workloads: [
      {
        name: 'web',
        driver: 'process',
        process: { command: ['node', 'dist/demo/kv-service.js'], env: { PORT: '18080' } },
        resources: { cpu: 1, memoryMiB: 256 },
        endpoints: [{ name: 'http', port: 8080 }],
        probes: [
          { type: 'http', name: 'health', endpoint: 'http', path: '/health', intervalMs: 500 },
          { type: 'exec', name: 'self-check', command: ['true'] },
        ],
        availability: {
          priority: 500,
          restart: { maxRestarts: 5, backoffInitialMs: 200, backoffMaxMs: 4000 },
          placement: { labels: { disk: 'ssd' }, antiAffinity: ['cache'], sites: ['east', 'west'] },
        },
      },
      {
        name: 'cache',
        driver: 'process',
        process: { command: ['node', 'cache.js'] },
        endpoints: [{ name: 'tcp', port: 6379 }],
        probes: [{ type: 'tcp', endpoint: 'tcp' }],
      },
    ],
  };
}

function problemsOf(input: unknown): SpecProblem[] {
  const result = validateSpec(input);
  assert.equal(result.ok, false, 'expected the spec to be rejected');
  return result.ok ? [] : result.problems;
}

describe('validateSpec: a valid spec', () => {
  it('accepts the full example and fills in defaults', () => {
    const result = validateSpec(fullSpec());
    assert.ok(result.ok, JSON.stringify(!result.ok && result.problems));
    const { spec } = result;
    assert.equal(spec.nodes[0]?.role, 'production');
    assert.equal(spec.nodes[2]?.role, 'spare');
    const [web, cache] = spec.workloads;
    assert.ok(web && cache);
    assert.equal(web.endpoints[0]?.host, '127.0.0.1');
    assert.deepEqual(web.process?.env, { PORT: '18080' });
    assert.equal(web.process?.stopGraceMs, 5000);
    const health = web.probes[0];
    assert.ok(health?.type === 'http');
    assert.deepEqual(
      [health.intervalMs, health.timeoutMs, health.failureThreshold, health.expectStatus],
      [500, 1000, 3, 200],
    );
    // A partly written restart policy keeps what was written and fills in the rest.
    assert.deepEqual(web.availability.restart, {
      maxRestarts: 5,
      windowMs: 60_000,
      backoffInitialMs: 200,
      backoffMaxMs: 4000,
    });
    assert.deepEqual(cache.resources, { cpu: 0, memoryMiB: 0 });
    assert.deepEqual(cache.process?.env, {});
    assert.deepEqual(cache.availability.placement, { labels: {}, antiAffinity: [], sites: [] });
    assert.equal(cache.availability.priority, 100);
  });

  it('accepts a VIP endpoint, its port checked against the VIP rather than the host', () => {
    const spec = fullSpec();
    spec.workloads[0].endpoints[0].vip = { address: '10.0.0.5/24', interface: 'eth0' };
    spec.workloads[1].endpoints[0].port = 8080; // On 127.0.0.1, while web serves 10.0.0.5:8080.
    const result = validateSpec(spec);
    assert.ok(result.ok, JSON.stringify(result.ok ? '' : result.problems));
    assert.deepEqual(result.spec.workloads[0]?.endpoints[0]?.vip, {
      address: '10.0.0.5/24',
      interface: 'eth0',
    });
  });

  it('refuses a VIP that a workload already in the cluster holds, unless the spec redefines it', () => {
    const spec = fullSpec();
    spec.workloads[0].endpoints[0].vip = { address: '10.0.0.5/24' };
    const held = { workload: 'other', host: '127.0.0.1', port: 9000, vip: '10.0.0.5' };
    const refused = validateSpec(spec, { endpoints: [held] });
    assert.ok(!refused.ok);
    assert.deepEqual(
      refused.problems.map((p) => p.path),
      ['workloads[0].endpoints[0].vip.address'],
    );
    assert.match(refused.problems[0]!.message, /10\.0\.0\.5 is the VIP of workload "other"/);
    // The same workload applied again keeps its own VIP.
    const again = validateSpec(spec, {
      endpoints: [{ ...held, workload: spec.workloads[0].name }],
    });
    assert.ok(again.ok, JSON.stringify(again.ok ? '' : again.problems));
  });

  it('accepts an empty document as an empty cluster', () => {
    const result = validateSpec(null);
    assert.ok(result.ok);
    assert.deepEqual(result.spec, {
      apiVersion: 'continuum/v1',
      sites: [],
      nodes: [],
      workloads: [],
    });
  });

  it('accepts the same spec written as YAML', () => {
    const parsed = parseSpecText(stringify(fullSpec()));
    assert.ok(parsed.ok);
    assert.equal(validateSpec(parsed.value).ok, true);
  });
});

interface MalformedCase {
  name: string;
  mutate: (spec: Record<string, any>) => void;
  /** Each problem expected, by exact path and a pattern its message must match. */
  expected: [path: string, message: RegExp][];
}

const w0 = 'workloads[0]';
const w1 = 'workloads[1]';

const malformed: MalformedCase[] = [
  {
    name: 'a volume with a relative mount path and a size of zero',
    mutate: (s) =>
      (s.workloads[0].volumes = [{ name: 'data', node: 'n1', sizeMiB: 0, mountPath: 'srv/data' }]),
    expected: [
      [`${w0}.volumes[0].sizeMiB`, /expected a size in MiB between 1 and/],
      [`${w0}.volumes[0].mountPath`, /expected an absolute directory path/],
    ],
  },
  {
    name: 'a volume on an undeclared node, and two volumes on different nodes',
    mutate: (s) =>
      (s.workloads[0].volumes = [
        { name: 'data', node: 'n9', sizeMiB: 64, mountPath: '/srv/data' },
        { name: 'logs', node: 'n1', sizeMiB: 64, mountPath: '/srv/logs' },
        { name: 'more', node: 'n2', sizeMiB: 64, mountPath: '/srv/logs' },
      ]),
    expected: [
      [`${w0}.volumes[2].mountPath`, /duplicate mount path "\/srv\/logs"/],
      [`${w0}.volumes[0].node`, /expected a declared node, got "n9"/],
      [`${w0}.volumes[2].node`, /a volume without replicas pins its workload to its node/],
    ],
  },
  {
    name: 'one volume mounted by two workloads',
    mutate: (s) => {
      const volume = { name: 'data', node: 'n1', sizeMiB: 64, mountPath: '/srv/data' };
      s.workloads[0].volumes = [volume];
      s.workloads[1].volumes = [volume];
    },
    expected: [
      [
        `${w1}.volumes[0].name`,
        /duplicate volume \(node\/name, or name for a replicated one\) "n1\/data"/,
      ],
    ],
  },
  {
    name: 'replicated volumes: a node named, a local one beside it',
    mutate: (s) => {
      s.workloads[0].volumes = [
        { name: 'data', node: 'n1', replicas: 2, sizeMiB: 64, mountPath: '/srv/data' },
        { name: 'logs', node: 'n1', sizeMiB: 64, mountPath: '/srv/logs' },
      ];
    },
    expected: [
      [
        `${w0}.volumes[1].replicas`,
        /expected every volume of a workload to be replicated, or none/,
      ],
      [`${w0}.volumes[0].node`, /expected no node: the controller places the 2 copies/],
    ],
  },
  {
    name: 'a replica count out of range',
    mutate: (s) =>
      (s.workloads[1].volumes = [
        { name: 'data', replicas: 9, sizeMiB: 64, mountPath: '/srv/data' },
      ]),
    expected: [[`${w1}.volumes[0].replicas`, /expected a replica count between 1 and 5, got 9/]],
  },
  {
    name: 'a volume without replicas and without a node',
    mutate: (s) =>
      (s.workloads[0].volumes = [{ name: 'data', sizeMiB: 64, mountPath: '/srv/data' }]),
    expected: [
      [`${w0}.volumes[0].node`, /expected the node that holds the volume \(or replicas: 2/],
    ],
  },
  {
    name: 'a string for a port',
    mutate: (s) => (s.workloads[0].endpoints[0].port = '8080'),
    expected: [[`${w0}.endpoints[0].port`, /expected a TCP port number, got "8080"/]],
  },
  {
    name: 'a number for a name',
    mutate: (s) => (s.nodes[0].name = 7),
    expected: [['nodes[0].name', /expected a name of lowercase letters.*, got 7/]],
  },
  {
    name: 'a string for a role that does not exist',
    mutate: (s) => (s.nodes[2].role = 'backup'),
    expected: [['nodes[2].role', /expected "production" or "spare", got "backup"/]],
  },
  {
    name: 'an unknown field at the top level',
    mutate: (s) => (s.node = []),
    expected: [['node', /unknown field/]],
  },
  {
    name: 'an unknown nested field (a typo of process)',
    mutate: (s) => (s.workloads[0].proces = { command: ['x'] }),
    expected: [[`${w0}.proces`, /unknown field/]],
  },
  {
    name: 'a negative capacity',
    mutate: (s) => (s.nodes[0].capacity.cpu = -1),
    expected: [['nodes[0].capacity.cpu', /expected a positive number of CPUs, got -1/]],
  },
  {
    name: 'a negative memory request',
    mutate: (s) => (s.workloads[0].resources.memoryMiB = -5),
    expected: [[`${w0}.resources.memoryMiB`, /expected a whole number of MiB >= 0, got -5/]],
  },
  {
    name: 'port 0',
    mutate: (s) => (s.workloads[0].endpoints[0].port = 0),
    expected: [[`${w0}.endpoints[0].port`, /expected a TCP port between 1 and 65535, got 0/]],
  },
  {
    name: 'port 70000',
    mutate: (s) => (s.workloads[0].endpoints[0].port = 70000),
    expected: [[`${w0}.endpoints[0].port`, /between 1 and 65535, got 70000/]],
  },
  {
    name: 'an uppercase name',
    mutate: (s) => (s.sites[0].name = 'East'),
    expected: [['sites[0].name', /expected a name of lowercase letters.*, got "East"/]],
  },
  {
    name: 'a name with an underscore',
    mutate: (s) => (s.workloads[1].name = 'my_cache'),
    expected: [[`${w1}.name`, /expected a name of lowercase letters.*, got "my_cache"/]],
  },
  {
    name: 'a node in an undeclared site',
    mutate: (s) => (s.nodes[0].site = 'north'),
    expected: [['nodes[0].site', /expected a declared site, got "north"/]],
  },
  {
    name: 'a probe on an endpoint the workload does not have',
    mutate: (s) => (s.workloads[0].probes[0].endpoint = 'admin'),
    expected: [[`${w0}.probes[0].endpoint`, /expected an endpoint of this workload, got "admin"/]],
  },
  {
    name: 'anti-affinity with an unknown workload',
    mutate: (s) => (s.workloads[0].availability.placement.antiAffinity = ['cache', 'db']),
    expected: [
      [`${w0}.availability.placement.antiAffinity[1]`, /expected a declared workload, got "db"/],
    ],
  },
  {
    name: 'placement in an unknown site',
    mutate: (s) => (s.workloads[0].availability.placement.sites = ['east', 'south']),
    expected: [[`${w0}.availability.placement.sites[1]`, /expected a declared site, got "south"/]],
  },
  {
    name: 'a duplicate site',
    mutate: (s) => s.sites.push({ name: 'east' }),
    expected: [['sites[2].name', /duplicate site "east" \(first at sites\[0\]\.name\)/]],
  },
  {
    name: 'a duplicate node',
    mutate: (s) => s.nodes.push({ name: 'n1', site: 'west' }),
    expected: [['nodes[3].name', /duplicate node "n1" \(first at nodes\[0\]\.name\)/]],
  },
  {
    name: 'a duplicate workload',
    mutate: (s) =>
      s.workloads.push({ name: 'cache', driver: 'process', process: { command: ['x'] } }),
    expected: [['workloads[2].name', /duplicate workload "cache"/]],
  },
  {
    name: 'a duplicate endpoint within a workload',
    mutate: (s) => s.workloads[1].endpoints.push({ name: 'tcp', port: 6380 }),
    expected: [[`${w1}.endpoints[1].name`, /duplicate endpoint "tcp"/]],
  },
  {
    name: 'a duplicate probe name',
    mutate: (s) =>
      s.workloads[0].probes.push({ type: 'exec', name: 'self-check', command: ['true'] }),
    expected: [[`${w0}.probes[2].name`, /duplicate probe "self-check"/]],
  },
  {
    name: 'the same endpoint port in two workloads',
    mutate: (s) => (s.workloads[1].endpoints[0].port = 8080),
    expected: [
      [
        `${w1}.endpoints[0].port`,
        /127\.0\.0\.1:8080 is already used by workloads\[0\]\.endpoints\[0\]\.port/,
      ],
    ],
  },
  {
    name: 'a port on 0.0.0.0 that another workload holds on loopback',
    mutate: (s) => (s.workloads[1].endpoints[0] = { name: 'tcp', port: 8080, host: '0.0.0.0' }),
    expected: [
      [`${w1}.endpoints[0].port`, /expected a free port: 0\.0\.0\.0:8080 is already used/],
    ],
  },
  {
    name: 'resources bigger than every node',
    mutate: (s) => (s.workloads[1].resources = { cpu: 64 }),
    expected: [[`${w1}.resources`, /expected resources that fit on at least one matching node/]],
  },
  {
    name: 'labels that no node has',
    mutate: (s) => (s.workloads[1].availability = { placement: { labels: { gpu: 'yes' } } }),
    expected: [
      [
        `${w1}.availability.placement`,
        /expected labels and sites that at least one declared node matches/,
      ],
    ],
  },
  {
    name: 'anti-affinity with itself',
    mutate: (s) => (s.workloads[1].availability = { placement: { antiAffinity: ['cache'] } }),
    expected: [
      [`${w1}.availability.placement.antiAffinity[0]`, /expected another workload, not this one/],
    ],
  },
  {
    name: 'an initial backoff above the maximum',
    mutate: (s) => (s.workloads[0].availability.restart.backoffInitialMs = 10_000),
    expected: [
      [
        `${w0}.availability.restart.backoffInitialMs`,
        /expected at most backoffMaxMs \(4000\), got 10000/,
      ],
    ],
  },
  {
    name: 'a probe timeout far above its interval',
    mutate: (s) => (s.workloads[1].probes[0].timeoutMs = 600_000),
    expected: [
      [
        `${w1}.probes[0].timeoutMs`,
        /expected a timeout of at most ten intervals \(10000 ms\), got 600000/,
      ],
    ],
  },
  {
    name: 'a probe of an unknown type',
    mutate: (s) => (s.workloads[1].probes[0].type = 'udp'),
    expected: [
      [
        `${w1}.probes[0].type`,
        /expected a probe of type "tcp", "http", "exec", "dependency" or "resource", got "udp"/,
      ],
    ],
  },
  {
    name: 'a dependency probe with two targets',
    mutate: (s) =>
      s.workloads[1].probes.push({
        type: 'dependency',
        tcp: '127.0.0.1:5432',
        http: 'http://127.0.0.1:8500/v1/status',
      }),
    expected: [[`${w1}.probes[1]`, /expected exactly one target: tcp \("host:port"\) or http/]],
  },
  {
    name: 'a dependency probe whose tcp target has no port',
    mutate: (s) => s.workloads[1].probes.push({ type: 'dependency', tcp: 'db.internal' }),
    expected: [[`${w1}.probes[1].tcp`, /expected "host:port"/]],
  },
  {
    name: 'a resource probe without a limit',
    mutate: (s) => s.workloads[1].probes.push({ type: 'resource' }),
    expected: [[`${w1}.probes[1]`, /expected at least one limit: cpuPercentMax, memoryMiBMax/]],
  },
  {
    name: 'a script action without its remediation',
    mutate: (s) => (s.workloads[1].probes[0].action = 'script'),
    expected: [[`${w1}.probes[0].remediation`, /required for action "script"/]],
  },
  {
    name: 'a latency quantile below the median',
    mutate: (s) => (s.workloads[1].probes[0].latency = { thresholdMs: 200, quantile: 0.3 }),
    expected: [[`${w1}.probes[0].latency.quantile`, /expected a quantile between 0.5 and 1/]],
  },
  {
    name: 'an unknown probe action',
    mutate: (s) => (s.workloads[1].probes[0].action = 'reboot'),
    expected: [[`${w1}.probes[0].action`, /expected an action: "alert", "script", "restart"/]],
  },
  {
    name: 'the reserved vm driver',
    mutate: (s) => (s.workloads[1].driver = 'vm'),
    expected: [[`${w1}.driver`, /expected "process": the "vm" driver is reserved/]],
  },
  {
    name: 'a missing driver',
    mutate: (s) => delete s.workloads[1].driver,
    expected: [[`${w1}.driver`, /^required: expected driver "process"/]],
  },
  {
    name: 'driver process without a process section',
    mutate: (s) => delete s.workloads[1].process,
    expected: [[`${w1}.process`, /^required: a process section with a command/]],
  },
  {
    name: 'an empty command',
    mutate: (s) => (s.workloads[1].process.command = []),
    expected: [[`${w1}.process.command`, /expected a command of at least one word/]],
  },
  {
    name: 'an empty word in a command',
    mutate: (s) => (s.workloads[1].process.command = ['node', '']),
    expected: [[`${w1}.process.command[1]`, /expected a non-empty word, got ""/]],
  },
  {
    name: 'a bad apiVersion',
    mutate: (s) => (s.apiVersion = 'continuum/v2'),
    expected: [['apiVersion', /expected "continuum\/v1", got "continuum\/v2"/]],
  },
  {
    name: 'a map where a list of nodes belongs',
    mutate: (s) => (s.nodes = { n1: {} }),
    expected: [['nodes', /expected a list of nodes, got a map/]],
  },
  {
    name: 'a number as a label value',
    mutate: (s) => (s.nodes[0].labels.disk = 1),
    expected: [['nodes[0].labels.disk', /expected a label value of at most 63 characters, got 1/]],
  },
  {
    name: 'a VIP without its prefix length',
    mutate: (s) => (s.workloads[0].endpoints[0].vip = { address: '10.0.0.5' }),
    expected: [
      [
        `${w0}.endpoints[0].vip.address`,
        /expected an IPv4 address with its prefix length, like "192\.168\.1\.50\/24".*, got "10\.0\.0\.5"$/,
      ],
    ],
  },
  {
    name: 'a VIP that names its network',
    mutate: (s) => (s.workloads[0].endpoints[0].vip = { address: '10.0.0.0/24' }),
    expected: [
      [`${w0}.endpoints[0].vip.address`, /not a network, broadcast.*got "10\.0\.0\.0\/24"/],
    ],
  },
  {
    name: 'a VIP interface that is no interface name',
    mutate: (s) =>
      (s.workloads[0].endpoints[0].vip = { address: '10.0.0.5/24', interface: 'eth0; reboot' }),
    expected: [[`${w0}.endpoints[0].vip.interface`, /expected a network interface name of 1-15/]],
  },
  {
    name: 'the same VIP in two workloads',
    mutate: (s) => {
      s.workloads[0].endpoints[0].vip = { address: '10.0.0.5/24' };
      s.workloads[1].endpoints[0].vip = { address: '10.0.0.5/24' };
    },
    expected: [
      [
        `${w1}.endpoints[0].vip.address`,
        /expected an address of this workload only: 10\.0\.0\.5 is the VIP of workload "web"/,
      ],
    ],
  },
];

describe('validateSpec: malformed specs', () => {
  for (const testCase of malformed) {
    it(`rejects ${testCase.name}`, () => {
      const spec = fullSpec();
      testCase.mutate(spec);
      const problems = problemsOf(spec);
      assert.deepEqual(
        problems.map((p) => p.path),
        testCase.expected.map(([path]) => path),
        JSON.stringify(problems),
      );
      testCase.expected.forEach(([, message], i) =>
        assert.match(problems[i]?.message ?? '', message),
      );
    });
  }

  it('has at least 20 cases', () => assert.ok(malformed.length >= 20));
});

describe('parseSpecText', () => {
  it('reports a YAML syntax error by line', () => {
    const parsed = parseSpecText('sites:\n  - name: east\nnodes: [n1\nworkloads: []\n');
    assert.equal(parsed.ok, false);
    assert.ok(!parsed.ok);
    assert.equal(parsed.problems.length, 1);
    assert.match(parsed.problems[0]?.path ?? '', /^line \d+$/);
    assert.equal(parsed.problems[0]?.path, 'line 4');
    assert.match(parsed.problems[0]?.message ?? '', /^expected YAML or JSON: /);
  });

  it('rejects a document over the size limit before parsing it', () => {
    const parsed = parseSpecText(`# ${'x'.repeat(specTextBytesMax)}\n`);
    assert.ok(!parsed.ok);
    assert.deepEqual(parsed.problems, [
      { path: '(document)', message: `expected at most ${specTextBytesMax} bytes` },
    ]);
  });

  it('counts the limit in bytes, not characters', () => {
    // Each "é" is two bytes in UTF-8, so this text has fewer characters than the limit but more bytes.
    const parsed = parseSpecText(`# ${'é'.repeat(specTextBytesMax / 2)}`);
    assert.equal(parsed.ok, false);
  });
});

describe('validateSpec: several problems', () => {
  it('reports every schema problem, not just the first', () => {
    const spec = fullSpec();
    spec.apiVersion = 'v0';
    spec.nodes[0].capacity.cpu = -1;
    spec.workloads[0].endpoints[0].port = 0;
    spec.workloads[1].proces = {};
    const paths = problemsOf(spec).map((p) => p.path);
    assert.deepEqual(paths.sort(), [
      'apiVersion',
      'nodes[0].capacity.cpu',
      `${w0}.endpoints[0].port`,
      `${w1}.proces`,
    ]);
  });

  it('reports every cross-reference problem, not just the first', () => {
    const spec = fullSpec();
    spec.sites.push({ name: 'west' });
    spec.nodes[0].site = 'north';
    spec.workloads[0].probes[0].endpoint = 'admin';
    spec.workloads[1].driver = 'vm';
    spec.workloads[1].endpoints[0].port = 8080;
    spec.workloads[1].availability = { placement: { antiAffinity: ['cache'] } };
    const paths = problemsOf(spec).map((p) => p.path);
    assert.deepEqual(paths.sort(), [
      'nodes[0].site',
      'sites[2].name',
      `${w0}.probes[0].endpoint`,
      `${w1}.availability.placement.antiAffinity[0]`,
      `${w1}.driver`,
      `${w1}.endpoints[0].port`,
    ]);
  });
});

const nameArb = fc.stringMatching(/^[a-z][a-z0-9-]{0,6}[a-z0-9]$/);

/** Small valid specs: every reference points at something declared and every workload fits. */
const validSpecArb = fc
  .record({
    sites: fc.uniqueArray(nameArb, { minLength: 1, maxLength: 3 }),
    nodes: fc.uniqueArray(
      fc.record({
        name: nameArb,
        siteIndex: fc.nat(),
        cpu: fc.integer({ min: 1, max: 64 }),
        memoryMiB: fc.integer({ min: 256, max: 65536 }),
        spare: fc.boolean(),
      }),
      { minLength: 1, maxLength: 4, selector: (n) => n.name },
    ),
    workloads: fc.uniqueArray(
      fc.record({
        name: nameArb,
        endpointCount: fc.integer({ min: 0, max: 2 }),
        intervalMs: fc.integer({ min: 100, max: 10_000 }),
      }),
      { maxLength: 3, selector: (w) => w.name },
    ),
  })
  .map(({ sites, nodes, workloads }) => ({
    sites: sites.map((name) => ({ name, description: `site ${name}` })),
    nodes: nodes.map((n) => ({
      name: n.name,
      site: sites[n.siteIndex % sites.length],
      role: n.spare ? 'spare' : 'production',
      capacity: { cpu: n.cpu, memoryMiB: n.memoryMiB },
      labels: { zone: 'a' },
    })),
    workloads: workloads.map((w, i) => ({
      name: w.name,
      driver: 'process',
      process: { command: ['node', `${w.name}.js`], env: { PORT: String(20_000 + i) } },
      resources: { cpu: 1, memoryMiB: 256 },
      endpoints: Array.from({ length: w.endpointCount }, (_, j) => ({
        name: `e${j}`,
        port: 10_000 + 10 * i + j,
      })),
      probes:
        w.endpointCount > 0
          ? [{ type: 'tcp', endpoint: 'e0', intervalMs: w.intervalMs }]
          : [{ type: 'exec', command: ['true'], intervalMs: w.intervalMs }],
      availability: { placement: { labels: { zone: 'a' }, sites } },
    })),
  }));

/** Every string or number in a value, with its path. */
function leaves(value: unknown, path: (string | number)[] = []): [(string | number)[], unknown][] {
  if (typeof value === 'string' || typeof value === 'number') return [[path, value]];
  if (Array.isArray(value)) return value.flatMap((item, i) => leaves(item, [...path, i]));
  if (typeof value === 'object' && value !== null)
    return Object.entries(value).flatMap(([key, item]) => leaves(item, [...path, key]));
  return [];
}

function setAt(root: any, path: (string | number)[], value: unknown): void {
  const parent = path.slice(0, -1).reduce((node: any, key) => node[key], root);
  parent[path[path.length - 1]!] = value;
}

describe('validateSpec: properties', () => {
  it('accepts random valid specs, deterministically and without touching the input', () => {
    fc.assert(
      fc.property(validSpecArb, (spec) => {
        const before = structuredClone(spec);
        const first = validateSpec(spec);
        assert.ok(first.ok, JSON.stringify(!first.ok && first.problems));
        assert.deepEqual(validateSpec(spec), first);
        assert.deepEqual(spec, before);
      }),
    );
  });

  it('names the field when any one field has the wrong type', () => {
    fc.assert(
      fc.property(validSpecArb, fc.nat(), (spec, pick) => {
        const all = leaves(spec);
        const [path, value] = all[pick % all.length]!;
        setAt(spec, path, typeof value === 'string' ? 42 : 'not a number');
        const problems = problemsOf(spec);
        const at = formatPath(path);
        assert.ok(
          problems.some((p) => p.path === at && /expected/.test(p.message)),
          `no problem at ${at}: ${JSON.stringify(problems)}`,
        );
      }),
    );
  });
});

describe('validateSpec: context', () => {
  const context: SpecContext = {
    sites: ['dc1'],
    nodes: [
      { name: 'old1', site: 'dc1', capacity: { cpu: 4, memoryMiB: 4096 }, labels: { gpu: 'yes' } },
    ],
    workloads: ['legacy'],
  };

  it('accepts references to sites, nodes and workloads the cluster already holds', () => {
    const spec = {
      nodes: [{ name: 'n9', site: 'dc1', capacity: { cpu: 1, memoryMiB: 512 } }],
      workloads: [
        {
          name: 'trainer',
          driver: 'process',
          process: { command: ['train'] },
          resources: { cpu: 2, memoryMiB: 2048 },
          availability: {
            placement: { labels: { gpu: 'yes' }, antiAffinity: ['legacy'], sites: ['dc1'] },
          },
        },
      ],
    };
    assert.equal(validateSpec(spec).ok, false, 'without context the references dangle');
    const result = validateSpec(spec, context);
    assert.ok(result.ok, JSON.stringify(!result.ok && result.problems));
  });

  it('still checks a workload against the nodes of the context', () => {
    const spec = {
      workloads: [
        {
          name: 'big',
          driver: 'process',
          process: { command: ['big'] },
          resources: { cpu: 8 },
          availability: { placement: { antiAffinity: ['ghost'] } },
        },
      ],
    };
    const result = validateSpec(spec, context);
    assert.ok(!result.ok);
    assert.deepEqual(
      result.problems.map((p) => p.path),
      ['workloads[0].availability.placement.antiAffinity[0]', 'workloads[0].resources'],
    );
  });
});
