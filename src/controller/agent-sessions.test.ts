// The controller's side of agent sessions: an assignment set lost on a session that stays up is
// sent again once the agent's heartbeat shows it never took it, and not while it may be in flight.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ControllerMessage } from '../core/protocol.js';
import { AgentSessions } from './agent-sessions.js';

type Sets = Extract<ControllerMessage, { type: 'assignments' }>;

function session() {
  const sent: ControllerMessage[] = [];
  const sessions = new AgentSessions();
  const channel = { send: (m: ControllerMessage) => sent.push(m), close: () => undefined };
  return { sessions, channel, sent };
}

describe('agent sessions', () => {
  it('sends a set again when the heartbeat shows it was lost, after a grace for the round trip', () => {
    const { sessions, channel, sent } = session();
    sessions.attach('n1', channel);
    const set: Sets = { type: 'assignments', revision: 7, assignments: [], epochs: { w: 3 } };
    assert.equal(sessions.sendAssignments('n1', set, 1000), true);
    assert.equal(sessions.sendAssignments('n1', set, 1001), false, 'unchanged sets are not resent');
    // A heartbeat written before the set arrived: within the grace, nothing happens.
    assert.equal(sessions.checkTaken('n1', 5, 1200, 400), false);
    // Still not taken after the grace: lost; the next publish sends it even though unchanged.
    const version = sessions.version;
    assert.equal(sessions.checkTaken('n1', 5, 1500, 400), true);
    assert.ok(sessions.version > version);
    assert.equal(sessions.sendAssignments('n1', set, 1500), true);
    assert.equal(sent.length, 2);
    // Taken: nothing more to do.
    assert.equal(sessions.checkTaken('n1', 7, 3000, 400), false);
  });
});

describe('lost instance reports', () => {
  it('are noticed when heartbeats stay ahead of what the session took for longer than the grace', () => {
    const { sessions, channel } = session();
    // The hello's statuses include report 4.
    sessions.attach('n1', channel, 4);
    assert.equal(sessions.reportsLost('n1', 4, 1000, 400), false, 'nothing sent since the hello');
    // Report 5 may still be on its way: within the grace nothing happens.
    assert.equal(sessions.reportsLost('n1', 5, 1100, 400), false);
    assert.equal(sessions.reportsLost('n1', 5, 1300, 400), false);
    // It arrives: caught up again, the clock restarts.
    assert.equal(sessions.freshReport('n1', 5), true);
    assert.equal(sessions.reportsLost('n1', 5, 1600, 400), false);
    // Report 6 never arrives.
    assert.equal(sessions.reportsLost('n1', 6, 2000, 400), false);
    assert.equal(sessions.reportsLost('n1', 6, 2400, 400), true, 'lost: say hello again');
  });
});

describe('contact on arrival', () => {
  it("counts a message of the node's current session, and nothing from a session a newer one replaced", () => {
    const { sessions, channel } = session();
    const newer = { send: () => undefined, close: () => undefined };
    sessions.attach('n1', channel);
    sessions.arrived('n1', channel, 1000);
    assert.equal(sessions.lastHeartbeatAt.n1, 1000);
    sessions.attach('n1', newer);
    sessions.arrived('n1', channel, 2000);
    assert.equal(sessions.lastHeartbeatAt.n1, 1000, 'the replaced session is not the node');
    sessions.arrived('n1', newer, 3000);
    assert.equal(sessions.lastHeartbeatAt.n1, 3000);
  });
});
