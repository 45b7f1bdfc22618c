// Reads exact byte counts from a socket with await, for the test client: `await reader.read(16)`.
// Not for the server's hot path (that is transmission.ts); here clarity wins over copies.
import type { Socket } from 'node:net';
import { ByteQueue } from './byte-queue.js';

export class SocketReader {
  private readonly queue = new ByteQueue();
  private waiter:
    { count: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;
  private ended: Error | undefined;

  constructor(socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.queue.push(chunk);
      this.wake();
    });
    socket.on('close', () => this.fail(new Error('connection closed by the server')));
    socket.on('error', (error) => this.fail(error));
  }

  /** Resolves with exactly `count` bytes, or rejects when the connection ends first. */
  read(count: number): Promise<Buffer> {
    if (this.waiter !== undefined) return Promise.reject(new Error('one read at a time'));
    if (this.queue.length >= count) return Promise.resolve(this.queue.take(count));
    if (this.ended !== undefined) return Promise.reject(this.ended);
    return new Promise((resolve, reject) => {
      this.waiter = { count, resolve, reject };
    });
  }

  /** Bytes received and not yet read. */
  get buffered(): number {
    return this.queue.length;
  }

  private wake(): void {
    const waiter = this.waiter;
    if (waiter === undefined || this.queue.length < waiter.count) return;
    this.waiter = undefined;
    waiter.resolve(this.queue.take(waiter.count));
  }

  private fail(error: Error): void {
    this.ended ??= error;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.reject(this.ended);
  }
}
