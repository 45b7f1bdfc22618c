// Every limit of the NBD server, with its unit last (CONVENTIONS.md item 9), the defaults, and the
// validation that runs when a server is created. Memory per connection is bounded by
// inFlightBytesMax + replyQueueBytesMax + one request; the whole server by connectionsMax times that.

export interface NbdLimits {
  /**
   * Largest length of one READ, WRITE or WRITE_ZEROES; advertised as the maximum block size. A WRITE
   * whose payload is larger closes the connection (reading it would be the denial of service the
   * specification allows a server to refuse); a READ or WRITE_ZEROES gets EINVAL.
   */
  readonly requestBytesMax: number;
  /** Requests of one connection executing at once; the rest wait unread in the socket. */
  readonly inFlightRequestsMax: number;
  /** Payload bytes (write data held, read data asked for) of one connection's requests in flight. */
  readonly inFlightBytesMax: number;
  /** Replies queued for a client that does not read them; above this the server stops reading. */
  readonly replyQueueBytesMax: number;
  /** From accept to the transmission phase; a client that dawdles longer is disconnected. */
  readonly handshakeTimeoutMs: number;
  /** Options one handshake may send; more is taken as a denial of service. */
  readonly handshakeOptionsMax: number;
  /** Data of one option; a longer option is skipped unread and answered NBD_REP_ERR_TOO_BIG. */
  readonly optionBytesMax: number;
  /** Queries in one LIST_META_CONTEXT or SET_META_CONTEXT option. */
  readonly metaContextQueriesMax: number;
  /** Open connections; one more is closed as soon as it is accepted. */
  readonly connectionsMax: number;
  /** Descriptors in one block status reply (the client asks again for the rest). */
  readonly blockStatusExtentsMax: number;
  /** close(): how long connections may take to finish their requests before they are cut. */
  readonly drainTimeoutMs: number;
}

const MiB = 1024 * 1024;

export const defaultNbdLimits: NbdLimits = {
  // 32 MiB: the largest request the specification says a client may expect any server to take.
  requestBytesMax: 32 * MiB,
  // Above the deepest queue common clients keep (qemu 16, nbdcopy 64 per connection, fio's iodepth).
  inFlightRequestsMax: 128,
  inFlightBytesMax: 64 * MiB,
  replyQueueBytesMax: 8 * MiB,
  handshakeTimeoutMs: 10_000,
  handshakeOptionsMax: 256,
  // Room for a 4 KiB name and a few 4 KiB queries, the longest strings the specification allows.
  optionBytesMax: 64 * 1024,
  metaContextQueriesMax: 16,
  connectionsMax: 256,
  blockStatusExtentsMax: 4096,
  drainTimeoutMs: 30_000,
};

const bounds: Record<keyof NbdLimits, readonly [number, number]> = {
  requestBytesMax: [64 * 1024, 1024 * MiB],
  inFlightRequestsMax: [1, 65_536],
  inFlightBytesMax: [64 * 1024, 64 * 1024 * MiB],
  replyQueueBytesMax: [64 * 1024, 64 * 1024 * MiB],
  handshakeTimeoutMs: [1, 3_600_000],
  handshakeOptionsMax: [1, 1_000_000],
  optionBytesMax: [4096 + 16, 16 * MiB],
  metaContextQueriesMax: [1, 65_536],
  connectionsMax: [1, 1_000_000],
  blockStatusExtentsMax: [1, 1_000_000],
  drainTimeoutMs: [0, 3_600_000],
};

/** Fills in defaults and checks every value; the error names the limit and the value it got. */
export function resolveNbdLimits(overrides: Partial<NbdLimits> = {}): NbdLimits {
  const limits = { ...defaultNbdLimits, ...overrides };
  for (const key of Object.keys(bounds) as (keyof NbdLimits)[]) {
    const value = limits[key];
    const [min, max] = bounds[key];
    if (!Number.isInteger(value) || value < min || value > max) {
      throw new RangeError(
        `NBD limit ${key}: expected a whole number from ${min} to ${max}, got ${String(value)}`,
      );
    }
  }
  if (limits.inFlightBytesMax < limits.requestBytesMax) {
    throw new RangeError(
      `NBD limit inFlightBytesMax (${limits.inFlightBytesMax}) must be at least requestBytesMax ` +
        `(${limits.requestBytesMax}), or a largest request could never run`,
    );
  }
  return limits;
}
