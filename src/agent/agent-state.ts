// What an agent remembers across its own restarts: the cluster it joined, the highest epoch it has
// accepted per workload (it refuses anything older), and the handles of its instances so it can
// re-attach to them. Written atomically (temporary file, fsync, rename).
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import type { WorkloadSpec } from '../core/spec.js';
import type { InstanceHandle } from './drivers/driver.js';
import type { HeldVip } from './vip.js';

export interface PersistedInstance {
  epoch: number;
  restartNonce: number;
  spec: WorkloadSpec;
  ports: Record<string, number>;
  handle?: InstanceHandle;
}

export interface AgentState {
  clusterId?: string;
  highestEpochs: Record<string, number>;
  instances: Record<string, PersistedInstance>;
  /** Instances stopped because their volume was fenced, by workload: the epoch they stopped at. */
  fenced?: Record<string, number>;
  /** Virtual IPs this node holds or may hold (an add was tried): removed after a restart unless wanted. */
  vips?: HeldVip[];
}

export function loadAgentState(path: string): AgentState {
  try {
    const value = JSON.parse(readFileSync(path, 'utf8')) as AgentState;
    return {
      highestEpochs: value.highestEpochs ?? {},
      instances: value.instances ?? {},
      ...(value.fenced === undefined ? {} : { fenced: value.fenced }),
      ...(value.vips === undefined ? {} : { vips: value.vips }),
      ...(value.clusterId ? { clusterId: value.clusterId } : {}),
    };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      return { highestEpochs: {}, instances: {} };
    throw new Error(
      `agent state ${path}: cannot read it (${(err as Error).message}); move it aside to start afresh`,
    );
  }
}

export function saveAgentState(path: string, state: AgentState): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, JSON.stringify(state));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}
