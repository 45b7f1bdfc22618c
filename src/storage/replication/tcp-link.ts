// The replication transport over TCP (docs/replication.md): connectLink is the primary's
// LinkConnector, and a ReplicationListener is the replica node's side: it accepts connections and
// routes each by its first frame, REPL_OPEN, to the replica of that volume. Both hand the socket to
// a SocketLink (socket-link.ts), re-exported here so the transport has one entry point. A
// connection that goes wrong before it is a link (a malformed or unexpected first frame, none in
// time, too many connections) is closed alone, with a logged reason.
import assert from 'node:assert/strict';
import { createServer, isIP, isIPv4, isIPv6, type Server, type Socket } from 'node:net';
import type { Logger } from '../../core/ports.js';
import { connectReceivingInSlabs, receiveInSlabs } from '../../platform/slab-receive.js';
import { checkWhole, SocketLink, type SocketLinkOptions } from './socket-link.js';
import type { ReplicationLink, ReplOpenInfo } from './types.js';
import type { ReplicationMessage } from './wire.js';
import { FrameDecoder } from './wire-decode.js';

export {
  linkCloseLingerMs,
  linkKeepAliveDelayMs,
  linkQueuedBytesMax,
  SocketLink,
  type SocketLinkOptions,
} from './socket-link.js';

/** A link that never opened (a bad address): closed from the start, with its reason. */
class UnopenedLink implements ReplicationLink {
  readonly closed = true;
  constructor(private readonly reason: string) {}
  send(): void {}
  onMessage(): void {}
  onClose(handler: (reason: string) => void): void {
    queueMicrotask(() => handler(this.reason));
  }
  close(): void {}
}

export interface ConnectLinkOptions {
  readonly connectTimeoutMs: number;
  readonly logger: Logger;
  readonly queuedBytesMax?: number;
  readonly messageBytesMax?: number;
  readonly loopPoll?: SocketLinkOptions['loopPoll'];
}

/**
 * The primary's LinkConnector over TCP: returns a link at once and connects in the background.
 * Messages sent meanwhile wait in the socket (bounded by queuedBytesMax); a connect that fails or
 * times out, or an address that cannot be parsed, closes the link with the reason. Bad options
 * are the caller's bug and throw RangeError.
 */
export function connectLink(
  target: { readonly volume: string; readonly node: string; readonly address: string },
  options: ConnectLinkOptions,
): ReplicationLink {
  checkWhole('connectTimeoutMs', options.connectTimeoutMs, 1);
  const logger = options.logger.child({ volume: target.volume, node: target.node });
  const parsed = parseLinkAddress(target.address);
  if (typeof parsed === 'string') {
    const reason = `cannot connect to ${target.node}: ${parsed}`;
    logger.log('warn', 'replication link closed', { reason });
    return new UnopenedLink(reason);
  }
  const socket = connectReceivingInSlabs({ host: parsed.host, port: parsed.port });
  return new SocketLink(socket, {
    logger,
    peer: `${target.node} (${target.address})`,
    connectTimeoutMs: options.connectTimeoutMs,
    queuedBytesMax: options.queuedBytesMax,
    messageBytesMax: options.messageBytesMax,
    sendBatch: 'microtask',
    loopPoll: options.loopPoll,
  });
}

/**
 * "host:port" with an IPv4 address or a bracketed IPv6 one ("[::1]:7400") and a port from 1 to
 * 65535; the parts, or what is wrong. Names are not resolved: the controller records addresses.
 */
export function parseLinkAddress(address: string): { host: string; port: number } | string {
  const match = /^(?:\[([^\]]*)\]|([^:[\]]*)):(\d{1,5})$/.exec(address);
  const expected = 'expected "host:port" with an IPv4 address or a bracketed IPv6 one';
  if (match === null) return `address ${JSON.stringify(address)} is malformed: ${expected}`;
  const [, ipv6, ipv4, portText] = match;
  const port = Number(portText);
  if (port < 1 || port > 65535)
    return `address ${JSON.stringify(address)} has port ${port}, expected 1 to 65535`;
  if (ipv6 !== undefined) {
    if (!isIPv6(ipv6)) return `address ${JSON.stringify(address)}: ${ipv6} is not an IPv6 address`;
    return { host: ipv6, port };
  }
  if (!isIPv4(ipv4!)) return `address ${JSON.stringify(address)}: ${ipv4} is not an IPv4 address`;
  return { host: ipv4!, port };
}

export interface ReplicationListenerOptions {
  /** An IPv4 or IPv6 address to listen on. */
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  readonly logger: Logger;
  /**
   * Hands a link to the replica of `open.volume`, which reads what follows REPL_OPEN on it; a
   * string refuses the link with that reason (such as "no replica of volume x on this node").
   */
  readonly route: (open: ReplOpenInfo, link: ReplicationLink) => void | string;
  /** How long a new connection may take to send its REPL_OPEN. */
  readonly firstFrameTimeoutMs: number;
  /** Connections open at once, those still waiting for REPL_OPEN included. */
  readonly connectionsMax: number;
  readonly queuedBytesMax?: number;
  readonly messageBytesMax?: number;
}

/**
 * The replica node's side of replication: accepts connections, reads the first frame of each,
 * which must be REPL_OPEN, and routes the link over the rest of the stream by volume. Anything
 * else (another first frame, a malformed one, none in time, too many connections) closes that
 * connection alone, with a logged reason.
 */
export class ReplicationListener {
  private readonly sockets = new Set<Socket>();
  private readonly links = new Map<Socket, SocketLink>();
  private nextConnection = 1;
  private closing = false;

  private constructor(
    private readonly server: Server,
    private readonly options: ReplicationListenerOptions,
    private readonly bound: { readonly host: string; readonly port: number },
  ) {}

  /** Listens on `host:port`; resolves once bound, rejects if it cannot be (EADDRINUSE). */
  static async listen(options: ReplicationListenerOptions): Promise<ReplicationListener> {
    if (isIP(options.host) === 0) {
      throw new RangeError(
        `replication listener host: expected an IP address, got ${JSON.stringify(options.host)}`,
      );
    }
    if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) {
      throw new RangeError(
        `replication listener port: expected 0 to 65535, got ${String(options.port)}`,
      );
    }
    checkWhole('firstFrameTimeoutMs', options.firstFrameTimeoutMs, 1);
    checkWhole('connectionsMax', options.connectionsMax, 1);
    // Paused: accept() moves each socket onto slab receiving before it reads (slab-receive.ts).
    const server = createServer({ pauseOnConnect: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, options.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address();
    assert(address !== null && typeof address === 'object', 'a TCP server has an address');
    const listener = new ReplicationListener(server, options, {
      host: address.address,
      port: address.port,
    });
    server.on('connection', (socket) => listener.accept(socket));
    server.on('error', (error) => {
      options.logger.log('error', 'replication listener failed', { error: error.message });
    });
    options.logger.log('info', 'replication listener ready', { ...listener.bound });
    return listener;
  }

  address(): { host: string; port: number } {
    return { ...this.bound };
  }

  /** Stops listening and cuts every connection, accepted links included; resolves once closed. */
  async close(): Promise<void> {
    this.closing = true;
    const stopped = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) {
      const link = this.links.get(socket);
      if (link === undefined) socket.destroy();
      else link.destroy('replication listener closed');
    }
    await stopped;
  }

  private accept(accepted: Socket): void {
    const socket = receiveInSlabs(accepted);
    const peer = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    const logger = this.options.logger.child({ connection: this.nextConnection++, peer });
    socket.on('error', () => {}); // Every path below reports errors by closing; none may crash.
    if (this.closing || this.sockets.size >= this.options.connectionsMax) {
      const reason = this.closing
        ? 'the listener is closing'
        : `connectionsMax ${this.options.connectionsMax} reached`;
      logger.log('warn', 'refusing replication connection', { reason });
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.once('close', () => {
      this.sockets.delete(socket);
      this.links.delete(socket);
    });
    this.awaitOpen(socket, peer, logger);
  }

  /** Reads up to the first frame; the decoder and what it read past that frame go to the link. */
  private awaitOpen(socket: Socket, peer: string, logger: Logger): void {
    const decoder = new FrameDecoder({ messageBytesMax: this.options.messageBytesMax });
    const timeoutMs = this.options.firstFrameTimeoutMs;
    const stopWaiting = (): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', onError);
      socket.off('close', stopWaiting);
    };
    const refuse = (reason: string): void => {
      stopWaiting();
      logger.log('warn', 'refusing replication connection', { reason });
      socket.destroy();
    };
    const onData = (chunk: Buffer): void => {
      let messages: ReplicationMessage[];
      try {
        messages = decoder.push(chunk);
      } catch (error) {
        refuse(`malformed frame: ${(error as Error).message}`);
        return;
      }
      const [first, ...rest] = messages;
      if (first === undefined) return;
      const open = openOf(first);
      if (typeof open === 'string') return refuse(open);
      // Synchronous from here to the link's own listeners, so no chunk falls in between.
      stopWaiting();
      this.openLink(socket, open, { peer, logger, continueFrom: { decoder, messages: rest } });
    };
    const onEnd = (): void => refuse('the peer closed the connection before REPL_OPEN');
    const onError = (error: Error): void =>
      refuse(`connection error before REPL_OPEN: ${error.message}`);
    const timer = setTimeout(
      () => refuse(`no REPL_OPEN within firstFrameTimeoutMs ${timeoutMs}`),
      timeoutMs,
    );
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('error', onError);
    socket.on('close', stopWaiting);
  }

  private openLink(
    socket: Socket,
    open: ReplOpenInfo,
    options: { peer: string; logger: Logger; continueFrom: SocketLinkOptions['continueFrom'] },
  ): void {
    const logger = options.logger.child({ volume: open.volume, primaryNode: open.primaryNode });
    const link = new SocketLink(socket, {
      logger,
      peer: `${open.primaryNode} (${options.peer})`,
      continueFrom: options.continueFrom,
      queuedBytesMax: this.options.queuedBytesMax,
      messageBytesMax: this.options.messageBytesMax,
    });
    this.links.set(socket, link);
    logger.log('info', 'replication link opened', { epoch: open.epoch });
    let refusal: string | undefined;
    try {
      refusal = this.options.route(open, link) ?? undefined;
    } catch (error) {
      // A route that throws is a bug in the volume server; it costs this link, not the listener.
      refusal = `routing failed: ${(error as Error).message}`;
      logger.log('error', 'replication route threw', { error: (error as Error).stack });
    }
    if (typeof refusal === 'string') {
      logger.log('warn', 'refusing replication link', { reason: refusal });
      link.close(refusal);
    }
  }
}

/** The open request in a first frame, or why it is not one. */
function openOf(message: ReplicationMessage): ReplOpenInfo | string {
  if (message.type !== 'REPL_OPEN') return `the first frame is ${message.type}, expected REPL_OPEN`;
  return { volume: message.volume, primaryNode: message.primaryNode, epoch: message.epoch };
}
