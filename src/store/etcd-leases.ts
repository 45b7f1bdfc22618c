// The leases of an EtcdStore: etcd leases, on etcd's real time. A port lease id is etcd's lease
// ID in decimal. etcd grants whole seconds, and raises any TTL below its minimum (1.5 times its
// election timeout, rounded up: 2 s with the defaults) to that minimum; grant returns the TTL
// etcd actually granted, so a caller that asked for less sees what it got. Keys put with a lease
// are deleted by etcd when it expires, in one revision that watches deliver as one batch.
import { GRPCUnavailableError, castGrpcError, type Etcd3 } from 'etcd3';
import { ContinuumError, isContinuumError } from '../core/errors.js';
import type { EtcdCalls } from './etcd-calls.js';
import type { Lease } from './port.js';
import { leaseNotFoundError } from './store-support.js';

export class EtcdLeases {
  /** Leases this store granted and has not seen end: what revokeLeasesOnClose revokes. */
  readonly granted = new Set<string>();

  constructor(
    private readonly client: Etcd3,
    private readonly calls: EtcdCalls,
    private readonly observe: (revision: string) => void,
  ) {}

  async grant(ttlMs: number): Promise<Lease> {
    const seconds = Math.ceil(ttlMs / 1000);
    // Not repeatable: a grant whose answer was lost may have made a lease (which then expires).
    const response = await this.calls.run('grantLease', 'write', this.calls.deadline(), (try_) =>
      this.client.leaseClient.leaseGrant({ TTL: seconds }, try_.options),
    );
    if (response.error !== '') {
      throw new ContinuumError(
        'CONTINUUM_ERR_INTERNAL',
        `etcd refused grantLease: ${response.error}`,
      );
    }
    this.observe(response.header.revision);
    this.granted.add(response.ID);
    return { id: response.ID, ttlMs: Number(response.TTL) * 1000 };
  }

  /** etcdId is the validated etcd ID of the port lease `id`. */
  async keepAlive(id: string, etcdId: string): Promise<void> {
    const ttlSeconds = await this.calls.run(
      'keepAliveLease',
      'repeatable',
      this.calls.deadline(),
      (try_) => this.keepAliveOnce(etcdId, try_.options),
    );
    // etcd answers a keepalive of an expired or unknown lease with TTL 0.
    if (ttlSeconds <= 0) {
      this.granted.delete(id);
      throw leaseNotFoundError(id);
    }
  }

  async revoke(id: string): Promise<void> {
    try {
      await this.calls.run('revokeLease', 'repeatable', this.calls.deadline(), async (try_) => {
        try {
          const response = await this.client.leaseClient.leaseRevoke({ ID: id }, try_.options);
          this.observe(response.header.revision);
        } catch (error) {
          // A try whose outcome was unknown may have revoked it already: that is success.
          const gone = error instanceof Error && error.message.includes('lease not found');
          if (!(gone && try_.earlierAmbiguous)) throw error;
        }
      });
    } catch (error) {
      if (isContinuumError(error) && error.code === 'CONTINUUM_ERR_NOT_FOUND') {
        this.granted.delete(id);
        throw leaseNotFoundError(id);
      }
      throw error;
    }
    this.granted.delete(id);
  }

  /** One keepalive round trip on a stream of its own: etcd answers the lease's remaining TTL. */
  private async keepAliveOnce(etcdId: string, options: { deadline: Date }): Promise<number> {
    const stream = await this.client.leaseClient.leaseKeepAlive(options);
    return new Promise<number>((resolve, reject) => {
      stream.on('data', (response) => {
        resolve(Number(response.TTL));
        stream.end();
      });
      stream.on('error', (error) => reject(castGrpcError(error)));
      stream.on('end', () => {
        reject(new GRPCUnavailableError('the keepalive stream ended without an answer'));
      });
      stream.write({ ID: etcdId });
    });
  }
}
