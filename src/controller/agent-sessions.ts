// The controller's side of agent sessions, independent of the transport: who is connected, when
// each node was last heard from, and which assignments each was last sent (so a set is sent only
// when it changes, and again on every reconnection).
import type { ControllerMessage } from '../core/protocol.js';

/** One live connection to an agent; the WebSocket adapter and the simulator both provide it. */
export interface AgentChannel {
  send(message: ControllerMessage): void;
  close(code: number, reason: string): void;
}

export interface NodeUsage {
  cpuPercent: number;
  memoryUsedMiB: number;
  load1: number;
  at: number;
}

interface Session {
  channel: AgentChannel;
  lastAssignments?: string;
  /** Revision and time of the last set sent on this session. */
  lastSentRevision: number;
  lastSentAt: number;
  lastReportSeq: number;
  /** Since when heartbeats say a report was sent that this session has not taken. */
  reportsBehindSince?: number;
}

export class AgentSessions {
  private readonly sessions = new Map<string, Session>();
  /** Grows whenever a session comes, goes or must be sent its set again. */
  version = 0;
  readonly lastHeartbeatAt: Record<string, number> = {};
  readonly usage = new Map<string, NodeUsage>();

  /**
   * A new session replaces an older one of the same node (the agent restarted or reconnected).
   * `reportSeq`: the agent's last report at its hello, whose statuses include it.
   */
  attach(node: string, channel: AgentChannel, reportSeq = -1): void {
    const previous = this.sessions.get(node);
    if (previous !== undefined && previous.channel !== channel) {
      previous.channel.close(4000, 'replaced by a newer session of the same node');
    }
    this.sessions.set(node, {
      channel,
      lastReportSeq: reportSeq,
      lastSentRevision: 0,
      lastSentAt: 0,
    });
    this.version++;
  }

  detach(node: string, channel: AgentChannel): void {
    if (this.sessions.get(node)?.channel === channel) {
      this.sessions.delete(node);
      this.version++;
    }
  }

  isCurrent(node: string, channel: AgentChannel): boolean {
    return this.sessions.get(node)?.channel === channel;
  }

  /** False for a report older than one already taken from this session (delayed or duplicated). */
  freshReport(node: string, seq: number): boolean {
    const session = this.sessions.get(node);
    if (session === undefined || seq <= session.lastReportSeq) return false;
    session.lastReportSeq = seq;
    return true;
  }

  heard(node: string, now: number): void {
    this.lastHeartbeatAt[node] = now;
  }

  /**
   * A message arrived on the node's session; the adapter says so before the messages ahead of it
   * are handled, in order. It is contact now: a report waiting for a slow store must not hold up
   * the heartbeats behind it, or the node shows silent, and may be judged down, meanwhile.
   */
  arrived(node: string, channel: AgentChannel, now: number): void {
    if (this.isCurrent(node, channel)) this.heard(node, now);
  }

  connectedNodes(): string[] {
    return [...this.sessions.keys()];
  }

  /** Sends a message to the node's current session; false when it has none. */
  send(node: string, message: ControllerMessage): boolean {
    const session = this.sessions.get(node);
    if (session === undefined) return false;
    session.channel.send(message);
    return true;
  }

  /** Sends the assignment set if it differs from the last one this session received. */
  sendAssignments(
    node: string,
    message: Extract<ControllerMessage, { type: 'assignments' }>,
    now: number,
  ): boolean {
    const session = this.sessions.get(node);
    if (session === undefined) return false;
    // Not the revision: unchanged sets are not resent. The volume duties are part of the set.
    const encoded = JSON.stringify([message.assignments, message.epochs, message.volumes ?? []]);
    if (session.lastAssignments === encoded) return false;
    session.lastAssignments = encoded;
    session.lastSentRevision = message.revision;
    session.lastSentAt = now;
    session.channel.send(message);
    return true;
  }

  /**
   * A heartbeat's report of the newest set the agent took. A set sent more than `graceMs` ago
   * (longer than a round trip) and still not taken was lost on the way: send it again. Sets arrive
   * in order on a healthy session, so this only acts after loss.
   */
  checkTaken(node: string, takenRevision: number, now: number, graceMs: number): boolean {
    const session = this.sessions.get(node);
    if (session === undefined || takenRevision >= session.lastSentRevision) return false;
    if (now - session.lastSentAt < graceMs) return false;
    this.resend(node);
    return true;
  }

  /**
   * A heartbeat's report of the agent's last instance report. Ahead of what this session took for
   * `graceMs` (longer than a round trip), a report was lost: true, and the caller closes the
   * session so the agent says hello again with every status.
   */
  reportsLost(node: string, reportSeq: number, now: number, graceMs: number): boolean {
    const session = this.sessions.get(node);
    if (session === undefined) return false;
    if (reportSeq <= session.lastReportSeq) {
      delete session.reportsBehindSince;
      return false;
    }
    session.reportsBehindSince ??= now;
    return now - session.reportsBehindSince >= graceMs;
  }

  /** The next assignment set for this node is sent even if unchanged (it may have been lost). */
  resend(node: string): void {
    const session = this.sessions.get(node);
    if (session !== undefined) delete session.lastAssignments;
    this.version++;
  }

  /** Closes every session and forgets what was heard: a controller that leads again starts afresh. */
  closeAll(reason: string): void {
    for (const session of this.sessions.values()) session.channel.close(1001, reason);
    this.sessions.clear();
    for (const node of Object.keys(this.lastHeartbeatAt)) delete this.lastHeartbeatAt[node];
    this.usage.clear();
    this.version++;
  }
}
