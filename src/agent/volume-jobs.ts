// Long volume work on one node: import and export of images (raw, or qcow2 through qemu-img),
// scrub, and the golden images' list and delete. These run where the files are, so they are not
// API calls: `continuum volume import|export|scrub|images` on the node sends the job to the running
// agent over a unix socket (<data-dir>/run/volume-jobs.sock, owner only) and draws its progress;
// with no agent running, the CLI opens the store itself and runs the same job.
//
// Wire format: the client sends one JSON line (the job); the agent answers with progress lines
// {"progress":{...}} and ends with {"ok":true,"result":...} or {"ok":false,"code","message"}.
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { chmodSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { z } from 'zod';
import { ContinuumError, isContinuumError, isErrorCode } from '../core/errors.js';
import type { Logger } from '../core/ports.js';
import { agentMessageBytesMax, volumeDutySchema } from '../core/protocol.js';
import { nameSchema, volumeReplicasMax, volumeSizeMiBMax } from '../core/spec.js';
import { volumeRequestSchema } from '../core/volumes.js';
import {
  openRawReader,
  parseSourceRef,
  type Progress,
  type ProgressListener,
  VolumeStore,
} from '../storage/engine/index.js';

/** A job is one line; anything longer is not a job. */
export const volumeJobLineBytesMax = 64 * 1024;
/**
 * A control request is one line too, up to this on a server that takes them: a `set-duties` holds
 * every duty of an assignments message, which is at most agentMessageBytesMax.
 */
export const volumeControlLineBytesMax = agentMessageBytesMax;
/** Duties in one `set-duties`, as many as an assignments message may carry. */
export const volumeDutiesMax = 10_000;
/** Jobs running at once in one agent; more are refused (each one streams a whole volume). */
export const volumeJobsMax = 2;
/** Progress lines per second sent to a client at most. */
const progressPerSecondMax = 5;

const absolutePath = z
  .string({ error: 'expected an absolute file path' })
  .min(1)
  .max(4096)
  .refine((path) => isAbsolute(path) && !path.includes('\0'), {
    error: 'expected an absolute file path',
  });
const sourceText = z.string().min(1).max(200);

export const volumeJobSchema = z.discriminatedUnion(
  'op',
  [
    z.strictObject({
      op: z.literal('import'),
      /** A golden image (frozen, shared, deduplicated by content) or a new writable volume. */
      as: z.enum(['image', 'volume']),
      name: nameSchema,
      file: absolutePath,
      format: z.enum(['auto', 'raw', 'qcow2']).default('auto'),
    }),
    z.strictObject({
      op: z.literal('export'),
      /** "vol", "vol@snap" or "image:name". */
      source: sourceText,
      file: absolutePath,
      format: z.enum(['raw', 'qcow2']).default('raw'),
    }),
    z.strictObject({
      op: z.literal('scrub'),
      source: sourceText,
      repairFrom: absolutePath.optional(),
    }),
    z.strictObject({ op: z.literal('images') }),
    z.strictObject({ op: z.literal('delete-image'), name: nameSchema }),
  ],
  { error: 'expected op import, export, scrub, images or delete-image' },
);
export type VolumeJob = z.input<typeof volumeJobSchema>;

const dutiesSchema = z
  .array(volumeDutySchema)
  .max(volumeDutiesMax)
  .superRefine((duties, context) => {
    const seen = new Set<string>();
    duties.forEach((duty, index) => {
      if (seen.has(duty.volume)) {
        context.addIssue({
          code: 'custom',
          path: [index, 'volume'],
          message: `volume ${duty.volume} has more than one duty; expected one per volume`,
        });
      }
      seen.add(duty.volume);
    });
  });

/**
 * What the agent asks of the volume server process on the same socket: quick operations, not
 * counted against volumeJobsMax. Answers (the `result` of the reply line):
 *
 *   hello        -> { incarnation, pid, replicationAddress: "host:port", nbd: NbdCounters }
 *   volume       -> VolumeResult
 *   ensure       -> NbdTarget; a replicated volume (replicas > 1) needs the instance's epoch and
 *                   waits for this node's primary at that epoch, failing with UNAVAILABLE
 *   set-attached -> {}
 *   set-duties   -> {} (the full set of this node's replication duties; applied in the background)
 *   self-fence   -> {} (the agent self-fences this node's primary of a volume at an epoch; the
 *                   'fenced' report follows)
 *   reports      -> { incarnation, reports: PrimaryReport[] }, at once when some are queued, else
 *                   after the first arrives or a second passes (a long poll)
 */
export const volumeControlSchema = z.discriminatedUnion('op', [
  z.strictObject({ op: z.literal('hello') }),
  z.strictObject({ op: z.literal('volume'), request: volumeRequestSchema }),
  z.strictObject({
    op: z.literal('ensure'),
    name: nameSchema,
    sizeMiB: z.number().int().min(1).max(volumeSizeMiBMax),
    replicas: z.number().int().min(1).max(volumeReplicasMax).optional(),
    epoch: z.number().int().positive().optional(),
  }),
  z.strictObject({ op: z.literal('set-attached'), name: nameSchema, attached: z.boolean() }),
  z.strictObject({ op: z.literal('set-duties'), duties: dutiesSchema }),
  z.strictObject({
    op: z.literal('self-fence'),
    volume: nameSchema,
    epoch: z.number().int().positive(),
    reason: z.string().min(1).max(4096),
  }),
  z.strictObject({ op: z.literal('reports') }),
]);
export type VolumeControl = z.infer<typeof volumeControlSchema>;
const controlOps = new Set([
  'hello',
  'volume',
  'ensure',
  'set-attached',
  'set-duties',
  'self-fence',
  'reports',
]);

/** Whoever owns the volumes answers the control operations (the volume server). */
export type VolumeControlHandler = (control: VolumeControl) => Promise<unknown>;

export interface VolumeJobHooks {
  /** A job made a new volume (import as volume): the server opens it for NBD. */
  volumeAdded?(name: string): Promise<void>;
}

/** Runs one job on an open store; the same code runs in the agent and in a CLI with no agent. */
export async function runVolumeJob(
  store: VolumeStore,
  input: VolumeJob,
  onProgress: ProgressListener,
  hooks: VolumeJobHooks = {},
): Promise<unknown> {
  const job = parseJob(input);
  switch (job.op) {
    case 'import': {
      const options = { format: job.format, onProgress };
      if (job.as === 'image') return store.importImage(job.name, job.file, options);
      const result = await store.importVolume(job.name, job.file, options);
      await hooks.volumeAdded?.(job.name);
      return result;
    }
    case 'export':
      return store.export(parseSourceRef(job.source), job.file, { format: job.format, onProgress });
    case 'scrub': {
      const reader = job.repairFrom === undefined ? undefined : await openRawReader(job.repairFrom);
      try {
        return await store.scrub(parseSourceRef(job.source), {
          onProgress,
          ...(reader === undefined ? {} : { repairFrom: reader }),
        });
      } finally {
        await reader?.close();
      }
    }
    case 'images':
      return { images: await store.listImages() };
    case 'delete-image':
      await store.deleteImage(job.name);
      return { deleted: job.name };
  }
}

function parseJob(input: unknown) {
  const parsed = volumeJobSchema.safeParse(input);
  if (parsed.success) return parsed.data;
  const problem = parsed.error.issues[0]!;
  throw new ContinuumError(
    'CONTINUUM_ERR_BAD_REQUEST',
    `volume job: ${problem.path.join('.') || 'job'}: ${problem.message}`,
  );
}

export function volumeJobSocketPath(dataDir: string): string {
  return join(dataDir, 'run', 'volume-jobs.sock');
}

/** The agent's side: accepts jobs on the socket and runs them on its store. */
export class VolumeJobServer {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private running = 0;

  constructor(
    private readonly store: VolumeStore,
    private readonly hooks: VolumeJobHooks,
    private readonly logger: Logger,
    private readonly control?: VolumeControlHandler,
  ) {
    this.server = createServer((socket) => this.accept(socket));
  }

  async listen(socketPath: string): Promise<void> {
    mkdirSync(dirname(socketPath), { recursive: true, mode: 0o700 });
    rmSync(socketPath, { force: true });
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(socketPath, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    // Jobs read and write any file the agent can: only the agent's user may ask for them.
    chmodSync(socketPath, 0o600);
  }

  /** Stops taking jobs; clients of jobs still running lose their connection. */
  close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    return closed;
  }

  private accept(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    let buffered = '';
    const lineBytesMax =
      this.control === undefined ? volumeJobLineBytesMax : volumeControlLineBytesMax;
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      const newline = buffered.indexOf('\n');
      if (newline < 0 && buffered.length <= lineBytesMax) return;
      socket.off('data', onData);
      if (newline < 0 || newline > lineBytesMax) {
        reply(socket, failure('CONTINUUM_ERR_BAD_REQUEST', lineTooLong(lineBytesMax)));
        return;
      }
      void this.run(socket, buffered.slice(0, newline));
    };
    socket.on('data', onData);
    socket.on('error', () => undefined);
  }

  private async run(socket: Socket, line: string): Promise<void> {
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch (error) {
      reply(socket, errorAnswer(error));
      return;
    }
    const op = (parsed as { op?: unknown } | null)?.op;
    if (this.control !== undefined && typeof op === 'string' && controlOps.has(op)) {
      await this.runControl(socket, parsed, this.control);
      return;
    }
    if (line.length > volumeJobLineBytesMax) {
      reply(socket, failure('CONTINUUM_ERR_BAD_REQUEST', lineTooLong(volumeJobLineBytesMax)));
      return;
    }
    if (this.running >= volumeJobsMax) {
      reply(
        socket,
        failure(
          'CONTINUUM_ERR_CONFLICT',
          `${volumeJobsMax} volume jobs are running already; try again when one ends`,
        ),
      );
      return;
    }
    this.running++;
    let lastProgressAt = 0;
    const onProgress = (progress: Progress) => {
      const now = Date.now();
      const last = progress.doneBytes === progress.totalBytes;
      if (!last && now - lastProgressAt < 1000 / progressPerSecondMax) return;
      lastProgressAt = now;
      if (!socket.destroyed) socket.write(`${JSON.stringify({ progress })}\n`);
    };
    try {
      const job = parsed;
      this.logger.log('info', 'volume job started', { job });
      const result = await runVolumeJob(this.store, job as VolumeJob, onProgress, this.hooks);
      this.logger.log('info', 'volume job done', { job });
      reply(socket, { ok: true, result });
    } catch (error) {
      const answer = errorAnswer(error);
      this.logger.log('warn', 'volume job failed', {
        line: line.slice(0, 200),
        error: answer.message,
      });
      reply(socket, answer);
    } finally {
      this.running--;
    }
  }

  private async runControl(
    socket: Socket,
    input: unknown,
    handler: VolumeControlHandler,
  ): Promise<void> {
    try {
      const parsed = volumeControlSchema.safeParse(input);
      if (!parsed.success) {
        const problem = parsed.error.issues[0]!;
        throw new ContinuumError(
          'CONTINUUM_ERR_BAD_REQUEST',
          `volume control: ${problem.path.join('.') || 'request'}: ${problem.message}`,
        );
      }
      reply(socket, { ok: true, result: await handler(parsed.data) });
    } catch (error) {
      reply(socket, errorAnswer(error));
    }
  }
}

function lineTooLong(lineBytesMax: number): string {
  return `a job is one line of at most ${lineBytesMax} bytes`;
}

type Failure = { ok: false; code: string; message: string };
type Answer = { ok: true; result: unknown } | Failure;

function failure(code: string, message: string): Failure {
  return { ok: false, code, message };
}

function errorAnswer(error: unknown): Failure {
  if (isContinuumError(error)) return failure(error.code, error.message);
  if (error instanceof SyntaxError)
    return failure('CONTINUUM_ERR_BAD_REQUEST', `the job is not JSON: ${error.message}`);
  return failure('CONTINUUM_ERR_INTERNAL', error instanceof Error ? error.message : String(error));
}

function reply(socket: Socket, answer: Answer): void {
  if (!socket.destroyed) socket.end(`${JSON.stringify(answer)}\n`);
}

/**
 * The CLI's side: runs the job in the agent of `dataDir` if one is running there, else on the
 * store directly (the store's lock refuses if some other process holds it).
 */
export async function submitVolumeJob(
  dataDir: string,
  job: VolumeJob,
  onProgress: ProgressListener,
): Promise<{ result: unknown; via: 'agent' | 'store' }> {
  if (!existsSync(dataDir)) {
    throw new ContinuumError(
      'CONTINUUM_ERR_NOT_FOUND',
      `no node data directory at ${dataDir}: name the node's agent directory (--node or --data-dir)`,
    );
  }
  const socket = await connect(volumeJobSocketPath(dataDir));
  if (socket === null) {
    const store = await VolumeStore.open(join(dataDir, 'volumes'));
    try {
      return { result: await runVolumeJob(store, job, onProgress), via: 'store' };
    } finally {
      await store.close();
    }
  }
  return { result: await exchange(socket, job, onProgress), via: 'agent' };
}

/** One control call to the node's volume server; null when no server listens there. */
export async function callVolumeServer(
  dataDir: string,
  control: VolumeControl,
): Promise<{ result: unknown } | null> {
  const socket = await connect(volumeJobSocketPath(dataDir));
  if (socket === null) return null;
  return { result: await exchange(socket, control, () => undefined) };
}

function connect(path: string): Promise<Socket | null> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    socket.once('connect', () => {
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      // No agent listens there: the job runs on the store here.
      if (error.code === 'ENOENT' || error.code === 'ECONNREFUSED') resolve(null);
      else reject(error);
    });
  });
}

function exchange(
  socket: Socket,
  job: VolumeJob | VolumeControl,
  onProgress: ProgressListener,
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    let settled = false;
    const settle = (action: () => void) => {
      if (settled) return;
      settled = true;
      action();
    };
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      for (let newline = buffered.indexOf('\n'); newline >= 0; newline = buffered.indexOf('\n')) {
        const message = JSON.parse(buffered.slice(0, newline)) as { progress: Progress } | Answer;
        buffered = buffered.slice(newline + 1);
        if ('progress' in message) onProgress(message.progress);
        else if (message.ok) settle(() => resolve(message.result));
        else {
          const code = isErrorCode(message.code) ? message.code : 'CONTINUUM_ERR_INTERNAL';
          settle(() => reject(new ContinuumError(code, message.message)));
        }
      }
    });
    socket.on('error', (error) => settle(() => reject(error)));
    socket.on('close', () =>
      settle(() =>
        reject(
          new ContinuumError(
            'CONTINUUM_ERR_UNAVAILABLE',
            'the agent closed the job without an answer',
          ),
        ),
      ),
    );
    socket.write(`${JSON.stringify(job)}\n`);
  });
}
