// The seam between the block engine (src/storage/engine) and the servers that expose it (the NBD
// server in src/storage/nbd, and later the replication primary). Anything that serves blocks
// implements this; everything that speaks a wire protocol consumes it.
//
// Durability contract (docs/nbd-server.md, "Durability"): a write, trim or write-zeroes is durable
// once a flush issued after the operation resolved has itself resolved, or once the operation
// resolved with `fua: true`. Before that, a crash may lose it, but never tears a block that an
// earlier flush made durable.
//
// Buffers: a device may keep `data` only until write() settles; after that the caller may reuse
// it. A buffer read() returns belongs to the caller.

/** One run of the address space with the same allocation state, as NBD_CMD_BLOCK_STATUS reports. */
export interface Extent {
  readonly lengthBytes: number;
  /** No layer holds data here: reads return zeroes and a sparse copy may skip it. */
  readonly hole: boolean;
  /** Reads are known to return zeroes (always true for a hole). */
  readonly zero: boolean;
}

export interface WriteOptions {
  /** Force unit access: durable before the promise resolves. */
  readonly fua?: boolean;
}

export interface WriteZeroesOptions extends WriteOptions {
  /** The device may punch a hole instead of writing zeroes (NBD: unless NBD_CMD_FLAG_NO_HOLE). */
  readonly mayTrim?: boolean;
}

/** Errors a block device raises; servers map them to protocol errors (NBD: EIO, EINVAL, ENOSPC...). */
export type BlockErrorKind =
  | 'io' // the backing store failed
  | 'corrupt' // a checksum did not match: the data is not returned
  | 'range' // offset or length outside the device
  | 'read-only' // written while frozen or exported read-only
  | 'no-space' // the backing file system is full
  | 'closed'; // used after close()

export class BlockDeviceError extends Error {
  readonly kind: BlockErrorKind;
  constructor(kind: BlockErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BlockDeviceError';
    this.kind = kind;
  }
}

export interface BlockDevice {
  /** Size of the device in bytes; a multiple of `blockSizeBytes`. */
  readonly sizeBytes: number;
  /** The unit of allocation and checksums; requests need not be aligned to it. */
  readonly blockSizeBytes: number;
  readonly readOnly: boolean;
  /** Whether concurrent clients on several connections see each other's flushed writes. */
  readonly consistentAcrossConnections: boolean;

  read(offsetBytes: number, lengthBytes: number): Promise<Buffer>;
  write(offsetBytes: number, data: Buffer, options?: WriteOptions): Promise<void>;
  flush(): Promise<void>;
  trim(offsetBytes: number, lengthBytes: number, options?: WriteOptions): Promise<void>;
  writeZeroes(
    offsetBytes: number,
    lengthBytes: number,
    options?: WriteZeroesOptions,
  ): Promise<void>;
  /** Allocation state from `offsetBytes`, covering at least one byte and at most `lengthBytes`. */
  blockStatus(offsetBytes: number, lengthBytes: number): Promise<readonly Extent[]>;
  /** Drain: waits for operations in flight, makes everything durable, releases files. */
  close(): Promise<void>;
}
