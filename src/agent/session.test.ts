// Where the agent's session goes when a session ends, against controller endpoints on loopback that
// answer as the controller does (welcome; NOT_LEADER with or without the leader's address; the
// close codes of controller.ts and server.ts): back to a leader that ended a session it had
// welcomed, on to the next address after a leader stepped down or the link broke, straight to the
// leader a follower names if that address is configured, and on past followers with stale pointers.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { WebSocketServer, type WebSocket } from 'ws';
import { silentLogger } from '../core/ports.js';
import type { AgentMessage } from '../core/protocol.js';
import { AgentSession, leaderLeftCloseCode } from './session.js';

/** What an endpoint does with the hello of its n-th connection (from 1). */
type Answer = (ws: WebSocket, connection: number) => void;

const welcome = (ws: WebSocket) =>
  ws.send(
    JSON.stringify({
      type: 'welcome',
      clusterId: 'c',
      controllerId: 'x',
      heartbeatIntervalMs: 200,
    }),
  );

function notLeader(leader?: string): Answer {
  return (ws) => {
    ws.send(
      JSON.stringify({ type: 'error', code: 'CONTINUUM_ERR_NOT_LEADER', message: 'no', leader }),
    );
    ws.close(4400, 'not the leader');
  };
}

/** The endpoints of one test, and the order in which the agent said hello to them. */
class Endpoints {
  readonly hellos: string[] = [];
  private readonly servers: WebSocketServer[] = [];
  private readonly waiters: { count: number; resolve: () => void }[] = [];

  async add(name: string, answer: Answer): Promise<string> {
    const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(server, 'listening');
    this.servers.push(server);
    let connections = 0;
    server.on('connection', (ws) => {
      ws.once('message', (data) => {
        const message = JSON.parse((data as Buffer).toString('utf8')) as { type: string };
        assert.equal(message.type, 'hello', 'a session starts with a hello');
        this.hellos.push(name);
        answer(ws, ++connections);
        for (const waiter of this.waiters.filter((w) => this.hellos.length >= w.count))
          waiter.resolve();
      });
    });
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  /** Resolves once `count` hellos have arrived in all. */
  hellosReach(count: number): Promise<void> {
    if (this.hellos.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ count, resolve }));
  }

  async close(): Promise<void> {
    for (const server of this.servers) {
      for (const client of server.clients) client.terminate();
      await new Promise((resolve) => server.close(resolve));
    }
  }
}

// The endpoints read only the type of each message.
const hello = { type: 'hello' } as unknown as AgentMessage;
const heartbeat = { type: 'heartbeat' } as unknown as AgentMessage;

/** A session that went elsewhere waits for a hello that never comes: failed, not hung. */
const testTimeoutMs = 10_000;

describe('agent session: where it reconnects', () => {
  let endpoints: Endpoints;
  let session: AgentSession | undefined;
  beforeEach(() => {
    endpoints = new Endpoints();
  });
  afterEach(async () => {
    session?.close();
    session = undefined;
    await endpoints.close();
  });

  /** Starts a session over `controllerUrls`; the endpoints it said hello to, once there are `count`. */
  async function hellos(controllerUrls: string[], count: number): Promise<string[]> {
    session = new AgentSession({
      controllerUrls,
      token: 't',
      logger: silentLogger,
      hello: () => hello,
      heartbeat: () => heartbeat,
      onMessage: () => {},
      reconnectDelayMsInitial: 5,
    });
    session.start();
    await endpoints.hellosReach(count);
    return endpoints.hellos;
  }

  it(
    'comes back to a leader that ended a session it had welcomed before trying another address',
    { timeout: testTimeoutMs },
    async () => {
      const leader = await endpoints.add('leader', (ws, n) => {
        welcome(ws);
        if (n === 1) ws.close(4001, 'instance reports were lost: say hello again');
      });
      const follower = await endpoints.add('follower', notLeader());
      assert.deepEqual(await hellos([leader, follower], 2), ['leader', 'leader']);
    },
  );

  it(
    'comes back once after the leader refused a report, then walks on if it does not welcome it',
    { timeout: testTimeoutMs },
    async () => {
      const leader = await endpoints.add('leader', (ws, n) => {
        if (n === 1) {
          welcome(ws);
          ws.close(4400, 'the outcome of txn is unknown');
        } else notLeader()(ws, n);
      });
      const follower = await endpoints.add('follower', welcome);
      assert.deepEqual(await hellos([leader, follower], 3), ['leader', 'leader', 'follower']);
    },
  );

  it(
    'walks on at once when the link to the leader broke: nothing says it still leads',
    { timeout: testTimeoutMs },
    async () => {
      const leader = await endpoints.add('leader', (ws) => {
        welcome(ws);
        ws.terminate();
      });
      const next = await endpoints.add('next', welcome);
      assert.deepEqual(await hellos([leader, next], 2), ['leader', 'next']);
    },
  );

  it(
    'walks on after a leader that stepped down closed the session',
    { timeout: testTimeoutMs },
    async () => {
      const old = await endpoints.add('old', (ws) => {
        welcome(ws);
        ws.close(leaderLeftCloseCode, 'this controller is no longer the leader');
      });
      const next = await endpoints.add('next', welcome);
      assert.deepEqual(await hellos([old, next], 2), ['old', 'next']);
    },
  );

  it(
    'goes straight to the leader a follower names, past the addresses in between',
    { timeout: testTimeoutMs },
    async () => {
      const leader = await endpoints.add('leader', welcome);
      const follower = await endpoints.add('follower', notLeader(`${leader}/`));
      const other = await endpoints.add('other', notLeader());
      assert.deepEqual(await hellos([follower, other, leader], 2), ['follower', 'leader']);
    },
  );

  it(
    'does not follow a follower to an address it was not given: its token goes with it',
    { timeout: testTimeoutMs },
    async () => {
      const stranger = await endpoints.add('stranger', welcome);
      const follower = await endpoints.add('follower', notLeader(stranger));
      const leader = await endpoints.add('leader', welcome);
      assert.deepEqual(await hellos([follower, leader], 2), ['follower', 'leader']);
    },
  );

  it(
    'is not sent back and forth by two followers that name each other',
    { timeout: testTimeoutMs },
    async () => {
      const urls: Record<string, string> = {};
      urls.a = await endpoints.add('a', (ws, n) => notLeader(urls.b)(ws, n));
      urls.b = await endpoints.add('b', (ws, n) => notLeader(urls.a)(ws, n));
      urls.c = await endpoints.add('c', welcome);
      assert.deepEqual(await hellos([urls.a, urls.b, urls.c], 3), ['a', 'b', 'c']);
    },
  );

  it(
    'reaches the leader past followers whose pointers are stale: one pointer between welcomes',
    { timeout: testTimeoutMs },
    async () => {
      // A healed partition: the leader is the second address; the other two name each other.
      const urls: Record<string, string> = {};
      urls.a = await endpoints.add('a', (ws, n) => notLeader(urls.b)(ws, n));
      urls.leader = await endpoints.add('leader', welcome);
      urls.b = await endpoints.add('b', (ws, n) => notLeader(urls.a)(ws, n));
      assert.deepEqual(await hellos([urls.a, urls.leader, urls.b], 4), ['a', 'b', 'a', 'leader']);
    },
  );
});
