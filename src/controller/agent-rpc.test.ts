// Calls forwarded to agents (volume operations here; the logs of an instance use the same class): answered by id, failed fast without a session, failed on
// timeout or disconnect, and late or foreign answers dropped.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ControllerMessage } from '../core/protocol.js';
import { FakeClock } from '../sim/fake-clock.js';
import { agentCallsPendingMax, volumeRpc } from './agent-rpc.js';

function rig(connected = new Set(['n1'])) {
  const clock = new FakeClock();
  const sent: { node: string; message: ControllerMessage }[] = [];
  const rpc = volumeRpc({
    clock,
    timeoutMs: 1_000,
    send: (node, message) => {
      if (!connected.has(node)) return false;
      sent.push({ node, message });
      return true;
    },
  });
  const idOf = (index: number) => {
    const message = sent[index]!.message;
    assert.equal(message.type, 'volume-request');
    return message.type === 'volume-request' ? message.id : -1;
  };
  return { clock, sent, rpc, idOf };
}

const result = { volumes: [] };

describe('VolumeRpc', () => {
  it('resolves a call with the answer of the same id from the same node', async () => {
    const { rpc, idOf } = rig();
    const call = rpc.call('n1', { op: 'list' });
    rpc.reply('n2', { type: 'volume-reply', id: idOf(0), ok: true, result: { volumes: [] } });
    rpc.reply('n1', { type: 'volume-reply', id: idOf(0) + 1, ok: true, result });
    rpc.reply('n1', { type: 'volume-reply', id: idOf(0), ok: true, result });
    assert.deepEqual(await call, result);
  });

  it('carries the agent error code, and maps unknown codes to a driver error', async () => {
    const { rpc, idOf } = rig();
    const a = rpc.call('n1', { op: 'delete', name: 'x' });
    const b = rpc.call('n1', { op: 'delete', name: 'y' });
    rpc.reply('n1', {
      type: 'volume-reply',
      id: idOf(0),
      ok: false,
      code: 'CONTINUUM_ERR_NOT_FOUND',
      message: 'no volume x',
    });
    rpc.reply('n1', {
      type: 'volume-reply',
      id: idOf(1),
      ok: false,
      code: 'EWHATEVER',
      message: 'odd',
    });
    await assert.rejects(a, { code: 'CONTINUUM_ERR_NOT_FOUND', message: 'node n1: no volume x' });
    await assert.rejects(b, { code: 'CONTINUUM_ERR_DRIVER' });
  });

  it('fails at once for a node without a session, on timeout, and when the session ends', async () => {
    const { rpc, clock, idOf } = rig();
    await assert.rejects(rpc.call('n9', { op: 'list' }), { code: 'CONTINUUM_ERR_UNAVAILABLE' });
    const slow = rpc.call('n1', { op: 'list' });
    clock.advance(1_000);
    await assert.rejects(slow, { code: 'CONTINUUM_ERR_TIMEOUT' });
    const cut = rpc.call('n1', { op: 'list' });
    rpc.nodeGone('n1');
    await assert.rejects(cut, { code: 'CONTINUUM_ERR_UNAVAILABLE', message: /disconnected/ });
    // An answer after the timeout is dropped quietly.
    rpc.reply('n1', { type: 'volume-reply', id: idOf(0), ok: true, result });
  });

  it(`refuses more than ${agentCallsPendingMax} calls in flight`, async () => {
    const { rpc } = rig();
    const calls = Array.from({ length: agentCallsPendingMax }, () =>
      rpc.call('n1', { op: 'list' }),
    );
    await assert.rejects(rpc.call('n1', { op: 'list' }), {
      code: 'CONTINUUM_ERR_UNAVAILABLE',
      message: /too many/,
    });
    rpc.close();
    const settled = await Promise.allSettled(calls);
    assert.ok(settled.every((s) => s.status === 'rejected'));
  });
});
