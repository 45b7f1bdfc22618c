// The journal's probe events from instance reports: failing and recovered once per change of
// verdict, a remediation once per run, nothing when only a response time moved, and a new
// incarnation (epoch) judged afresh.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { InstanceRecord, ProbeStatus } from '../core/model.js';
import { probeEvents, probesChanged } from './probe-events.js';

const report = (probes: Record<string, ProbeStatus>, epoch = 3) => ({
  workload: 'kv',
  node: 'n1',
  epoch,
  probes,
});
const record = (probes: Record<string, ProbeStatus>, epoch = 3) =>
  ({ ...report(probes, epoch), reportedAt: 0, stateSince: 0 }) as unknown as InstanceRecord;
const passing: ProbeStatus = { ok: true, consecutiveFailures: 0, failing: false, action: 'alert' };
const failing: ProbeStatus = {
  ok: false,
  consecutiveFailures: 3,
  failing: true,
  reason: '3 checks in a row failed',
  lastError: 'tcp 127.0.0.1:5432: ECONNREFUSED',
  action: 'alert',
};

describe('probe events', () => {
  it('journals a probe turning failing, and its recovery, once each', () => {
    const [failed] = probeEvents(record({ db: passing }), report({ db: failing }), 10);
    assert.equal(failed?.kind, 'probe.failed');
    assert.deepEqual(failed?.subject, { kind: 'workload', name: 'kv' });
    assert.match(
      failed?.message ?? '',
      /probe db of kv on n1 is failing: 3 checks in a row failed \(tcp .*ECONNREFUSED\); action: alert/,
    );
    assert.deepEqual(probeEvents(record({ db: failing }), report({ db: failing }), 11), []);
    const [recovered] = probeEvents(record({ db: failing }), report({ db: passing }), 12);
    assert.equal(recovered?.kind, 'probe.recovered');
  });

  it('judges a new epoch afresh, and journals each remediation run', () => {
    assert.equal(probeEvents(record({ db: failing }, 2), report({ db: failing }, 3), 1).length, 1);
    const remediated = { ...failing, remediation: { at: 5, ok: false, message: 'exit code 1' } };
    const events = probeEvents(record({ db: failing }), report({ db: remediated }), 6);
    assert.deepEqual(
      events.map((e) => e.kind),
      ['probe.remediated'],
    );
    assert.match(events[0]?.message ?? '', /remediation script failed: exit code 1/);
  });

  it('writes a report whose response time moved, without an event', () => {
    const slower = { ...passing, lastDurationMs: 40 };
    assert.equal(probesChanged({ db: { ...passing, lastDurationMs: 5 } }, { db: slower }), true);
    assert.equal(probesChanged({ db: slower }, { db: slower }), false);
    assert.deepEqual(probeEvents(record({ db: passing }), report({ db: slower }), 1), []);
  });
});
