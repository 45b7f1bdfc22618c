// The API's shapes as the console sees them, imported as types from the server's own modules so
// the console, the API and the CLI cannot drift apart (issue 7). Type-only: nothing of the server
// ends up in the bundle.
import type { ErrorCode } from '../../src/core/errors.js';

export type { ErrorCode } from '../../src/core/errors.js';
export type {
  InstanceRecord,
  JournalEvent,
  NodeState,
  ProbeStatus,
  Transition,
  VolumeReplicaRecord,
  WorkloadPhase,
} from '../../src/core/model.js';
export type { WorkloadSpec } from '../../src/core/spec.js';
export type { VolumeInfo } from '../../src/core/volumes.js';
export type { FailoverView, NodeView, WorkloadView } from '../../src/controller/queries.js';
export type { ResyncView } from '../../src/controller/replication/reports.js';

/** GET /v1/cluster (src/controller/api/app.ts). */
export interface ClusterInfo {
  clusterId: string;
  controllerId: string;
  startedAt: number;
  role: 'leader' | 'follower';
  leader?: string;
}

/** One located problem of a refused spec or request body (src/controller/api/request.ts). */
export interface Problem {
  path: string;
  message: string;
}

/** Every API error body: `{ error: ContinuumError.toJSON() }`. */
export interface ApiErrorBody {
  error: {
    code: ErrorCode;
    message: string;
    retryable?: boolean;
    details?: { problems?: Problem[]; leader?: string };
  };
}
