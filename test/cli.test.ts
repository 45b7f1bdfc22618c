// The CLI against a real cluster: tables and JSON, errors printed with their code, and the planned
// operations (switchover, maintenance, restart) doing what they say.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { cliPath, waitFor } from './harness/cluster.js';
import { activeOn, info, serves, startDemo, type Demo } from './harness/demo.js';

const run = promisify(execFile);

describe('continuum CLI', () => {
  let demo: Demo;
  before(async () => (demo = await startDemo()));
  after(() => demo.cluster.close());

  async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const common = [
      '--controller',
      demo.cluster.url,
      '--token-file',
      join(demo.cluster.controllerDir, 'api.token'),
    ];
    try {
      const { stdout, stderr } = await run(process.execPath, [cliPath, ...args, ...common]);
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  }

  it('prints aligned tables for people and JSON for scripts', async () => {
    const table = await cli('get', 'nodes');
    assert.equal(table.code, 0);
    const lines = table.stdout.trim().split('\n');
    assert.match(lines[0]!, /^NAME\s+SITE\s+ROLE\s+STATE/);
    assert.equal(lines.length, 4);
    const json = await cli('get', 'nodes', '-o', 'json');
    const nodes = JSON.parse(json.stdout) as { name: string; state: string }[];
    assert.deepEqual(nodes.map((n) => n.name).sort(), ['node-1', 'node-2', 'spare-1']);
    assert.ok(nodes.every((n) => n.state === 'up'));
  });

  it('reports an invalid spec with its code and every located problem, and exits 1', async () => {
    const file = join(demo.cluster.dir, 'bad.yaml');
    writeFileSync(
      file,
      'workloads:\n  - name: Bad_Name\n    driver: process\n    resources: { cpu: -1 }\n',
    );
    const result = await cli('apply', '-f', file);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /error CONTINUUM_ERR_SPEC_INVALID/);
    assert.match(result.stderr, /workloads\[0\]\.name: expected a name/);
    assert.match(result.stderr, /workloads\[0\]\.resources\.cpu: expected/);
  });

  it('reports a wrong token with CONTINUUM_ERR_UNAUTHORIZED', async () => {
    const file = join(demo.cluster.dir, 'wrong.token');
    writeFileSync(file, 'not-the-right-token-at-all\n', { mode: 0o600 });
    try {
      await run(process.execPath, [
        cliPath,
        'get',
        'nodes',
        '--controller',
        demo.cluster.url,
        '--token-file',
        file,
      ]);
      assert.fail('expected a failure');
    } catch (err) {
      assert.match((err as { stderr: string }).stderr, /error CONTINUUM_ERR_UNAUTHORIZED/);
    }
  });

  it('switches a workload over with the old instance stopped before the new one starts', async () => {
    const before = await demo.cluster.workload('kv');
    const target = before.node === 'node-1' ? 'node-2' : 'node-1';
    const result = await cli('switchover', 'kv', '--to', target);
    assert.equal(result.code, 0, result.stderr);
    const after = await activeOn(demo.cluster, (w) => w.node === target, `kv active on ${target}`);
    assert.equal(after.epoch, before.epoch + 1);
    await waitFor(
      'the endpoint to serve from the target',
      10_000,
      async () => (await serves(demo.endpoint)) && (await info(demo.endpoint)).node === target,
    );
    const events = await demo.cluster.events();
    const stopped = events.find(
      (e) => e.kind === 'instance.stopped' && e.subject.name === `kv/${before.node}`,
    );
    const started = events.find((e) => e.kind === 'switchover.started');
    assert.ok(
      stopped && started && stopped.seq < started.seq,
      'old instance stopped before the new one started',
    );
    const described = await cli('describe', 'workload', 'kv');
    assert.match(described.stdout, /switchover/);
  });

  it('maintenance on moves everything off a node; off makes it schedulable again', async () => {
    const before = await demo.cluster.workload('kv');
    const on = await cli('maintenance', 'on', before.node!);
    assert.equal(on.code, 0, on.stderr);
    await activeOn(
      demo.cluster,
      (w) => w.node !== before.node,
      'kv moved off the node in maintenance',
    );
    assert.equal((await demo.cluster.node(before.node!))?.state, 'maintenance');
    const off = await cli('maintenance', 'off', before.node!);
    assert.equal(off.code, 0, off.stderr);
    await waitFor(
      'the node to be up',
      5_000,
      async () => (await demo.cluster.node(before.node!))?.state === 'up',
    );
  });

  it('restarts a workload in place', async () => {
    const before = await demo.cluster.workload('kv');
    const result = await cli('restart', 'kv');
    assert.equal(result.code, 0, result.stderr);
    const after = await activeOn(
      demo.cluster,
      (w) => w.instance?.pid !== before.instance?.pid,
      'kv restarted',
    );
    assert.equal(after.node, before.node);
    assert.equal(after.epoch, before.epoch);
  });

  it("prints the workload's recent output, read on its node, and refuses a bad line count", async () => {
    const owner = (await demo.cluster.workload('kv')).node!;
    const result = await waitFor('the service to have written its start line', 10_000, async () => {
      const r = await cli('logs', 'kv', '--lines', '20');
      return r.code === 0 && /kv-service listening on/.test(r.stdout) ? r : undefined;
    });
    assert.ok(result.stdout.trim().split('\n').length <= 20);
    const json = JSON.parse((await cli('logs', 'kv', '-o', 'json')).stdout) as {
      node: string;
      lines: string[];
      epoch: number;
    };
    assert.equal(json.node, owner);
    assert.ok(json.lines.some((line) => /pid=\d+ epoch=\d+/.test(line)));
    const bad = await cli('logs', 'kv', '--lines', '0');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /CONTINUUM_ERR_BAD_REQUEST.*lines.*from 1 to 1000/s);
    const nowhere = await cli('logs', 'kv', '--node', 'node-9');
    assert.equal(nowhere.code, 3, 'unavailable: a retry may help');
    assert.match(nowhere.stderr, /CONTINUUM_ERR_UNAVAILABLE.*node node-9 is not connected/s);
  });
});

/** Runs the CLI with `args` in a data directory that cannot exist; its exit code and stderr. */
async function startRefused(args: string[]): Promise<{ code: number; stderr: string }> {
  return run(process.execPath, [
    cliPath,
    ...args,
    '--data-dir',
    '/nonexistent/continuum-never-created',
  ]).then(
    () => ({ code: 0, stderr: '' }),
    (err: { code: number; stderr: string }) => err,
  );
}

describe('continuum controller options', () => {
  it('refuses detection timings that do not fit together, naming the options, before starting', async () => {
    const refused = await startRefused([
      'controller',
      '--port',
      '0',
      '--suspect-after-ms',
      '900',
      '--down-after-ms',
      '800',
    ]);
    assert.equal(refused.code, 1);
    assert.match(
      refused.stderr,
      /^error: --down-after-ms: expected more than --suspect-after-ms \(900 ms\), got 800\n$/,
    );
  });
});

describe('continuum volume serve and agent options', () => {
  it('refuses a loop poll window outside 0-1000 us, naming the flag, before starting', async () => {
    const attempts = [
      {
        args: ['volume', 'serve', '--node', 'x', '--loop-poll-us', '2000'],
        flag: '--loop-poll-us',
        got: '2000',
      },
      {
        args: ['agent', '--name', 'x', '--volume-loop-poll-us', '5us'],
        flag: '--volume-loop-poll-us',
        got: '"5us"',
      },
    ];
    for (const { args, flag, got } of attempts) {
      const refused = await startRefused(args);
      assert.equal(refused.code, 1);
      assert.equal(
        refused.stderr,
        `error: ${flag}: expected a whole number of microseconds from 0 to 1000, got ${got}\n`,
      );
    }
  });
});
