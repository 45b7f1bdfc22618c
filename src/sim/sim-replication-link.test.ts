import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ReplicationLink, ReplOpenInfo } from '../storage/replication/types.js';
import type { ReplicationMessage } from '../storage/replication/wire.js';
import { FakeClock } from './fake-clock.js';
import { SimNetwork } from './network.js';
import { SeededRng } from './rng.js';
import { SimLinkFabric, simLinkPair } from './sim-replication-link.js';

function setup(seed = 1) {
  const clock = new FakeClock();
  const network = new SimNetwork(clock, new SeededRng(seed).fork('network'));
  return { clock, network };
}

const ack = (seq: number): ReplicationMessage => ({
  type: 'REPL_ACK',
  seq: BigInt(seq),
  kind: 'written',
});
const seqOf = (message: ReplicationMessage): number => Number((message as { seq: bigint }).seq);
const open = (volume = 'v', epoch = 3): ReplicationMessage => ({
  type: 'REPL_OPEN',
  volume,
  primaryNode: 'a',
  epoch,
});

/** Records what an end receives and every close it hears. */
function listen(link: ReplicationLink) {
  const received: number[] = [];
  const closes: string[] = [];
  link.onMessage((message) => received.push(seqOf(message)));
  link.onClose((reason) => closes.push(reason));
  return { received, closes };
}

describe('simLinkPair', () => {
  it('delivers in the order sent, both ways, under random per-message delays (20 seeds)', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const { clock, network } = setup(seed);
      network.faults = {
        delayMsMin: 1,
        delayMsMax: 30,
        lossProbability: 0,
        duplicateProbability: 0,
      };
      const pair = simLinkPair({ network, clock, from: 'a', to: 'b' });
      const atA = listen(pair.fromEnd);
      const atB = listen(pair.toEnd);
      for (let i = 0; i < 100; i++) {
        pair.fromEnd.send(ack(i));
        pair.toEnd.send(ack(1000 + i));
        clock.advance(i % 3);
      }
      clock.advance(100);
      assert.deepEqual(
        atB.received,
        Array.from({ length: 100 }, (_, i) => i),
        `seed ${seed}`,
      );
      assert.deepEqual(
        atA.received,
        Array.from({ length: 100 }, (_, i) => 1000 + i),
      );
      assert.deepEqual([atA.closes, atB.closes], [[], []]);
    }
  });

  it('queues messages until onMessage is set, and copies a write data buffer at send', () => {
    const { clock, network } = setup();
    const pair = simLinkPair({ network, clock, from: 'a', to: 'b' });
    const data = Buffer.from('abcd');
    pair.fromEnd.send({ type: 'REPL_WRITE', seq: 0n, epoch: 1, offset: 0, fua: false, data });
    data.fill(0);
    pair.fromEnd.send(ack(1));
    clock.advance(10);
    const received: ReplicationMessage[] = [];
    pair.toEnd.onMessage((message) => received.push(message));
    assert.equal(received.length, 0, 'the backlog is not delivered inside onMessage');
    pair.fromEnd.send(ack(2));
    clock.advance(10);
    assert.deepEqual(received.map(seqOf), [0, 1, 2]);
    assert.equal((received[0] as { data: Buffer }).data.toString(), 'abcd');
  });

  it('drops every duplicate the network makes', () => {
    const { clock, network } = setup(2);
    network.faults = { delayMsMin: 1, delayMsMax: 10, lossProbability: 0, duplicateProbability: 1 };
    const pair = simLinkPair({ network, clock, from: 'a', to: 'b' });
    const atB = listen(pair.toEnd);
    for (let i = 0; i < 50; i++) pair.fromEnd.send(ack(i));
    clock.advance(20);
    assert.deepEqual(
      atB.received,
      Array.from({ length: 50 }, (_, i) => i),
    );
    assert.equal(pair.duplicatesDropped, 50);
  });

  it('a lost message breaks the link: both ends hear it once, nothing after the gap arrives', () => {
    const { clock, network } = setup(3);
    const pair = simLinkPair({ network, clock, from: 'a', to: 'b' });
    const atA = listen(pair.fromEnd);
    const atB = listen(pair.toEnd);
    pair.fromEnd.send(ack(0));
    network.faults = { ...network.faults, lossProbability: 1 };
    pair.fromEnd.send(ack(1));
    network.faults = { ...network.faults, lossProbability: 0 };
    pair.fromEnd.send(ack(2));
    pair.toEnd.send(ack(3));
    clock.advance(50);
    assert.ok(pair.fromEnd.closed && pair.toEnd.closed);
    assert.equal(atA.closes.length, 1);
    assert.equal(atB.closes.length, 1);
    assert.match(atA.closes[0]!, /lost/);
    assert.deepEqual(atB.received, [0], 'only what came before the loss');
    assert.deepEqual(atA.received, []);
  });

  it('a partition at send time or while a message travels breaks the link', () => {
    for (const when of ['before', 'during'] as const) {
      const { clock, network } = setup(4);
      const pair = simLinkPair({ network, clock, from: 'a', to: 'b' });
      const atA = listen(pair.fromEnd);
      const atB = listen(pair.toEnd);
      if (when === 'before') network.partition('a', 'b');
      pair.fromEnd.send(ack(0));
      if (when === 'during') network.partition('a', 'b');
      clock.advance(50);
      assert.deepEqual(atB.received, [], when);
      assert.equal(atA.closes.length, 1, when);
      assert.equal(atB.closes.length, 1, when);
      assert.match(atB.closes[0]!, /partitioned/);
    }
  });

  it('a local close: closed at once, its owner hears it, the peer hears it after a delay', () => {
    const { clock, network } = setup(5);
    const pair = simLinkPair({ network, clock, from: 'a', to: 'b', closeNoticeMs: 5 });
    const atA = listen(pair.fromEnd);
    const atB = listen(pair.toEnd);
    pair.fromEnd.close('done');
    assert.equal(pair.fromEnd.closed, true);
    pair.fromEnd.send(ack(0));
    clock.advance(0);
    assert.deepEqual(atA.closes, ['done']);
    assert.equal(pair.toEnd.closed, false);
    clock.advance(5);
    assert.deepEqual(atB.closes, ['closed by a: done']);
    pair.fromEnd.close('again');
    clock.advance(10);
    assert.deepEqual([atA.closes.length, atB.closes.length, atB.received.length], [1, 1, 0]);
  });

  it('onClose set after the close still hears it, once', () => {
    const { clock, network } = setup(6);
    const pair = simLinkPair({ network, clock, from: 'a', to: 'b' });
    pair.breakLink('cable cut');
    clock.advance(10);
    const closes: string[] = [];
    pair.toEnd.onClose((reason) => closes.push(reason));
    clock.advance(10);
    assert.deepEqual(closes, ['cable cut']);
  });
});

describe('SimLinkFabric', () => {
  function fabricSetup() {
    const { clock, network } = setup(7);
    const fabric = new SimLinkFabric({ network, clock });
    const target = { volume: 'v', node: 'b', address: 'b:7000' };
    return { clock, network, fabric, target };
  }

  it('routes a link by REPL_OPEN to the target node acceptor, which sees what follows', () => {
    const { clock, fabric, target } = fabricSetup();
    const opens: ReplOpenInfo[] = [];
    const atReplica: number[] = [];
    fabric.registerAcceptor('b', (info, link) => {
      opens.push(info);
      link.onMessage((message) => {
        atReplica.push(seqOf(message));
        link.send(ack(seqOf(message) + 100));
      });
    });
    const link = fabric.connect('a')(target);
    const atPrimary = listen(link);
    link.send(open());
    link.send(ack(1));
    link.send(ack(2));
    clock.advance(20);
    assert.deepEqual(opens, [{ volume: 'v', primaryNode: 'a', epoch: 3 }]);
    assert.deepEqual(atReplica, [1, 2]);
    assert.deepEqual(atPrimary.received, [101, 102]);
    assert.equal(fabric.openLinks, 1);
  });

  it('closes the link when refused, when no acceptor is there, or without REPL_OPEN first', () => {
    const cases = [
      {
        name: 'refused',
        acceptor: () => 'no replica of v here',
        first: open(),
        reason: /no replica of v here/,
      },
      { name: 'no acceptor', acceptor: undefined, first: open(), reason: /no replica server on b/ },
      {
        name: 'not REPL_OPEN',
        acceptor: () => undefined,
        first: ack(0),
        reason: /expected REPL_OPEN/,
      },
      {
        name: 'other volume',
        acceptor: () => undefined,
        first: open('w'),
        reason: /names volume w/,
      },
    ];
    for (const { name, acceptor, first, reason } of cases) {
      const { clock, fabric, target } = fabricSetup();
      if (acceptor !== undefined) fabric.registerAcceptor('b', acceptor);
      const link = fabric.connect('a')(target);
      const atPrimary = listen(link);
      link.send(first);
      clock.advance(20);
      assert.equal(atPrimary.closes.length, 1, name);
      assert.match(atPrimary.closes[0]!, reason, name);
      assert.equal(fabric.openLinks, 0, name);
    }
  });

  it('dropNode: the far end hears the crash, the crashed end hears nothing, no acceptor stays', () => {
    const { clock, fabric, target } = fabricSetup();
    const replicaCloses: string[] = [];
    fabric.registerAcceptor('b', (_info, link) =>
      link.onClose((reason) => replicaCloses.push(reason)),
    );
    const link = fabric.connect('a')(target);
    const atPrimary = listen(link);
    link.send(open());
    clock.advance(20);
    fabric.dropNode('b');
    clock.advance(20);
    assert.deepEqual(atPrimary.closes, ['b is down']);
    assert.deepEqual(replicaCloses, []);
    assert.equal(fabric.openLinks, 0);
    const again = fabric.connect('a')(target);
    const second = listen(again);
    again.send(open());
    clock.advance(20);
    assert.match(second.closes[0] ?? '', /no replica server on b/);
  });
});
