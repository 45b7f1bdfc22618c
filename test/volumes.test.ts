// Volumes on a real agent: managed through the API (create, grow, snapshot, clone, delete with the
// refusals an operator relies on), mounted into a process instance by the agent, kept across an
// agent that is killed (the instance restarts with its data), and detached when the workload goes,
// leaving an ext4 file system that e2fsck finds clean.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  openSync,
  readFileSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isProcessAlive } from '../src/agent/drivers/process/proc-fs.js';
import { detectAttachMethods } from '../src/storage/attach/index.js';
import { onPath } from './attach/harness.js';
import { cliPath, TestCluster, waitFor } from './harness/cluster.js';

const mebibyte = 1_048_576;
const tools = ['nbdcopy', 'e2fsck', 'debugfs', 'qemu-img'];

function missing(): string | false {
  const absent = tools.find((tool) => !onPath(tool));
  return absent === undefined ? false : `${absent} is not installed`;
}

interface Volume {
  name: string;
  node: string;
  sizeBytes: number;
  snapshots: string[];
  origin?: string;
  attached: boolean;
}

interface ApiError {
  error: { code: string; message: string };
}

function mounted(path: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((line) => line.split(' ')[4] === path);
}

const detection = await detectAttachMethods();
const skip =
  missing() || (detection.preferred === null ? 'no volume attach method works here' : false);

describe('volumes on a real agent', { skip }, () => {
  // Agents are killed and restarted below; they must be back before the node counts as down.
  const cluster = new TestCluster({ downAfterMs: 10_000 });
  const mountPath = join(cluster.dir, 'mnt', 'data');
  const starts = join(mountPath, 'starts');

  const volumes = async () =>
    (await cluster.api<{ items: Volume[] }>('GET', '/v1/volumes?node=node-1')).body.items;

  const workloadSpec = {
    name: 'writer',
    driver: 'process',
    process: {
      // Appends a line per start and makes it durable, then stays up.
      command: ['sh', '-c', `echo started >> ${starts} && sync ${starts} && exec sleep 100000`],
      stopGraceMs: 2000,
    },
    resources: { cpu: 0.1, memoryMiB: 16 },
    volumes: [{ name: 'data', node: 'node-1', sizeMiB: 64, mountPath }],
    availability: {
      mode: 'ha',
      restart: { maxRestarts: 5, windowMs: 60_000, backoffInitialMs: 100, backoffMaxMs: 1000 },
    },
  };

  const clusterSpec = (workloads: unknown[]) => ({
    apiVersion: 'continuum/v1',
    sites: [{ name: 'local' }],
    nodes: [
      { name: 'node-1', site: 'local', role: 'production', capacity: { cpu: 2, memoryMiB: 2048 } },
    ],
    workloads,
  });

  before(async () => {
    await cluster.startController();
    const applied = await cluster.api('POST', '/v1/apply', clusterSpec([]));
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
    await cluster.startAgent({ name: 'node-1', role: 'production' });
  });
  after(() => cluster.close());

  it('creates, grows, snapshots, clones and deletes volumes through the CLI and the API', async () => {
    const token = join(cluster.controllerDir, 'api.token');
    const cli = (...args: string[]) =>
      execFileSync(
        process.execPath,
        [cliPath, 'volume', ...args, '--controller', cluster.url, '--token-file', token],
        { encoding: 'utf8', stdio: 'pipe' },
      );
    assert.match(cli('create', 'node-1/scratch', '16M'), /node-1\s+scratch\s+16 MiB/);
    assert.throws(() => cli('create', 'node-1/bad', '16X'), /size: expected a whole number/);
    const again = await cluster.api<ApiError>('POST', '/v1/volumes', {
      node: 'node-1',
      name: 'scratch',
      sizeMiB: 16,
    });
    assert.equal(again.status, 409);
    assert.equal(again.body.error.code, 'CONTINUUM_ERR_VOLUME_EXISTS');

    const shrink = await cluster.api<ApiError>('POST', '/v1/volumes/node-1/scratch/grow', {
      sizeMiB: 8,
    });
    assert.equal(shrink.status, 400, 'a volume cannot shrink');
    assert.equal(
      (await cluster.api('POST', '/v1/volumes/node-1/scratch/grow', { sizeMiB: 32 })).status,
      200,
    );
    assert.equal(
      (await cluster.api('POST', '/v1/volumes/node-1/scratch/snapshots', { snapshot: 's1' }))
        .status,
      200,
    );
    const cloned = await cluster.api('POST', '/v1/volumes/node-1/scratch/clone', {
      snapshot: 's1',
      name: 'copy',
    });
    assert.equal(cloned.status, 200, JSON.stringify(cloned.body));

    const listedByCli = JSON.parse(cli('list', '--node', 'node-1', '-o', 'json')) as {
      items: Volume[];
    };
    assert.deepEqual(listedByCli.items.map((v) => v.name).sort(), ['copy', 'scratch']);
    const listed = new Map((await volumes()).map((v) => [v.name, v]));
    assert.deepEqual(
      { ...listed.get('scratch'), allocatedBytes: undefined },
      {
        name: 'scratch',
        node: 'node-1',
        sizeBytes: 32 * mebibyte,
        allocatedBytes: undefined,
        snapshots: ['s1'],
        attached: false,
      },
    );
    assert.equal(listed.get('copy')?.origin, 'scratch@s1');

    const refused = await cluster.api<ApiError>(
      'DELETE',
      '/v1/volumes/node-1/scratch/snapshots/s1',
    );
    assert.equal(refused.status, 409, 'a snapshot a clone stands on is not deleted');
    assert.equal(refused.body.error.code, 'CONTINUUM_ERR_VOLUME_HAS_DEPENDENTS');
    assert.match(refused.body.error.message, /copy/);

    assert.equal((await cluster.api('DELETE', '/v1/volumes/node-1/copy')).status, 200);
    assert.equal(
      (await cluster.api('DELETE', '/v1/volumes/node-1/scratch/snapshots/s1')).status,
      200,
    );
    assert.equal((await cluster.api('DELETE', '/v1/volumes/node-1/scratch')).status, 200);
    assert.deepEqual(await volumes(), []);
    const journal = (await cluster.events()).filter((e) => e.kind.startsWith('volume.'));
    assert.deepEqual(
      journal.map((e) => e.kind),
      ['volume.create', 'volume.grow', 'volume.snapshot', 'volume.clone', 'volume.delete'].concat([
        'volume.delete-snapshot',
        'volume.delete',
      ]),
    );
  });

  it('imports a qcow2 image through the running agent with the CLI, served at once', async () => {
    const raw = join(cluster.dir, 'seed.raw');
    const qcow2 = join(cluster.dir, 'seed.qcow2');
    writeFileSync(raw, Buffer.concat([randomBytes(2 * mebibyte), Buffer.alloc(2 * mebibyte)]));
    execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, qcow2]);
    const cli = (...args: string[]) =>
      execFileSync(process.execPath, [cliPath, 'volume', ...args], { encoding: 'utf8' });
    const nodeDir = cluster.nodeDir('node-1');
    const output = cli('import', qcow2, 'seeded', '--data-dir', nodeDir);
    assert.match(output, /volume seeded: 4 MiB imported/);
    const listed = (await volumes()).find((v) => v.name === 'seeded');
    assert.equal(listed?.sizeBytes, 4 * mebibyte);
    const copy = join(cluster.dir, 'seeded.raw');
    const socket = join(cluster.nodeDir('node-1'), 'run', 'nbd.sock');
    execFileSync('nbdcopy', [`nbd+unix:///seeded?socket=${socket}`, copy]);
    assert.ok(readFileSync(copy).equals(readFileSync(raw)), 'the NBD export is the image');
    assert.equal((await cluster.api('DELETE', '/v1/volumes/node-1/seeded')).status, 200);

    const imported = cli('import', qcow2, 'golden', '--image', '--data-dir', nodeDir);
    assert.match(imported, /image golden: 4 MiB imported \(sha256 [0-9a-f]{64}\)/);
    const web = await cluster.api('POST', '/v1/volumes', {
      node: 'node-1',
      name: 'web',
      image: 'golden',
    });
    assert.equal(web.status, 200, JSON.stringify(web.body));
    const listed2 = (await volumes()).find((v) => v.name === 'web');
    assert.equal(listed2?.origin, 'golden');
    assert.equal(listed2?.sizeBytes, 4 * mebibyte, "a clone of an image has the image's size");
    execFileSync('nbdcopy', [`nbd+unix:///web?socket=${socket}`, copy]);
    assert.ok(readFileSync(copy).equals(readFileSync(raw)), 'the clone reads as the image');
    const refused = await cluster.api<ApiError>('POST', '/v1/volumes', {
      node: 'node-1',
      name: 'x',
    });
    assert.equal(refused.status, 400);
    assert.match(refused.body.error.message, /sizeMiB.*expected sizeMiB, or image/);
    assert.equal((await cluster.api('DELETE', '/v1/volumes/node-1/web')).status, 200);
    cli('delete-image', 'golden', '--data-dir', nodeDir);
  });

  it('mounts a volume into a process instance before it starts', async () => {
    const applied = await cluster.api('POST', '/v1/apply', clusterSpec([workloadSpec]));
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
    await waitFor('the writer to be active', 30_000, async () => {
      return (await cluster.workload('writer')).phase === 'active';
    });
    await waitFor('the first start to be written', 10_000, () => existsSync(starts));
    assert.ok(mounted(mountPath), `${mountPath} is a mount point`);
    assert.equal(readFileSync(starts, 'utf8'), 'started\n');
    const data = (await volumes()).find((v) => v.name === 'data');
    assert.equal(data?.sizeBytes, 64 * mebibyte, 'created on first use at the size of the spec');
    assert.equal(data?.attached, true);

    const refused = await cluster.api<ApiError>('DELETE', '/v1/volumes/node-1/data');
    assert.equal(refused.status, 409, 'a mounted volume is not deleted');
    assert.equal(refused.body.error.code, 'CONTINUUM_ERR_CONFLICT');
  });

  const agentLogTail = (error: Error): never => {
    const tail = (file: string) =>
      existsSync(join(cluster.nodeDir('node-1'), file))
        ? readFileSync(join(cluster.nodeDir('node-1'), file), 'utf8').slice(-3000)
        : '(none)';
    throw new Error(
      `${error.message}\nagent log (end):\n${tail('agent.log')}\n` +
        `volume server log (end):\n${tail('volume-server.log')}`,
    );
  };

  it('keeps the instance and its mount when only the agent is killed and restarted', async () => {
    const before = (await cluster.workload('writer')).instance;
    cluster.signalProcess('node-1', 'SIGKILL');
    await cluster.waitExit('node-1');
    // Meanwhile the mount still works: the volume server is its own process.
    const fd = openSync(join(mountPath, 'while-away'), 'w');
    writeSync(fd, 'written while the agent was down\n');
    fsyncSync(fd);
    closeSync(fd);
    await cluster.startAgent({ name: 'node-1', role: 'production' });
    const after = await waitFor('the agent to report the writer again', 30_000, async () => {
      const workload = await cluster.workload('writer');
      return workload.phase === 'active' && workload.instance?.state === 'healthy'
        ? workload.instance
        : undefined;
    }).catch(agentLogTail);
    assert.equal(after.pid, before?.pid, 'the same process runs on');
    assert.equal(readFileSync(starts, 'utf8'), 'started\n', 'and was not restarted');
    assert.ok(mounted(mountPath));
  });

  it('restarts the instance with fresh mounts when the volume server died too, data intact', async () => {
    const before = (await cluster.workload('writer')).instance?.pid;
    const serverPid = Number(
      readFileSync(join(cluster.nodeDir('node-1'), 'run', 'volume-server.pid'), 'utf8'),
    );
    process.kill(serverPid, 'SIGKILL');
    await waitFor('the volume server to die', 10_000, () => !isProcessAlive(serverPid));
    cluster.signalProcess('node-1', 'SIGKILL');
    await cluster.waitExit('node-1');
    await cluster.startAgent({ name: 'node-1', role: 'production' }).catch(agentLogTail);
    await waitFor('the writer to run again, through the new volume server', 30_000, async () => {
      const workload = await cluster.workload('writer');
      return (
        workload.phase === 'active' &&
        workload.instance?.pid !== before &&
        existsSync(starts) &&
        /^(started\n){2,}$/.test(readFileSync(starts, 'utf8'))
      );
    }).catch(agentLogTail);
    assert.ok(mounted(mountPath));
    assert.equal(
      readFileSync(join(mountPath, 'while-away'), 'utf8'),
      'written while the agent was down\n',
      'what was fsynced through the old server is there',
    );
  });

  it('detaches when the workload goes, and leaves a clean ext4 file system', async () => {
    const written = readFileSync(starts, 'utf8');
    assert.equal((await cluster.api('DELETE', '/v1/workloads/writer')).status, 200);
    await waitFor('the volume to be detached', 30_000, async () => {
      const data = (await volumes()).find((v) => v.name === 'data');
      return data?.attached === false && !mounted(mountPath);
    });
    const socket = join(cluster.nodeDir('node-1'), 'run', 'nbd.sock');
    const image = join(cluster.dir, 'data.img');
    execFileSync('nbdcopy', [`nbd+unix:///data?socket=${socket}`, image]);
    execFileSync('e2fsck', ['-fn', image], { stdio: 'pipe' });
    const content = execFileSync('debugfs', ['-R', 'cat /starts', image], { stdio: 'pipe' });
    assert.equal(
      content.toString(),
      written,
      'what the instance wrote and synced is on the volume',
    );
  });
});
