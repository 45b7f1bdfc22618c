// The agent's session with the controller over WebSocket: hello with inventory and instances on
// every (re)connection, heartbeats several times a second, instance reports as they happen, and
// reconnection across a list of controller addresses: the leader again first after its session
// ends, a follower's pointer to the leader followed, else the next address with backoff.
import WebSocket from 'ws';
import type { Logger } from '../core/ports.js';
import {
  agentMessageBytesMax,
  controllerMessageSchema,
  type AgentMessage,
  type ControllerMessage,
} from '../core/protocol.js';

export interface SessionOptions {
  controllerUrls: string[];
  token: string;
  logger: Logger;
  hello(): AgentMessage;
  heartbeat(seq: number): AgentMessage;
  onMessage(message: ControllerMessage): void;
  /** The leading controller answered (its welcome, or a keep-alive ping on its session). */
  onContact?(): void;
  /** The session closed; it reconnects on its own. */
  onClosed?(): void;
  reconnectDelayMsInitial?: number;
  reconnectDelayMsMax?: number;
  /** Keep-alive ping period and how long without a pong before the session is dropped. */
  pingIntervalMs?: number;
  pingTimeoutMs?: number;
}

/**
 * The close code of a controller that stops leading or stops (controller.ts `deposed`, `stop`): the
 * next leader is elsewhere, so the agent walks on instead of coming back.
 */
export const leaderLeftCloseCode = 1001;
/**
 * The code a session ends with when no close frame came (the link broke, the controller died, or
 * the agent dropped it after pings went unanswered): nothing says that controller still leads.
 */
const linkBrokeCloseCode = 1006;

export class AgentSession {
  private ws: WebSocket | undefined;
  private urlIndex = 0;
  private delayMs: number;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private pongAt = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private seq = 0;
  private closed = false;
  private heartbeatIntervalMs = 200;
  /** The last controller tried said it is a follower: try the next one without backing off. */
  private refusedAsFollower = false;
  /** The configured address a follower named as the leader's: tried next, at once. */
  private leaderHint: number | undefined;
  /**
   * A follower's pointer was followed since the last welcome. Further ones are not: the walk goes
   * on from there, address by address, so followers with stale views (each naming another that no
   * longer leads) cannot keep the agent away from the leader's address.
   */
  private pointerFollowed = false;
  /** Each configured address's origin, to match the leader a follower names. */
  private readonly origins: (string | undefined)[];

  constructor(private readonly options: SessionOptions) {
    if (options.controllerUrls.length === 0)
      throw new RangeError('agent session: expected at least one controller URL');
    this.delayMs = options.reconnectDelayMsInitial ?? 100;
    this.origins = options.controllerUrls.map(originOf);
  }

  get connected(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  start(): void {
    this.connect();
  }

  send(message: AgentMessage): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  private connect(): void {
    if (this.closed) return;
    const base = this.options.controllerUrls[this.urlIndex % this.options.controllerUrls.length]!;
    const url = `${base.replace(/^http/, 'ws').replace(/\/$/, '')}/v1/agent/session`;
    const ws = new WebSocket(url, {
      headers: { authorization: `Bearer ${this.options.token}` },
      maxPayload: agentMessageBytesMax,
      // Short: a controller host that vanished must not hold the walk through the list for long.
      handshakeTimeout: 1000,
    });
    this.ws = ws;
    let welcomed = false;
    ws.on('open', () => {
      this.delayMs = this.options.reconnectDelayMsInitial ?? 100;
      ws.send(JSON.stringify(this.options.hello()));
      this.startHeartbeats();
      this.startPings(ws);
      this.options.logger.log('info', 'connected to controller', { url: base });
    });
    ws.on('message', (data) => {
      let parsed: ReturnType<typeof controllerMessageSchema.safeParse>;
      try {
        parsed = controllerMessageSchema.safeParse(JSON.parse(rawText(data)));
      } catch {
        this.options.logger.log('warn', 'controller sent a message that is not JSON; ignored');
        return;
      }
      if (!parsed.success) {
        this.options.logger.log('warn', 'controller sent an invalid message; ignored', {
          error: parsed.error.message.slice(0, 500),
        });
        return;
      }
      if (parsed.data.type === 'error' && parsed.data.code === 'CONTINUUM_ERR_NOT_LEADER') {
        this.refusedAsFollower = true;
        this.leaderHint = this.configuredIndex(parsed.data.leader);
        this.options.logger.log('debug', 'controller is a follower; trying the next', {
          url: base,
          message: parsed.data.message,
        });
        return;
      }
      if (parsed.data.type === 'welcome') {
        // Contact counts only with the leader (its welcome): a follower cannot decide anything.
        welcomed = true;
        this.pointerFollowed = false;
        this.options.onContact?.();
        if (parsed.data.heartbeatIntervalMs !== this.heartbeatIntervalMs) {
          this.heartbeatIntervalMs = parsed.data.heartbeatIntervalMs;
          this.startHeartbeats();
        }
      }
      this.options.onMessage(parsed.data);
    });
    ws.on('error', (err) =>
      this.options.logger.log('debug', 'controller connection error', {
        url: base,
        error: err.message,
      }),
    );
    ws.on('pong', () => {
      this.pongAt = Date.now();
      if (welcomed) this.options.onContact?.();
    });
    ws.on('close', (code) => {
      if (this.ws !== ws) return;
      this.stopHeartbeats();
      if (this.pingTimer !== undefined) clearInterval(this.pingTimer);
      this.ws = undefined;
      this.options.onClosed?.();
      const hint = this.pointerFollowed ? undefined : this.leaderHint;
      const refused = this.refusedAsFollower;
      this.leaderHint = undefined;
      this.refusedAsFollower = false;
      if (this.closed) return;
      const initialMs = this.options.reconnectDelayMsInitial ?? 100;
      if (hint !== undefined) {
        this.pointerFollowed = true;
        this.urlIndex = hint;
        this.reconnectTimer = setTimeout(() => this.connect(), initialMs);
        return;
      }
      if (welcomed && code !== leaderLeftCloseCode && code !== linkBrokeCloseCode) {
        // The leader ended a session it had welcomed, other than by stepping down (a store write
        // for a report failed, reports were lost, a newer session of this node replaced it): it
        // most likely still leads, and the walk through the other addresses could take longer
        // than the controllers' down-after (a vanished host holds it for the handshake timeout).
        // Once more to the same address; a connection it does not welcome walks on.
        this.reconnectTimer = setTimeout(() => this.connect(), initialMs);
        return;
      }
      this.urlIndex++;
      if (refused) {
        this.reconnectTimer = setTimeout(() => this.connect(), initialMs);
        return;
      }
      this.reconnectTimer = setTimeout(() => this.connect(), this.delayMs);
      this.delayMs = Math.min(this.delayMs * 2, this.options.reconnectDelayMsMax ?? 1000);
    });
  }

  /**
   * The index of a configured address with the origin of `url`, if any. Only configured addresses
   * are followed: the agent's token goes with every connection, and a follower's word is not
   * enough to send it anywhere else.
   */
  private configuredIndex(url: string | undefined): number | undefined {
    if (url === undefined) return undefined;
    const origin = originOf(url);
    if (origin === undefined) return undefined;
    const index = this.origins.indexOf(origin);
    return index < 0 ? undefined : index;
  }

  /**
   * A half-open connection (the controller's host vanished, a long partition) would otherwise go
   * unnoticed: without answers to pings the session is dropped and the agent reconnects, so it
   * says hello afresh and receives its full assignment set again.
   */
  private startPings(ws: WebSocket): void {
    if (this.pingTimer !== undefined) clearInterval(this.pingTimer);
    this.pongAt = Date.now();
    const intervalMs = this.options.pingIntervalMs ?? 1000;
    const timeoutMs = this.options.pingTimeoutMs ?? 3000;
    this.pingTimer = setInterval(() => {
      if (Date.now() - this.pongAt >= timeoutMs) {
        this.options.logger.log('warn', 'controller stopped answering pings; reconnecting', {
          timeoutMs,
        });
        ws.terminate();
        return;
      }
      ws.ping();
    }, intervalMs);
  }

  private startHeartbeats(): void {
    this.stopHeartbeats();
    this.heartbeatTimer = setInterval(
      () => this.send(this.options.heartbeat(++this.seq)),
      this.heartbeatIntervalMs,
    );
  }

  private stopHeartbeats(): void {
    if (this.heartbeatTimer !== undefined) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
  }

  close(): void {
    this.closed = true;
    this.stopHeartbeats();
    if (this.pingTimer !== undefined) clearInterval(this.pingTimer);
    if (this.reconnectTimer !== undefined) clearTimeout(this.reconnectTimer);
    this.ws?.close(1000, 'agent stopping');
  }
}

function rawText(data: WebSocket.RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data as ArrayBuffer).toString('utf8');
}

/** `http://host:port` of a controller URL (ws:// and http:// alike), or undefined if it is not one. */
function originOf(url: string): string | undefined {
  try {
    return new URL(url.replace(/^ws/, 'http')).origin;
  } catch {
    return undefined;
  }
}
