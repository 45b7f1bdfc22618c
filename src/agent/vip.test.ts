// The VIP manager against a fake host: the commands come in order (list, probe, add, announce;
// abort the announcement, remove), adding what is there and removing what is not count as done,
// another holder is waited for (bounded), failures are logged once and retried, and addresses a
// previous agent left are removed unless wanted.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Logger, LogLevel } from '../core/ports.js';
import { FakeClock } from '../sim/fake-clock.js';
import { interfaceFor, parseAddresses } from './vip-commands.js';
import { VipManager, type HeldVip } from './vip.js';
import { fail, FakeHost, ok, pass, timedOut } from './vip-test-support.js';

const vip = { workload: 'kv', address: '10.0.0.5/24' };
const list = 'ip -o -4 addr show';
const probe = 'arping -q -D -c 1 -w 1 -I eth0 10.0.0.5';
const add = 'ip addr add 10.0.0.5/24 dev eth0';
const announce = 'arping -q -U -c 2 -I eth0 10.0.0.5';
const del = 'ip addr del 10.0.0.5/24 dev eth0';

class RecordingLogger implements Logger {
  readonly lines: { level: LogLevel; message: string }[] = [];
  log(level: LogLevel, message: string): void {
    this.lines.push({ level, message });
  }
  child(): Logger {
    return this;
  }
  said(level: LogLevel, pattern: RegExp): number {
    return this.lines.filter((l) => l.level === level && pattern.test(l.message)).length;
  }
}

function setup(options: { takeoverWaitMs?: number } = {}) {
  const host = new FakeHost();
  const clock = new FakeClock();
  const logger = new RecordingLogger();
  const persisted: HeldVip[][] = [];
  const manager = new VipManager({
    runner: host,
    logger,
    clock,
    takeoverWaitMs: options.takeoverWaitMs ?? 1000,
  });
  manager.heldChanged = (held) => persisted.push(held);
  return { host, clock, logger, manager, persisted };
}

describe('VIP manager', () => {
  it('adds, announces and removes a VIP with the commands in order', async () => {
    const { host, clock, manager, persisted } = setup();
    manager.setWanted([vip]);
    await pass(clock, 100);
    await manager.idle();
    assert.deepEqual(host.commands, [list, 'arping -V', probe, add, announce]);
    assert.ok(host.addresses.has('eth0 10.0.0.5/24'));
    // Recorded before the add, so that a crash between the two leaves nothing unknown behind.
    assert.deepEqual(persisted, [[{ workload: 'kv', address: '10.0.0.5/24', interface: 'eth0' }]]);
    manager.setWanted([vip]);
    await manager.idle();
    assert.equal(host.commands.length, 5, 'nothing to do when it is held already');
    manager.setWanted([]);
    await manager.idle();
    assert.deepEqual(host.commands.slice(5), [del]);
    assert.ok(!host.addresses.has('eth0 10.0.0.5/24'));
    assert.deepEqual(persisted.at(-1), []);
    assert.deepEqual(manager.held(), []);
  });

  it('counts an address that is there already as added, and one that is gone as removed', async () => {
    const { host, clock, logger, manager } = setup();
    host.override(list, ok(''));
    host.addresses.add('eth0 10.0.0.5/24');
    manager.setWanted([{ ...vip, interface: 'eth0' }]);
    await pass(clock, 100);
    await manager.idle();
    assert.deepEqual(host.commands, [list, 'arping -V', probe, add, announce]);
    assert.equal(logger.said('error', /./), 0, '"Address already assigned" is success');
    host.addresses.clear();
    manager.setWanted([]);
    await manager.idle();
    assert.equal(host.commands.at(-1), del);
    assert.equal(logger.said('error', /./), 0, '"Address not found" is success');
    assert.deepEqual(manager.held(), []);
  });

  it('neither probes nor announces an address it finds on its interface', async () => {
    const { host, clock, manager } = setup();
    host.addresses.add('eth0 10.0.0.5/24');
    manager.setWanted([vip]);
    await pass(clock, 100);
    await manager.idle();
    assert.deepEqual(host.commands, [list]);
    assert.deepEqual(manager.held(), [{ ...vip, interface: 'eth0' }]);
  });

  it('waits while another host answers for the address, and adds once it is free', async () => {
    const { host, clock, manager } = setup({ takeoverWaitMs: 10_000 });
    host.answeredBy.add('10.0.0.5');
    manager.setWanted([vip]);
    await pass(clock, 1000);
    assert.ok(!host.commands.includes(add), 'not added while another host answers');
    assert.ok(host.commands.filter((c) => c === probe).length >= 3, 'probed again and again');
    host.answeredBy.clear();
    await pass(clock, 500);
    await manager.idle();
    assert.deepEqual(host.commands.slice(-3), [probe, add, announce]);
  });

  it('takes the address over after takeoverWaitMs if the other host never lets go', async () => {
    const { host, clock, logger, manager } = setup({ takeoverWaitMs: 1000 });
    host.answeredBy.add('10.0.0.5');
    manager.setWanted([vip]);
    await pass(clock, 1500);
    await manager.idle();
    assert.ok(host.addresses.has('eth0 10.0.0.5/24'));
    assert.equal(logger.said('warn', /another host still answers/), 1);
  });

  it('stops waiting for the other holder when the VIP is no longer wanted', async () => {
    const { host, clock, manager } = setup({ takeoverWaitMs: 60_000 });
    host.answeredBy.add('10.0.0.5');
    manager.setWanted([vip]);
    await pass(clock, 500);
    manager.setWanted([]);
    await pass(clock, 500);
    await manager.idle();
    assert.ok(!host.commands.includes(add));
    assert.deepEqual(manager.held(), []);
  });

  it('aborts a running announcement before it removes the address', async () => {
    const { host, clock, manager } = setup();
    let aborted = false;
    host.override(announce, (signal) => {
      return new Promise((resolve) =>
        signal?.addEventListener('abort', () => {
          aborted = true;
          resolve({ ...timedOut, timedOut: false });
        }),
      );
    });
    manager.setWanted([vip]);
    await pass(clock, 100);
    assert.equal(host.commands.at(-1), announce);
    manager.setWanted([]);
    await manager.idle();
    assert.ok(aborted, 'the announcement was aborted');
    assert.equal(host.commands.at(-1), del);
  });

  it('logs a failed add once and tries again after retryDelayMs', async () => {
    const { host, clock, logger, manager } = setup();
    host.override('ip addr add', fail(2, 'RTNETLINK answers: Operation not permitted'), {
      once: false,
    });
    manager.setWanted([vip]);
    await pass(clock, 3500);
    const adds = host.commands.filter((c) => c === add).length;
    assert.ok(adds >= 3, `tried again (${adds} adds)`);
    assert.equal(logger.said('error', /cannot add the address/), 1, 'said once');
    host.override('ip addr add', ok()); // The newest override wins: the next add succeeds.
    await pass(clock, 1500);
    await manager.idle();
    assert.equal(host.commands.at(-1), announce);
  });

  it('works without arping: no probe, no announcement, said once', async () => {
    const { host, clock, logger, manager } = setup();
    host.arping = 'missing';
    manager.setWanted([vip, { workload: 'db', address: '10.0.0.6/24' }]);
    await pass(clock, 100);
    await manager.idle();
    assert.ok(host.addresses.has('eth0 10.0.0.5/24') && host.addresses.has('eth0 10.0.0.6/24'));
    assert.equal(host.commands.filter((c) => c.startsWith('arping')).length, 1, 'checked once');
    assert.equal(logger.said('warn', /no iputils arping/), 1);
  });

  it('removes what a previous agent left unless it is wanted', async () => {
    const { host, clock, manager } = setup();
    host.addresses.add('eth0 10.0.0.5/24');
    host.addresses.add('eth0 10.0.0.7/24');
    manager.adopt([
      { ...vip, interface: 'eth0' },
      { workload: 'old', address: '10.0.0.7/24', interface: 'eth0' },
    ]);
    manager.setWanted([vip]);
    await pass(clock, 100);
    await manager.idle();
    assert.ok(host.addresses.has('eth0 10.0.0.5/24'), 'kept, not re-added or announced');
    assert.ok(!host.addresses.has('eth0 10.0.0.7/24'), 'removed');
    assert.ok(!host.commands.includes(add) && !host.commands.includes(announce));
  });

  it('finds the interface by subnet, else by route, and says so when it cannot', async () => {
    const addresses = parseAddresses(
      '1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n' +
        '2: eth0    inet 10.0.0.11/24 brd 10.0.0.255 scope global eth0\\       valid_lft forever\n' +
        '3: br1@if9    inet 192.168.5.2/16 scope global br1\\       valid_lft forever',
    );
    assert.equal(interfaceFor('10.0.0.5', addresses), 'eth0');
    assert.equal(interfaceFor('192.168.200.1', addresses), 'br1');
    assert.equal(interfaceFor('127.0.0.1', addresses), 'lo', 'held already');
    assert.equal(interfaceFor('172.16.0.5', addresses), undefined);
    assert.equal(interfaceFor('172.16.0.5', addresses, '172.16.0.5 via 10.0.0.1 dev eth1'), 'eth1');
    assert.equal(interfaceFor('172.16.0.5', [], 'local 172.16.0.5 dev lo'), undefined);
    const { host, clock, logger, manager } = setup();
    host.addresses.clear();
    host.override('ip -o route get', fail(2, 'RTNETLINK answers: Network is unreachable'));
    manager.setWanted([vip]);
    await pass(clock, 100);
    assert.equal(logger.said('error', /no interface reaches its subnet/), 1);
    manager.close();
  });
});
