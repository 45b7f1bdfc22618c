// Two nodes' volume servers in one process, on real sockets: a replicated volume written through
// node a's primary is read back through node b's after a failover; a replica is never exported;
// and the old primary, given its stale duty again, is fenced by the new one and fails its writes.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { silentLogger } from '../core/ports.js';
import type { PrimaryReportMessage, VolumeDutyMessage } from '../core/protocol.js';
import { systemClock } from '../platform/real-ports.js';
import { NbdClient, NbdReplyError } from '../storage/nbd/client.js';
import { VolumeServerClient } from './volume-client.js';
import { callVolumeServer, type VolumeControl } from './volume-jobs.js';
import { parseListenAddress } from './volume-replication.js';
import { VolumeServer } from './volume-server.js';

const mebibyte = 1_048_576;
const sizeMiB = 4;
const waitMs = 15_000;

async function control(dataDir: string, request: VolumeControl): Promise<unknown> {
  const answer = await callVolumeServer(dataDir, request);
  assert.ok(answer !== null, `a volume server answers in ${dataDir}`);
  return answer.result;
}

function duty(
  role: VolumeDutyMessage['role'],
  epoch: number,
  membership: VolumeDutyMessage['membership'],
): VolumeDutyMessage {
  return { volume: 'data', sizeBytes: sizeMiB * mebibyte, role, epoch, membership };
}

function nbdExport(dataDir: string) {
  return NbdClient.connect(
    { kind: 'unix', socketPath: join(dataDir, 'run', 'nbd.sock') },
    { exportName: 'data' },
  );
}

/** Polls `check` until it holds or the deadline passes (no fixed sleeps: CONVENTIONS.md 19). */
async function eventually<T>(what: string, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + waitMs;
  while (Date.now() < deadline) {
    const value = await check();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('replicated volumes on two volume servers', () => {
  const root = mkdtempSync(join(tmpdir(), 'continuum-repl-'));
  const dirs = { a: join(root, 'a'), b: join(root, 'b') };
  const open = new Set<VolumeServer>();
  after(async () => {
    for (const server of open) await server.close();
    rmSync(root, { recursive: true, force: true });
  });

  async function start(node: 'a' | 'b'): Promise<{ server: VolumeServer; address: string }> {
    const server = await VolumeServer.start({
      node,
      dataDir: dirs[node],
      logger: silentLogger,
      replicationListen: { host: '127.0.0.1', port: 0 },
      ensurePrimaryTimeoutMs: 300,
    });
    open.add(server);
    const hello = (await control(dirs[node], { op: 'hello' })) as { replicationAddress: string };
    assert.equal(hello.replicationAddress, server.replicationAddress);
    const { host, port } = parseListenAddress(hello.replicationAddress);
    assert.equal(host, '127.0.0.1');
    assert.ok(port > 0, 'bound to a real port');
    return { server, address: hello.replicationAddress };
  }

  async function stop(server: VolumeServer): Promise<void> {
    await server.close();
    open.delete(server);
  }

  it('fails over without losing a flushed write, and fences the old primary', async () => {
    let a = await start('a');
    const b = await start('b');
    const membership = (addressA: string, isr: string[], isrVersion: number) => ({
      replicas: [
        { node: 'a', address: addressA },
        { node: 'b', address: b.address },
      ],
      isr,
      isrVersion,
    });

    // Epoch 1: a is primary, b its in-sync replica.
    const first = membership(a.address, ['a', 'b'], 1);
    await control(dirs.b, { op: 'set-duties', duties: [duty('replica', 1, first)] });
    await control(dirs.a, { op: 'set-duties', duties: [duty('primary', 1, first)] });
    const target = (await control(dirs.a, {
      op: 'ensure',
      name: 'data',
      sizeMiB,
      replicas: 2,
      epoch: 1,
    })) as { socketPath: string; exportName: string };
    assert.deepEqual(target, { socketPath: join(dirs.a, 'run', 'nbd.sock'), exportName: 'data' });
    const payload = randomBytes(256 * 1024);
    const writer = await nbdExport(dirs.a);
    assert.equal(writer.sizeBytes, sizeMiB * mebibyte);
    await writer.write(mebibyte, payload);
    await writer.flush();
    await writer.disconnect();

    // A replica is never exported, and its ensure fails with a reason.
    await assert.rejects(nbdExport(dirs.b), NbdReplyError);
    await assert.rejects(
      control(dirs.b, { op: 'ensure', name: 'data', sizeMiB, replicas: 2, epoch: 1 }),
      (error: Error & { code?: string }) =>
        error.code === 'CONTINUUM_ERR_UNAVAILABLE' &&
        /replicated volume data: node b is not its primary at epoch 1/.test(error.message),
    );

    // a goes down; the controller promotes b at epoch 2 without it.
    const addressA = a.address;
    await stop(a.server);
    const second = membership(addressA, ['b'], 2);
    await control(dirs.b, { op: 'set-duties', duties: [duty('primary', 2, second)] });
    await control(dirs.b, { op: 'ensure', name: 'data', sizeMiB, replicas: 2, epoch: 2 });
    const reader = await nbdExport(dirs.b);
    assert.ok((await reader.read(mebibyte, payload.length)).equals(payload), 'the write survived');
    await reader.disconnect();

    // a comes back believing its old duty (through the agent's client this time): b fences it.
    a = await start('a');
    const client = await VolumeServerClient.connect({
      dataDir: dirs.a,
      logger: silentLogger,
      clock: systemClock,
      startServer: () => assert.fail('the server runs already'),
    });
    assert.equal(client.replicationAddress, a.address);
    const reports: PrimaryReportMessage[] = [];
    client.watchReports((report) => reports.push(report));
    client.setDuties([duty('primary', 1, membership(a.address, ['a', 'b'], 1))]);
    const fenced = await eventually('a fenced report', () =>
      Promise.resolve(reports.find((report) => report.kind === 'fenced')),
    );
    assert.equal(fenced.volume, 'data');
    assert.equal(fenced.epoch, 1);
    await client.close();

    const stale = await nbdExport(dirs.a);
    await assert.rejects(stale.write(0, Buffer.alloc(4096, 1)), NbdReplyError);
    await assert.rejects(stale.read(mebibyte, 4096), NbdReplyError);
    stale.socket.destroy();
    await assert.rejects(
      control(dirs.a, { op: 'ensure', name: 'data', sizeMiB, replicas: 2, epoch: 1 }),
      (error: Error & { code?: string }) => error.code === 'CONTINUUM_ERR_STALE_EPOCH',
    );

    // b kept serving epoch 2.
    const again = await nbdExport(dirs.b);
    assert.ok((await again.read(mebibyte, payload.length)).equals(payload));
    await again.disconnect();
  });

  it('refuses to delete or grow a volume while a duty names it', async () => {
    await control(dirs.b, {
      op: 'volume',
      request: { op: 'list' },
    });
    await assert.rejects(
      control(dirs.b, { op: 'volume', request: { op: 'delete', name: 'data' } }),
      (error: Error & { code?: string }) => error.code === 'CONTINUUM_ERR_VOLUME_IN_USE',
    );
    await assert.rejects(
      control(dirs.b, { op: 'volume', request: { op: 'grow', name: 'data', sizeMiB: 8 } }),
      (error: Error & { code?: string }) => error.code === 'CONTINUUM_ERR_VOLUME_IN_USE',
    );
  });
});
