// What the agent core's tests share: a driver that records what it is asked and keeps "running"
// instances in a map, and a host that keeps the agent's state in memory.
import type { AgentHost } from './agent.js';
import type { AgentState } from './agent-state.js';
import type { Driver, ExitInfo, InstanceHandle } from './drivers/driver.js';

export class RecordingDriver implements Driver {
  readonly name = 'recording';
  readonly running = new Map<string, InstanceHandle>();
  started: string[] = [];
  private nextPid = 1000;
  start(request: Parameters<Driver['start']>[0]): Promise<InstanceHandle> {
    const handle: InstanceHandle = {
      driver: this.name,
      workload: request.workload,
      epoch: request.epoch,
      runDir: request.runDir,
      pid: this.nextPid++,
      startedAt: 0,
      attach: {},
    };
    this.running.set(`${request.workload}@${request.epoch}`, handle);
    this.started.push(`${request.workload}@${request.epoch}`);
    return Promise.resolve(handle);
  }
  recover(handle: InstanceHandle): Promise<InstanceHandle | null> {
    return Promise.resolve(this.running.has(`${handle.workload}@${handle.epoch}`) ? handle : null);
  }
  onExit(): () => void {
    return () => undefined;
  }
  stop(handle: InstanceHandle): Promise<ExitInfo> {
    this.running.delete(`${handle.workload}@${handle.epoch}`);
    return Promise.resolve({ code: 0, signal: null, at: 0 });
  }
  destroy(handle: InstanceHandle): Promise<void> {
    this.running.delete(`${handle.workload}@${handle.epoch}`);
    return Promise.resolve();
  }
  inspect(handle: InstanceHandle) {
    return Promise.resolve({
      running: this.running.has(`${handle.workload}@${handle.epoch}`),
      pid: handle.pid,
    });
  }
  stats() {
    return Promise.resolve({ cpuSeconds: 0, rssBytes: 0 });
  }
  /** Absent unless a test sets it: a driver may keep no output. */
  logTail?: Driver['logTail'];
}

export function memoryHost(saved: { state?: AgentState }): AgentHost {
  return {
    prepare: (workload) =>
      Promise.resolve({ runDir: `/run/${workload}`, cwd: `/work/${workload}` }),
    allocatePorts: () => Promise.resolve({}),
    loadState: () => structuredClone(saved.state ?? { highestEpochs: {}, instances: {} }),
    saveState: (state) => (saved.state = structuredClone(state)),
  };
}
