// The driver's side of one connection to a shim: connects to its unix socket, parses the
// newline-delimited JSON events, and exposes them as promises. A malformed message closes the
// connection (the watcher then falls back to the files in the run directory), never the agent.
import { createConnection, type Socket } from 'node:net';
import {
  messageBytesMax,
  type ExitRecord,
  type ShimCommand,
  type ShimEvent,
  type ShimRecord,
} from './shim-protocol.js';

export class ShimClient {
  /** Rejects when the connection ends before the shim said hello. */
  readonly hello: Promise<ShimRecord>;
  /** The workload's exit as the shim reported it; null when the connection ended without one. */
  readonly exit: Promise<ExitRecord | null>;
  private resolveHello!: (record: ShimRecord) => void;
  private rejectHello!: (err: Error) => void;
  private resolveExit!: (exit: ExitRecord | null) => void;
  private buffered = '';

  /** Connects once; rejects on ENOENT/ECONNREFUSED (no shim listening) or after timeoutMs. */
  static connect(socketPath: string, timeoutMs: number): Promise<ShimClient> {
    return new Promise((resolve, reject) => {
      const socket = createConnection(socketPath);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`no answer from ${socketPath} within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new ShimClient(socket));
      });
    });
  }

  private constructor(private readonly socket: Socket) {
    this.hello = new Promise<ShimRecord>((resolve, reject) => {
      this.resolveHello = resolve;
      this.rejectHello = reject;
    });
    // Callers may only ever look at `exit`; an unobserved hello rejection must not crash the agent.
    this.hello.catch(() => undefined);
    this.exit = new Promise((resolve) => (this.resolveExit = resolve));
    // The watch must not keep an agent alive that is otherwise done; waiters hold their own timers.
    socket.unref();
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => this.receive(text));
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      this.rejectHello(new Error('the shim closed the connection before saying hello'));
      this.resolveExit(null);
    });
  }

  send(command: ShimCommand): void {
    if (!this.socket.destroyed) this.socket.write(`${JSON.stringify(command)}\n`);
  }

  close(): void {
    this.socket.destroy();
  }

  private receive(text: string): void {
    this.buffered += text;
    if (this.buffered.length > messageBytesMax) return this.close();
    let newline: number;
    while ((newline = this.buffered.indexOf('\n')) >= 0) {
      const line = this.buffered.slice(0, newline);
      this.buffered = this.buffered.slice(newline + 1);
      const event = parseEvent(line);
      if (event === null) return this.close();
      if (event.ev === 'hello') this.resolveHello(event);
      else this.resolveExit({ code: event.code, signal: event.signal, at: event.at });
    }
  }
}

const isWhole = (value: unknown): value is number => Number.isInteger(value);
const isNullable = <T>(value: unknown, check: (v: unknown) => v is T): boolean =>
  value === null || check(value);
const isString = (value: unknown): value is string => typeof value === 'string';

/** Checks a shim event field by field; null for anything else. */
export function parseEvent(line: string): ShimEvent | null {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const event = value as Record<string, unknown>;
  if (event.ev === 'hello') {
    const fields = [event.shimPid, event.pid, event.startedAt, event.procStartTime];
    return fields.every(isWhole) ? (value as ShimEvent) : null;
  }
  if (event.ev === 'exited') {
    const ok =
      isWhole(event.pid) &&
      isWhole(event.at) &&
      isNullable(event.code, isWhole) &&
      isNullable(event.signal, isString);
    return ok ? (value as ShimEvent) : null;
  }
  return null;
}
