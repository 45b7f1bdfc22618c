// Volumes around an instance's life: a driver that wraps another (the process driver) and, before
// the instance starts, makes sure each volume of its spec exists on this node (created on first
// use), attaches it through the node's NBD server and mounts it at the spec's path (formatted ext4
// on first use); after the instance stops, it detaches them. The order is the safety: a volume is
// mounted before the process sees it and unmounted only after the process is gone.
//
// The NBD server is the node's volume server, a process of its own that outlives agent restarts:
// an agent restarted after a crash finds the instances' mounts whole and keeps them. Only when the
// volume server itself restarted (a new incarnation; its connections under the mounts are gone)
// is an instance found alive stopped, detached and reported ended, so the controller starts it
// again on this node with fresh mounts. Flushed data is safe throughout (docs/volumes.md).
import { join } from 'node:path';
import type { Logger } from '../../core/ports.js';
import { pathOnNode, type WorkloadSpec } from '../../core/spec.js';
import {
  attachVolume,
  detachVolume,
  readAttachHandle,
  recoverAttachment,
  type AttachDetection,
  type NbdTarget,
} from '../../storage/attach/index.js';
import type { Driver, ExitInfo, InstanceHandle, StartRequest } from './driver.js';

type VolumeMount = WorkloadSpec['volumes'][number];

/** What this node's volume server offers the driver. */
export interface VolumeProvider {
  /**
   * The volume, created at its size on first use (grown if the spec asks for more). A replicated
   * one is served once this node is its primary at the instance's `epoch`.
   */
  ensure(volume: VolumeMount, options: { epoch: number }): Promise<NbdTarget>;
  /** Whether an instance has it mounted now (shown by `continuum volume list`). */
  setAttached(name: string, attached: boolean): void;
  /** Changes whenever the server restarts: mounts made through another incarnation are dead. */
  readonly incarnation: string;
}

export interface VolumeDriverOptions {
  provider: VolumeProvider;
  /** Attachments keep their handles under <attachDir>/<workload>/<volume>. */
  attachDir: string;
  /** The agent's detection at start (attach refuses with its reasons when no method works). */
  detection: AttachDetection;
  logger: Logger;
  /** This node's name, for `{node}` in mount paths (core/spec.ts pathOnNode). */
  node?: string;
}

export class VolumeDriver implements Driver {
  readonly name: string;

  constructor(
    private readonly inner: Driver,
    private readonly options: VolumeDriverOptions,
  ) {
    this.name = inner.name;
    if (inner.logTail !== undefined) this.logTail = inner.logTail.bind(inner);
  }

  async start(request: StartRequest): Promise<InstanceHandle> {
    const attached: string[] = [];
    try {
      for (const volume of request.spec.volumes) {
        await this.attach(request.workload, volume, request.epoch);
        attached.push(volume.name);
      }
      const handle = await this.inner.start(request);
      if (attached.length === 0) return handle;
      const volumes = attached.join(',');
      const incarnation = this.options.provider.incarnation;
      return { ...handle, attach: { ...handle.attach, volumes, volumeServer: incarnation } };
    } catch (error) {
      await this.detachAll(request.workload, attached);
      throw error;
    }
  }

  async recover(handle: InstanceHandle): Promise<InstanceHandle | null> {
    const recovered = await this.inner.recover(handle);
    const names = volumesOf(handle);
    if (recovered === null) {
      await this.detachAll(handle.workload, names);
      return null;
    }
    if (names.length === 0) return recovered;
    if (handle.attach.volumeServer !== this.options.provider.incarnation) {
      return this.stopUnmounted(recovered, names, 'the volume server restarted with the agent');
    }
    for (const name of names) {
      const found = await recoverAttachment(this.runDir(handle.workload, name), this.stepOptions());
      if (found === null) return this.stopUnmounted(recovered, names, `volume ${name} is gone`);
      this.options.provider.setAttached(name, true);
    }
    return recovered;
  }

  onExit(handle: InstanceHandle, listener: (exit: ExitInfo) => void): () => void {
    return this.inner.onExit(handle, listener);
  }

  async stop(handle: InstanceHandle, options: { graceMs: number }): Promise<ExitInfo> {
    const exit = await this.inner.stop(handle, options);
    await this.detachAll(handle.workload, volumesOf(handle));
    return exit;
  }

  async destroy(handle: InstanceHandle): Promise<void> {
    await this.inner.destroy(handle);
    await this.detachAll(handle.workload, volumesOf(handle));
  }

  inspect(handle: InstanceHandle) {
    return this.inner.inspect(handle);
  }

  stats(handle: InstanceHandle) {
    return this.inner.stats(handle);
  }

  /** The inner driver's output, where it keeps any (assigned in the constructor). */
  readonly logTail?: Driver['logTail'];

  /** The process lives but its file system is gone: it must not run on without its data. */
  private async stopUnmounted(handle: InstanceHandle, names: string[], why: string): Promise<null> {
    this.options.logger.log('warn', 'stopping an instance whose volumes are no longer served', {
      workload: handle.workload,
      volumes: names,
      why,
    });
    await this.inner.destroy(handle);
    await this.detachAll(handle.workload, names);
    return null;
  }

  private runDir(workload: string, volume: string): string {
    return join(this.options.attachDir, workload, volume);
  }

  private stepOptions() {
    return { log: this.options.logger };
  }

  /** Mounts one volume; an attachment left whole by a crashed incarnation is taken over as is. */
  private async attach(workload: string, volume: VolumeMount, epoch: number): Promise<void> {
    const runDir = this.runDir(workload, volume.name);
    const existing = await recoverAttachment(runDir, this.stepOptions());
    const mountPath = pathOnNode(volume.mountPath, this.options.node ?? '');
    if (existing !== null && existing.mountPath === mountPath) {
      this.options.provider.setAttached(volume.name, true);
      return;
    }
    if (existing !== null) await detachVolume(existing, this.stepOptions());
    const nbd = await this.options.provider.ensure(volume, { epoch });
    await attachVolume({
      nbd,
      mountPath,
      fileSystem: volume.fileSystem,
      runDir,
      log: this.options.logger,
      detection: this.options.detection,
    });
    this.options.provider.setAttached(volume.name, true);
  }

  private async detachAll(workload: string, names: readonly string[]): Promise<void> {
    for (const name of [...names].reverse()) {
      const handle = readAttachHandle(this.runDir(workload, name));
      if (handle !== null) await detachVolume(handle, this.stepOptions());
      this.options.provider.setAttached(name, false);
    }
  }
}

function volumesOf(handle: InstanceHandle): string[] {
  const names = handle.attach.volumes;
  return typeof names === 'string' && names !== '' ? names.split(',') : [];
}
