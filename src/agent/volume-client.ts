// The agent's handle on its node's volume server process (src/agent/volume-server.ts): it finds
// the server on <data-dir>/run/volume-jobs.sock, or starts it and waits until it answers, and then
// forwards the controller's volume operations and the driver's attach needs to it. The server
// outlives the agent: an agent restarted after a crash finds the same server (same incarnation),
// so the mounts of running instances stay valid and the instances keep running.
//
// For replicated volumes it is the agent's VolumeDutyPort: each duty set goes to the server in
// order (a set that fails is logged, and sent again once the server answers, or replaced by the
// next set), and a loop long-polls the primaries' reports and hands each to the agent. When the
// server comes back as a new incarnation (respawned), the last duty set goes to it again.
import { z } from 'zod';
import { ContinuumError } from '../core/errors.js';
import type { Clock, Logger, TimerHandle } from '../core/ports.js';
import {
  primaryReportSchema,
  type PrimaryReportMessage,
  type VolumeDutyMessage,
} from '../core/protocol.js';
import type { VolumeRequest, VolumeResult, VolumeService } from '../core/volumes.js';
import type { NbdTarget } from '../storage/attach/index.js';
import type { NbdCounters } from '../storage/nbd/counters.js';
import type { VolumeDuty, VolumeDutyPort } from '../storage/replication/types.js';
import type { VolumeProvider } from './drivers/volume-driver.js';
import { callVolumeServer, type VolumeControl, volumeJobSocketPath } from './volume-jobs.js';

/** How long a starting volume server may take to answer (opening the store, every volume). */
export const volumeServerStartTimeoutMs = 30_000;
/** How often the agent asks whether the server it started answers yet. */
const startPollMs = 50;
/** Waits between `reports` calls after one failed (the server is down or restarting). */
const reportsRetryDelayMsMin = 200;
const reportsRetryDelayMsMax = 5000;

const reportsAnswerSchema = z.object({
  incarnation: z.string(),
  reports: z.array(primaryReportSchema),
});
const helloAnswerSchema = z.object({
  incarnation: z.string(),
  pid: z.number().int(),
  replicationAddress: z.string().optional(),
});
type HelloAnswer = z.infer<typeof helloAnswerSchema>;

export interface VolumeClientOptions {
  dataDir: string;
  logger: Logger;
  clock: Clock;
  /** Starts the server process; called when none answers (again if it exits before it does). */
  startServer(): { exited(): boolean };
  startTimeoutMs?: number;
}

export class VolumeServerClient implements VolumeService, VolumeProvider, VolumeDutyPort {
  private attachedQueue: Promise<void> = Promise.resolve();
  private dutiesQueue: Promise<void> = Promise.resolve();
  /** The newest duty set, and whether sending it failed (it goes again once the server answers). */
  private duties: readonly VolumeDuty[] | undefined;
  private dutiesFailed = false;
  /** The incarnation the reports loop last heard: a change means a respawned server. */
  private serverIncarnation: string;
  private reportsLoop: Promise<void> | undefined;
  private retryTimer: TimerHandle | undefined;
  private wakeRetry: (() => void) | undefined;
  private closed = false;
  /** Where the server takes replication links, "host:port" (from its hello). */
  replicationAddress: string | undefined;

  private constructor(
    private readonly options: VolumeClientOptions,
    hello: HelloAnswer,
  ) {
    this.incarnation = hello.incarnation;
    this.serverIncarnation = hello.incarnation;
    this.replicationAddress = hello.replicationAddress;
  }

  /** The server's incarnation when the agent found it: mounts made through it are valid. */
  readonly incarnation: string;

  /** The running server, or a new one started and answering. */
  static async connect(options: VolumeClientOptions): Promise<VolumeServerClient> {
    const found = await hello(options.dataDir);
    if (found !== null) {
      options.logger.log('info', 'volume server already running', { pid: found.pid });
      return new VolumeServerClient(options, found);
    }
    let started = options.startServer();
    const timeoutMs = options.startTimeoutMs ?? volumeServerStartTimeoutMs;
    const deadline = options.clock.now() + timeoutMs;
    let lastError: unknown;
    while (options.clock.now() < deadline) {
      await new Promise<void>((resolve) => options.clock.setTimeout(resolve, startPollMs));
      try {
        const answer = await hello(options.dataDir);
        if (answer !== null) {
          options.logger.log('info', 'volume server started', { pid: answer.pid });
          return new VolumeServerClient(options, answer);
        }
      } catch (error) {
        lastError = error;
      }
      // It gave up (say, the store was still locked by a server being killed): start another.
      if (started.exited()) started = options.startServer();
    }
    throw new ContinuumError(
      'CONTINUUM_ERR_UNAVAILABLE',
      `the volume server did not answer on ${volumeJobSocketPath(options.dataDir)} within ` +
        `${timeoutMs} ms (see volume-server.log in the data directory)` +
        (lastError instanceof Error ? `: ${lastError.message}` : ''),
    );
  }

  async execute(request: VolumeRequest): Promise<VolumeResult> {
    return (await this.call({ op: 'volume', request })) as VolumeResult;
  }

  async ensure(
    volume: { name: string; sizeMiB: number; replicas?: number },
    options: { epoch?: number } = {},
  ): Promise<NbdTarget> {
    return (await this.call({
      op: 'ensure',
      name: volume.name,
      sizeMiB: volume.sizeMiB,
      ...(volume.replicas === undefined ? {} : { replicas: volume.replicas }),
      ...(options.epoch === undefined ? {} : { epoch: options.epoch }),
    })) as NbdTarget;
  }

  /** The node's duty set, sent in the background and in order; only the newest one matters. */
  setDuties(duties: readonly VolumeDuty[]): void {
    this.duties = duties;
    this.dutiesFailed = false;
    this.dutiesQueue = this.dutiesQueue.then(() => this.sendDuties(duties));
  }

  /** Asks the server to self-fence a primary; a server that cannot be reached is logged. */
  selfFence(volume: string, epoch: number, reason: string): void {
    this.call({ op: 'self-fence', volume, epoch, reason }).catch((error: unknown) =>
      this.options.logger.log('error', 'could not tell the volume server to self-fence', {
        volume,
        epoch,
        error: error instanceof Error ? error.message : String(error),
      }),
    );
  }

  /**
   * Starts the loop that long-polls the primaries' reports and hands each to `listener` (the
   * agent's volumeReport). Runs until close(); a server that does not answer is asked again.
   */
  watchReports(listener: (report: PrimaryReportMessage) => void): void {
    if (this.reportsLoop !== undefined || this.closed) return;
    this.reportsLoop = this.pollReports(listener);
  }

  /** Stops the reports loop (after the call in flight, at most a long poll) and the resends. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer !== undefined) this.options.clock.clearTimeout(this.retryTimer);
    this.wakeRetry?.();
    await Promise.all([this.reportsLoop, this.dutiesQueue, this.attachedQueue]);
  }

  private async sendDuties(duties: readonly VolumeDuty[]): Promise<void> {
    // A newer set is queued behind this one: it says everything this one would.
    if (duties !== this.duties || this.closed) return;
    try {
      // Only serialized: the readonly VolumeDuty and the parsed message are the same shape.
      await this.call({ op: 'set-duties', duties: duties as VolumeDutyMessage[] });
    } catch (error) {
      if (duties === this.duties) this.dutiesFailed = true;
      this.options.logger.log('warn', 'could not give the volume server its duties', {
        duties: duties.length,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }

  private async pollReports(listener: (report: PrimaryReportMessage) => void): Promise<void> {
    let delayMs = reportsRetryDelayMsMin;
    let failing = false;
    while (!this.closed) {
      let answer: z.infer<typeof reportsAnswerSchema>;
      try {
        answer = reportsAnswerSchema.parse(await this.call({ op: 'reports' }));
      } catch (error) {
        if (!failing) {
          this.options.logger.log('warn', 'cannot fetch the volume server reports; retrying', {
            error: error instanceof Error ? error.message : String(error),
          });
        }
        failing = true;
        await this.sleep(delayMs);
        delayMs = Math.min(delayMs * 2, reportsRetryDelayMsMax);
        continue;
      }
      if (failing) this.options.logger.log('info', 'volume server reports flow again');
      failing = false;
      delayMs = reportsRetryDelayMsMin;
      this.resendDutiesIfNeeded(answer.incarnation);
      for (const report of answer.reports) {
        try {
          listener(report);
        } catch (error) {
          this.options.logger.log('error', 'handling a volume report failed', {
            report,
            error: error instanceof Error ? error.stack : String(error),
          });
        }
      }
    }
  }

  /** A respawned server knows no duties, and a set that failed was never taken: send it again. */
  private resendDutiesIfNeeded(incarnation: string): void {
    const respawned = incarnation !== this.serverIncarnation;
    this.serverIncarnation = incarnation;
    if (respawned) {
      this.options.logger.log('warn', 'the volume server restarted', { incarnation });
      void hello(this.options.dataDir).then(
        (answer) => (this.replicationAddress = answer?.replicationAddress),
        () => undefined,
      );
    }
    if (this.duties !== undefined && (respawned || this.dutiesFailed)) this.setDuties(this.duties);
  }

  private sleep(delayMs: number): Promise<void> {
    return new Promise((resolve) => {
      this.wakeRetry = () => {
        this.wakeRetry = undefined;
        this.retryTimer = undefined;
        resolve();
      };
      this.retryTimer = this.options.clock.setTimeout(() => this.wakeRetry?.(), delayMs);
    });
  }

  /** In order, in the background: only `volume list` shows it. */
  setAttached(name: string, attached: boolean): void {
    this.attachedQueue = this.attachedQueue
      .then(() => this.call({ op: 'set-attached', name, attached }))
      .then(
        () => undefined,
        (error: unknown) =>
          this.options.logger.log('warn', 'could not tell the volume server about a mount', {
            volume: name,
            attached,
            error: error instanceof Error ? error.message : String(error),
          }),
      );
  }

  /**
   * What NBD clients did through this node's volume server since it started (the agent's metrics),
   * or undefined while no server answers. Read from its hello answer, which carries them.
   */
  async nbdCounters(): Promise<NbdCounters | undefined> {
    const answer = await callVolumeServer(this.options.dataDir, { op: 'hello' });
    const nbd = (answer?.result as { nbd?: NbdCounters } | undefined)?.nbd;
    return nbd !== undefined && typeof nbd === 'object' ? nbd : undefined;
  }

  private async call(control: VolumeControl): Promise<unknown> {
    const answer = await callVolumeServer(this.options.dataDir, control);
    if (answer === null) {
      throw new ContinuumError(
        'CONTINUUM_ERR_UNAVAILABLE',
        `this node's volume server is not running (nothing answers on ` +
          `${volumeJobSocketPath(this.options.dataDir)}); restart the agent to start it`,
      );
    }
    return answer.result;
  }
}

async function hello(dataDir: string): Promise<HelloAnswer | null> {
  const answer = await callVolumeServer(dataDir, { op: 'hello' });
  return answer === null ? null : helloAnswerSchema.parse(answer.result);
}
