// Messages of an agent session (WebSocket, JSON). Every message is validated when it arrives; a
// malformed one closes that session with a logged reason.
import { z } from 'zod';
import { probeActionSchema } from './probe-spec.js';
import { capacitySchema, nameSchema, nodeRoleSchema, workloadSpecSchema } from './spec.js';
import { volumeRequestSchema, volumeResultSchema } from './volumes.js';

export const agentProtocolVersion = 1;
/** Largest session message accepted, in bytes. */
export const agentMessageBytesMax = 1_048_576;
/** Longest controller URL a follower may name as the leader's, in characters. */
export const controllerUrlLengthMax = 2048;

const probeStatusSchema = z.object({
  ok: z.boolean(),
  consecutiveFailures: z.number().int().nonnegative(),
  lastCheckedAt: z.number().optional(),
  lastError: z.string().max(2048).optional(),
  lastDurationMs: z.number().nonnegative().optional(),
  failing: z.boolean().optional(),
  reason: z.string().max(2048).optional(),
  action: probeActionSchema.optional(),
  remediation: z
    .object({ at: z.number(), ok: z.boolean(), message: z.string().max(2048) })
    .optional(),
});

export const instanceStatusSchema = z.object({
  workload: nameSchema,
  node: nameSchema,
  epoch: z.number().int().nonnegative(),
  state: z.enum([
    'starting',
    'healthy',
    'unhealthy',
    'restarting',
    'failed',
    'stopping',
    'stopped',
  ]),
  pid: z.number().int().positive().optional(),
  ports: z.record(z.string(), z.number().int().min(1).max(65535)),
  startedAt: z.number().optional(),
  restarts: z.number().int().nonnegative(),
  restartNonce: z.number().int().nonnegative(),
  failoverRequested: z.boolean(),
  probes: z.record(z.string(), probeStatusSchema),
  message: z.string().max(4096).optional(),
  fenced: z.boolean().optional(),
});

export const agentHelloSchema = z.object({
  type: z.literal('hello'),
  protocolVersion: z.number().int(),
  node: nameSchema,
  site: nameSchema,
  role: nodeRoleSchema,
  labels: z.record(z.string(), z.string()),
  address: z.string().min(1).max(255),
  capacity: capacitySchema,
  inventory: z.object({
    hostname: z.string().max(255),
    cpuCount: z.number().int().positive(),
    memoryMiB: z.number().int().positive(),
    agentVersion: z.string().max(64),
    agentPid: z.number().int().positive(),
  }),
  /** Where this node's volume server accepts replication links ("host:port"), if it does. */
  replicationAddress: z.string().min(1).max(255).optional(),
  /** The cluster this agent joined before, if any; a controller of another cluster is refused. */
  clusterId: z.string().max(128).optional(),
  instances: z.array(instanceStatusSchema).max(10_000),
  /** The sequence number of the agent's last instance report; the statuses above include it. */
  reportSeq: z.number().int().nonnegative().optional(),
});

export const agentHeartbeatSchema = z.object({
  type: z.literal('heartbeat'),
  seq: z.number().int().nonnegative(),
  usage: z.object({
    cpuPercent: z.number().nonnegative(),
    memoryUsedMiB: z.number().nonnegative(),
    load1: z.number().nonnegative(),
  }),
  /**
   * The revision of the newest assignment set the agent has taken. Behind what the controller
   * sent, for longer than a round trip, means a set was lost: the controller sends it again.
   */
  assignmentsRevision: z.number().int().nonnegative().optional(),
  /**
   * The sequence number of the agent's last instance report. Ahead of what the controller took,
   * for longer than a round trip, means a report was lost (messages may be dropped, not only on
   * TCP): the controller closes the session, and the agent's next hello carries every status.
   */
  reportSeq: z.number().int().nonnegative().optional(),
});

/** seq grows with every report of one agent process, so a delayed or duplicated report is dropped. */
export const agentInstanceSchema = z.object({
  type: z.literal('instance'),
  seq: z.number().int().nonnegative(),
  status: instanceStatusSchema,
});

/** The agent refused an assignment (for example an epoch older than one it has seen). */
export const agentRejectSchema = z.object({
  type: z.literal('reject'),
  workload: nameSchema,
  epoch: z.number().int().nonnegative(),
  code: z.string().max(64),
  message: z.string().max(4096),
});

const counter = z.number().int().nonnegative();

/** What a primary volume server reports to the controller (src/storage/replication/types.ts). */
export const primaryReportSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.enum(['unresponsive', 'unclean']),
    volume: nameSchema,
    epoch: counter,
    node: nameSchema,
    isrVersion: counter,
    waitingMs: counter,
  }),
  z.object({
    kind: z.literal('caught-up'),
    volume: nameSchema,
    epoch: counter,
    node: nameSchema,
    isrVersion: counter,
  }),
  z.object({
    kind: z.literal('fenced'),
    volume: nameSchema,
    epoch: counter,
    reason: z.string().max(4096),
  }),
  z.object({
    kind: z.literal('resync'),
    volume: nameSchema,
    epoch: counter,
    node: nameSchema,
    mode: z.enum(['delta', 'full', 'verify']),
    bytesCopied: counter,
    bytesToCopy: counter,
    blocksCompared: counter,
    done: z.boolean(),
  }),
]);

export const agentVolumeReportSchema = z.object({
  type: z.literal('volume-report'),
  report: primaryReportSchema,
});

/** The answer to a volume-request, matched by id. */
export const agentVolumeReplySchema = z.discriminatedUnion('ok', [
  z.object({
    type: z.literal('volume-reply'),
    id: z.number().int().nonnegative(),
    ok: z.literal(true),
    result: volumeResultSchema,
  }),
  z.object({
    type: z.literal('volume-reply'),
    id: z.number().int().nonnegative(),
    ok: z.literal(false),
    code: z.string().max(64),
    message: z.string().max(4096),
  }),
]);

/** Most lines of an instance's output one logs-request returns. */
export const logLinesMax = 1000;
/** Most bytes of output one logs-request reads (from the end); longer lines are cut. */
export const logTailBytesMax = 256 * 1024;
/** Longest line of output returned; the rest of it is cut. */
export const logLineCharsMax = 4096;

/** The recent output of one workload's instance on the node that is asked. */
export const logsRequestSchema = z.object({
  workload: nameSchema,
  linesMax: z.number().int().min(1).max(logLinesMax),
});

export const logsResultSchema = z.object({
  /** The epoch of the instance whose output this is (the node's latest of the workload). */
  epoch: z.number().int().nonnegative(),
  lines: z.array(z.string().max(logLineCharsMax)).max(logLinesMax),
  /** True when older output exists beyond what was read. */
  truncated: z.boolean(),
});

/** The answer to a logs-request, matched by id. */
export const agentLogsReplySchema = z.discriminatedUnion('ok', [
  z.object({
    type: z.literal('logs-reply'),
    id: z.number().int().nonnegative(),
    ok: z.literal(true),
    result: logsResultSchema,
  }),
  z.object({
    type: z.literal('logs-reply'),
    id: z.number().int().nonnegative(),
    ok: z.literal(false),
    code: z.string().max(64),
    message: z.string().max(4096),
  }),
]);

export const agentMessageSchema = z.union([
  z.discriminatedUnion('type', [
    agentHelloSchema,
    agentHeartbeatSchema,
    agentInstanceSchema,
    agentRejectSchema,
    agentVolumeReportSchema,
  ]),
  agentVolumeReplySchema,
  agentLogsReplySchema,
]);

/** One replicated volume this node serves as primary or holds as a replica. */
export const volumeDutySchema = z.object({
  volume: nameSchema,
  sizeBytes: z.number().int().positive(),
  role: z.enum(['primary', 'replica']),
  epoch: z.number().int().positive(),
  membership: z.object({
    replicas: z.array(z.object({ node: nameSchema, address: z.string().max(255) })).max(16),
    isr: z.array(nameSchema).max(16),
    isrVersion: counter,
  }),
});

export const assignmentSchema = z.object({
  workload: nameSchema,
  epoch: z.number().int().positive(),
  spec: workloadSpecSchema,
  restartNonce: z.number().int().nonnegative(),
});

export const controllerMessageSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('welcome'),
    clusterId: z.string(),
    controllerId: z.string(),
    heartbeatIntervalMs: z.number().int().positive(),
  }),
  /** The full set of instances this node must run; anything else it runs must stop. */
  z.object({
    type: z.literal('assignments'),
    /** Store revision the set was computed at; an agent ignores a set older than one it applied. */
    revision: z.number().int().nonnegative(),
    assignments: z.array(assignmentSchema),
    /**
     * The current epoch of every workload this node runs or ran. An agent raises its highest-seen
     * epochs from them first, so a delayed or duplicated older set can never restart a moved workload.
     */
    epochs: z.record(z.string(), z.number().int().nonnegative()),
    /** Every replicated volume this node serves or holds; any other it has is closed. */
    volumes: z.array(volumeDutySchema).max(10_000).optional(),
  }),
  z.object({
    type: z.literal('error'),
    code: z.string(),
    message: z.string(),
    /** With CONTINUUM_ERR_NOT_LEADER: where the leader answers, as far as this controller knows. */
    leader: z.string().max(controllerUrlLengthMax).optional(),
  }),
  /** One operation on this node's volumes; the agent answers with a volume-reply of the same id. */
  z.object({
    type: z.literal('volume-request'),
    id: z.number().int().nonnegative(),
    request: volumeRequestSchema,
  }),
  /**
   * A 'fenced' volume report was taken (journaled, or found journaled already): the agent stops
   * sending it again.
   */
  z.object({
    type: z.literal('fenced-taken'),
    volume: nameSchema,
    epoch: z.number().int().nonnegative(),
  }),
  /** The recent output of an instance; the agent answers with a logs-reply of the same id. */
  z.object({
    type: z.literal('logs-request'),
    id: z.number().int().nonnegative(),
    request: logsRequestSchema,
  }),
]);

export type AgentHello = z.infer<typeof agentHelloSchema>;
export type AgentHeartbeat = z.infer<typeof agentHeartbeatSchema>;
export type AgentMessage = z.infer<typeof agentMessageSchema>;
export type VolumeDutyMessage = z.infer<typeof volumeDutySchema>;
export type PrimaryReportMessage = z.infer<typeof primaryReportSchema>;
export type AgentVolumeReply = z.infer<typeof agentVolumeReplySchema>;
export type AgentLogsReply = z.infer<typeof agentLogsReplySchema>;
export type LogsRequest = z.infer<typeof logsRequestSchema>;
export type LogsResult = z.infer<typeof logsResultSchema>;
export type Assignment = z.infer<typeof assignmentSchema>;
export type ControllerMessage = z.infer<typeof controllerMessageSchema>;
