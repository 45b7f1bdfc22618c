// Volume operations forwarded to the agent of the node that holds the volume, over its session,
// and answered by id. A call fails fast when the node has no session, and with a timeout when the
// agent does not answer; a session that goes away fails the calls it carried.
import { ContinuumError, isErrorCode } from '../core/errors.js';
import type { Clock } from '../core/ports.js';
import type { AgentVolumeReply, ControllerMessage } from '../core/protocol.js';
import type { VolumeRequest, VolumeResult } from '../core/volumes.js';

/** How long a volume operation may take on the agent (creating, growing, snapshotting). */
export const volumeCallTimeoutMsDefault = 30_000;
/** Calls waiting for an answer at once, over all nodes. */
export const volumeCallsPendingMax = 256;

interface Pending {
  node: string;
  resolve(result: VolumeResult): void;
  reject(error: ContinuumError): void;
  cancelTimer(): void;
}

export interface VolumeRpcOptions {
  clock: Clock;
  /** Sends to the node's current session; false when it has none. */
  send(node: string, message: ControllerMessage): boolean;
  timeoutMs?: number;
}

export class VolumeRpc {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private readonly timeoutMs: number;

  constructor(private readonly options: VolumeRpcOptions) {
    this.timeoutMs = options.timeoutMs ?? volumeCallTimeoutMsDefault;
    if (!Number.isInteger(this.timeoutMs) || this.timeoutMs <= 0)
      throw new RangeError(
        `volume call timeoutMs: expected a positive whole number, got ${this.timeoutMs}`,
      );
  }

  call(node: string, request: VolumeRequest): Promise<VolumeResult> {
    if (this.pending.size >= volumeCallsPendingMax) {
      return Promise.reject(
        new ContinuumError(
          'CONTINUUM_ERR_UNAVAILABLE',
          `too many volume operations in flight (${volumeCallsPendingMax}); retry shortly`,
        ),
      );
    }
    const id = this.nextId++;
    return new Promise<VolumeResult>((resolve, reject) => {
      const timer = this.options.clock.setTimeout(() => {
        this.pending.delete(id);
        reject(
          new ContinuumError(
            'CONTINUUM_ERR_TIMEOUT',
            `node ${node} did not answer volume ${request.op} within ${this.timeoutMs} ms`,
          ),
        );
      }, this.timeoutMs);
      const cancelTimer = () => this.options.clock.clearTimeout(timer);
      this.pending.set(id, { node, resolve, reject, cancelTimer });
      if (!this.options.send(node, { type: 'volume-request', id, request })) {
        this.settle(
          id,
          () => new ContinuumError('CONTINUUM_ERR_UNAVAILABLE', `node ${node} is not connected`),
        );
      }
    });
  }

  /** An agent's answer; answers to unknown ids (timed out, or from another session) are dropped. */
  reply(node: string, message: AgentVolumeReply): void {
    const pending = this.pending.get(message.id);
    if (pending === undefined || pending.node !== node) return;
    if (message.ok) {
      this.pending.delete(message.id);
      pending.cancelTimer();
      pending.resolve(message.result);
      return;
    }
    const code = isErrorCode(message.code) ? message.code : 'CONTINUUM_ERR_DRIVER';
    this.settle(message.id, () => new ContinuumError(code, `node ${node}: ${message.message}`));
  }

  /** The node's session ended: nothing it carried will be answered. */
  nodeGone(node: string): void {
    for (const [id, pending] of this.pending) {
      if (pending.node === node)
        this.settle(
          id,
          () =>
            new ContinuumError(
              'CONTINUUM_ERR_UNAVAILABLE',
              `node ${node} disconnected before answering`,
            ),
        );
    }
  }

  close(): void {
    for (const id of [...this.pending.keys()])
      this.settle(id, () => new ContinuumError('CONTINUUM_ERR_UNAVAILABLE', 'controller stopping'));
  }

  private settle(id: number, error: () => ContinuumError): void {
    const pending = this.pending.get(id);
    if (pending === undefined) return;
    this.pending.delete(id);
    pending.cancelTimer();
    pending.reject(error());
  }
}
