// The README quick start, run as written: `continuum up` from the README in a temporary
// directory, then the "kill a node" command that `up` prints, ending with the endpoint serving.
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { cliPath, repoRoot, waitFor, workloadPids } from './harness/cluster.js';
import { serves } from './harness/demo.js';
import { mountPointsUnder } from './attach/harness.js';
import { detectAttachMethods } from '../src/storage/attach/index.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function readmeCommand(prefix: string): string {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  const line = readme.split('\n').find((l) => l.trim().startsWith(prefix));
  if (line === undefined) throw new Error(`README has no line starting with "${prefix}"`);
  return line.trim();
}

describe('README quick start', () => {
  const dir = mkdtempSync(join(tmpdir(), 'continuum-quickstart-'));
  const pgids: number[] = [];
  after(async () => {
    // `up` ends its children on SIGTERM; anything left (a test that failed half-way) is killed by PID.
    for (const pgid of pgids) {
      try {
        process.kill(pgid, 'SIGTERM');
      } catch {
        // Already gone.
      }
    }
    await waitFor('continuum up to exit', 40_000, () => pgids.every((pid) => !alive(pid))).catch(
      () => undefined,
    );
    const pidFiles = `${dir}/continuum-demo/nodes/*/agent.pid ${dir}/continuum-demo/redirector/redirector.pid`;
    for (const line of execFileSync('sh', ['-c', `cat ${pidFiles} 2>/dev/null || true`], {
      encoding: 'utf8',
    })
      .split('\n')
      .filter(Boolean)) {
      try {
        process.kill(-Number(line), 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    await waitFor('demo workloads to end', 10_000, () => workloadPids(dir).length === 0).catch(
      () => undefined,
    );
    // A test that failed half-way may leave the demo volume mounted: never delete through a mount.
    for (const mount of mountPointsUnder(dir).reverse()) {
      try {
        execFileSync('umount', ['-l', mount], { stdio: 'ignore' });
      } catch {
        // Gone meanwhile.
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('starts the demo, survives the printed kill command, and serves again', async () => {
    // What `npm link` does: put `continuum` on the PATH.
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    symlinkSync(cliPath, join(bin, 'continuum'));
    const env = {
      ...process.env,
      PATH: `${bin}:${process.env.PATH ?? ''}`,
      CONTINUUM_HOME: join(dir, 'continuum-demo'),
    };
    const upCommand = readmeCommand('continuum up');
    const up = spawn('sh', ['-c', `exec ${upCommand}`], {
      cwd: dir,
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    pgids.push(up.pid!);
    let output = '';
    up.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    up.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    await waitFor('continuum up to print that it is up', 60_000, () =>
      output.includes('Continuum is up.'),
    );
    const endpoint = /endpoint \(demo key-value service\): (\S+)/.exec(output)?.[1];
    assert.ok(endpoint, `up printed the endpoint:\n${output}`);
    assert.ok(await serves(endpoint));
    const kill = output
      .split('\n')
      .map((l) => l.trim())
      .find((l) => l.startsWith('kill -9 -$(cat '));
    assert.ok(kill, `up printed the kill command:\n${output}`);
    const volumes = (await detectAttachMethods()).preferred !== null;
    const put = await fetch(`${endpoint}/kv/greeting`, { method: 'PUT', body: 'hello' });
    assert.ok(put.ok, `the README's PUT is answered (${put.status})`);
    execFileSync('sh', ['-c', kill], { cwd: dir, env });
    // The failover is what the README promises; polling the endpoint alone could be answered by
    // the old instance in the instant before the kill reaches it.
    const failovers = () =>
      execFileSync('sh', ['-c', 'continuum get failovers'], { cwd: dir, env, encoding: 'utf8' });
    await waitFor('the failover to be journaled', 20_000, () => /kv\s+failover/.test(failovers()));
    await waitFor('the endpoint to serve again after the node was killed', 20_000, () =>
      serves(endpoint),
    );
    assert.match(output, /kv runs on node-/, 'the service starts on a production node');
    if (volumes) {
      const greeting = await fetch(`${endpoint}/kv/greeting`);
      assert.equal(await greeting.text(), 'hello', 'the key written before the kill survived it');
      const described = execFileSync('sh', ['-c', 'continuum describe workload kv'], {
        cwd: dir,
        env,
        encoding: 'utf8',
      });
      assert.match(described, /Volumes:\n {2}kv-data: copies .*; in sync /, described);
      const listed = execFileSync('sh', ['-c', 'continuum get workloads'], {
        cwd: dir,
        env,
        encoding: 'utf8',
      });
      assert.match(listed, /COPIES/, listed);
    }
    if (volumes)
      assert.match(
        output,
        /kv keeps its keys on volume kv-data, 2 copies in sync/,
        'where volumes attach, the demo keeps its keys on a replicated volume',
      );
    // Ctrl-C (here SIGTERM) stops everything, and leaves nothing mounted (the killed node's
    // volume too, which no agent came back to detach).
    for (const pgid of pgids) process.kill(pgid, 'SIGTERM');
    await waitFor('continuum up to exit', 40_000, () => pgids.every((pid) => !alive(pid)));
    assert.deepEqual(mountPointsUnder(dir), [], 'continuum up left mounts behind');
  });
});
