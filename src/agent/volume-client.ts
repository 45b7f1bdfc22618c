// The agent's handle on its node's volume server process (src/agent/volume-server.ts): it finds
// the server on <data-dir>/run/volume-jobs.sock, or starts it and waits until it answers, and then
// forwards the controller's volume operations and the driver's attach needs to it. The server
// outlives the agent: an agent restarted after a crash finds the same server (same incarnation),
// so the mounts of running instances stay valid and the instances keep running.
import { ContinuumError } from '../core/errors.js';
import type { Clock, Logger } from '../core/ports.js';
import type { VolumeRequest, VolumeResult, VolumeService } from '../core/volumes.js';
import type { NbdTarget } from '../storage/attach/index.js';
import type { VolumeProvider } from './drivers/volume-driver.js';
import { callVolumeServer, type VolumeControl, volumeJobSocketPath } from './volume-jobs.js';

/** How long a starting volume server may take to answer (opening the store, every volume). */
export const volumeServerStartTimeoutMs = 30_000;
/** How often the agent asks whether the server it started answers yet. */
const startPollMs = 50;

export interface VolumeClientOptions {
  dataDir: string;
  logger: Logger;
  clock: Clock;
  /** Starts the server process; called when none answers (again if it exits before it does). */
  startServer(): { exited(): boolean };
  startTimeoutMs?: number;
}

export class VolumeServerClient implements VolumeService, VolumeProvider {
  private attachedQueue: Promise<void> = Promise.resolve();

  private constructor(
    private readonly options: VolumeClientOptions,
    readonly incarnation: string,
  ) {}

  /** The running server, or a new one started and answering. */
  static async connect(options: VolumeClientOptions): Promise<VolumeServerClient> {
    const found = await hello(options.dataDir);
    if (found !== null) {
      options.logger.log('info', 'volume server already running', { pid: found.pid });
      return new VolumeServerClient(options, found.incarnation);
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
          return new VolumeServerClient(options, answer.incarnation);
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

  async ensure(volume: { name: string; sizeMiB: number }): Promise<NbdTarget> {
    return (await this.call({
      op: 'ensure',
      name: volume.name,
      sizeMiB: volume.sizeMiB,
    })) as NbdTarget;
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

async function hello(dataDir: string): Promise<{ incarnation: string; pid: number } | null> {
  const answer = await callVolumeServer(dataDir, { op: 'hello' });
  return answer === null ? null : (answer.result as { incarnation: string; pid: number });
}
