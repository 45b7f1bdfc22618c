// Calls forwarded to the agent of one node over its session and answered by id: volume operations
// on the node's engine, and the recent output of an instance. A call fails fast when the node has
// no session, and with a timeout when the agent does not answer; a session that goes away fails
// the calls it carried.
import { ContinuumError, isErrorCode } from '../core/errors.js';
import type { Clock } from '../core/ports.js';
import type { ControllerMessage, LogsRequest, LogsResult } from '../core/protocol.js';
import type { VolumeRequest, VolumeResult } from '../core/volumes.js';

/** How long a volume operation may take on the agent (creating, growing, snapshotting). */
export const volumeCallTimeoutMsDefault = 30_000;
/** How long reading an instance's recent output may take on the agent. */
export const logsCallTimeoutMsDefault = 5_000;
/** Calls of one kind waiting for an answer at once, over all nodes. */
export const agentCallsPendingMax = 256;

interface Pending<Result> {
  node: string;
  resolve(result: Result): void;
  reject(error: ContinuumError): void;
  cancelTimer(): void;
}

export interface AgentRpcOptions {
  clock: Clock;
  /** Sends to the node's current session; false when it has none. */
  send(node: string, message: ControllerMessage): boolean;
  timeoutMs?: number;
}

interface CallKind<Request> {
  /** What a call is, in messages: "volume list", "logs of kv". */
  describe(request: Request): string;
  /** The plural of the kind, for the in-flight limit's message. */
  plural: string;
  message(id: number, request: Request): ControllerMessage;
}

type Reply<Result> =
  | { type: string; id: number; ok: true; result: Result }
  | { type: string; id: number; ok: false; code: string; message: string };

export class AgentRpc<Request, Result> {
  private readonly pending = new Map<number, Pending<Result>>();
  private nextId = 1;
  private readonly timeoutMs: number;

  constructor(
    private readonly options: AgentRpcOptions & { timeoutMs: number },
    private readonly kind: CallKind<Request>,
  ) {
    this.timeoutMs = options.timeoutMs;
    if (!Number.isInteger(this.timeoutMs) || this.timeoutMs <= 0)
      throw new RangeError(
        `${kind.plural} timeoutMs: expected a positive whole number, got ${this.timeoutMs}`,
      );
  }

  call(node: string, request: Request): Promise<Result> {
    if (this.pending.size >= agentCallsPendingMax) {
      return Promise.reject(
        new ContinuumError(
          'CONTINUUM_ERR_UNAVAILABLE',
          `too many ${this.kind.plural} in flight (${agentCallsPendingMax}); retry shortly`,
        ),
      );
    }
    const id = this.nextId++;
    return new Promise<Result>((resolve, reject) => {
      const timer = this.options.clock.setTimeout(() => {
        this.pending.delete(id);
        reject(
          new ContinuumError(
            'CONTINUUM_ERR_TIMEOUT',
            `node ${node} did not answer ${this.kind.describe(request)} within ${this.timeoutMs} ms`,
          ),
        );
      }, this.timeoutMs);
      const cancelTimer = () => this.options.clock.clearTimeout(timer);
      this.pending.set(id, { node, resolve, reject, cancelTimer });
      if (!this.options.send(node, this.kind.message(id, request))) {
        this.settle(
          id,
          () => new ContinuumError('CONTINUUM_ERR_UNAVAILABLE', `node ${node} is not connected`),
        );
      }
    });
  }

  /** An agent's answer; answers to unknown ids (timed out, or from another session) are dropped. */
  reply(node: string, message: Reply<Result>): void {
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

/** Volume operations on a node's engine (volume-request / volume-reply). */
export function volumeRpc(options: AgentRpcOptions): AgentRpc<VolumeRequest, VolumeResult> {
  return new AgentRpc(
    { ...options, timeoutMs: options.timeoutMs ?? volumeCallTimeoutMsDefault },
    {
      describe: (request) => `volume ${request.op}`,
      plural: 'volume operations',
      message: (id, request) => ({ type: 'volume-request', id, request }),
    },
  );
}

/** The recent output of an instance on a node (logs-request / logs-reply). */
export function logsRpc(options: AgentRpcOptions): AgentRpc<LogsRequest, LogsResult> {
  return new AgentRpc(
    { ...options, timeoutMs: options.timeoutMs ?? logsCallTimeoutMsDefault },
    {
      describe: (request) => `the logs of ${request.workload}`,
      plural: 'log reads',
      message: (id, request) => ({ type: 'logs-request', id, request }),
    },
  );
}
