// What the primary's write path keeps about a client operation: the mutation a client asked for,
// and the replicas it still waits on before it may be answered (primary-core.ts).

/**
 * Resolved: what the local write of a mutation waits for, so that it starts in a promise reaction
 * after its frames were sent. Links send their frames in a microtask queued by the first frame
 * (SocketLink sendBatch 'microtask'), which runs before this reaction: the replicas get the data
 * while the primary writes its own copy, instead of after it (docs/replication.md).
 */
export const sentFirst = Promise.resolve();

export interface MutationRequest {
  readonly kind: 'write' | 'trim' | 'zeroes';
  readonly offsetBytes: number;
  readonly lengthBytes: number;
  readonly fua: boolean;
  readonly data?: Buffer;
  readonly mayTrim?: boolean | undefined;
}

/** A client operation waiting for acks: a mutation (by seq) or a flush. */
export interface Waiting {
  readonly seq: bigint;
  readonly waitingOn: Set<string>;
  localDone: boolean;
  readonly promise: Promise<void>;
  readonly resolve: () => void;
}

export function waitingFor(seq: bigint, nodes: Iterable<string>): Waiting {
  let resolve!: () => void;
  const promise = new Promise<void>((done) => (resolve = done));
  return { seq, waitingOn: new Set(nodes), localDone: false, promise, resolve };
}
