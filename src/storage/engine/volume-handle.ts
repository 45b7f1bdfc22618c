// What `VolumeStore.open` returns: one user's handle on an open volume. Several handles (NBD
// connections, the scrubber, an export) share one VolumeDevice, so they see each other's writes at
// once; each handle has its own read-only flag and its own close, and the store releases the
// volume's files when the last handle is closed.
import {
  BlockDeviceError,
  type BlockDevice,
  type Extent,
  type WriteOptions,
  type WriteZeroesOptions,
} from '../block-device.js';
import type { BlockChecksums } from './chain-status.js';
import type { ChangeListener, VolumeDevice } from './volume-device.js';

export class Volume implements BlockDevice {
  private closed = false;
  private inFlight = 0;
  private drained: (() => void) | null = null;
  private readonly unsubscribes: (() => void)[] = [];

  constructor(
    private readonly device: VolumeDevice,
    readonly readOnly: boolean,
    private readonly release: () => Promise<void>,
  ) {}

  /** "vol", "vol@snap" or "image:name". */
  get name(): string {
    return this.device.name;
  }

  get sizeBytes(): number {
    return this.device.sizeBytes;
  }

  get blockSizeBytes(): number {
    return this.device.blockSizeBytes;
  }

  get consistentAcrossConnections(): boolean {
    return this.device.consistentAcrossConnections;
  }

  /** See VolumeDevice.dataGeneration. */
  get dataGeneration(): number {
    return this.device.dataGeneration;
  }

  read(offsetBytes: number, lengthBytes: number): Promise<Buffer> {
    return this.track(() => this.device.read(offsetBytes, lengthBytes));
  }

  /** Reads into the caller's buffer (no allocation); see VolumeDevice.readInto. */
  readInto(offsetBytes: number, target: Buffer): Promise<void> {
    return this.track(() => this.device.readInto(offsetBytes, target));
  }

  /** Holds `data` until the promise settles and not a moment longer; the caller may reuse it then. */
  write(offsetBytes: number, data: Buffer, options?: WriteOptions): Promise<void> {
    return this.trackWrite(() => this.device.write(offsetBytes, data, options));
  }

  flush(): Promise<void> {
    return this.track(() => this.device.flush());
  }

  trim(offsetBytes: number, lengthBytes: number, options?: WriteOptions): Promise<void> {
    return this.trackWrite(() => this.device.trim(offsetBytes, lengthBytes, options));
  }

  writeZeroes(
    offsetBytes: number,
    lengthBytes: number,
    options?: WriteZeroesOptions,
  ): Promise<void> {
    return this.trackWrite(() => this.device.writeZeroes(offsetBytes, lengthBytes, options));
  }

  blockStatus(offsetBytes: number, lengthBytes: number): Promise<readonly Extent[]> {
    return this.track(() => this.device.blockStatus(offsetBytes, lengthBytes));
  }

  /** Effective CRC-32 per block, for a resync to compare with a peer's. */
  readChecksums(startBlock: number, blockCount: number): Promise<BlockChecksums> {
    return this.track(() => this.device.readChecksums(startBlock, blockCount));
  }

  /** Hears every applied change (block ranges) until this handle closes. */
  onChange(listener: ChangeListener): () => void {
    const unsubscribe = this.device.onChange(listener);
    this.unsubscribes.push(unsubscribe);
    return unsubscribe;
  }

  /** Waits for this handle's requests in flight, makes the volume durable, lets the store go. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const unsubscribe of this.unsubscribes) unsubscribe();
    if (this.inFlight > 0) await new Promise<void>((resolve) => (this.drained = resolve));
    try {
      if (!this.readOnly) await this.device.flush();
    } finally {
      await this.release();
    }
  }

  private trackWrite<T>(operation: () => Promise<T>): Promise<T> {
    if (this.readOnly && !this.closed) {
      return Promise.reject(
        new BlockDeviceError('read-only', `volume ${this.device.name} is open read-only`),
      );
    }
    return this.track(operation);
  }

  private track<T>(operation: () => Promise<T>): Promise<T> {
    if (this.closed) {
      return Promise.reject(new BlockDeviceError('closed', `volume ${this.device.name} is closed`));
    }
    this.inFlight += 1;
    // The async wrapper starts the operation now and turns a synchronous throw into a rejection.
    const result = (async () => operation())();
    return result.finally(() => {
      this.inFlight -= 1;
      if (this.inFlight === 0 && this.drained !== null) this.drained();
    });
  }
}
