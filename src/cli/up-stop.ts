// How `continuum up` ends on Ctrl-C (or SIGTERM) without leaving anything mounted: the demo
// service is deleted so that every live agent stops it and detaches its volume (sync, unmount,
// loop device, nbdfuse), then the daemons go, then any attachment a killed node left behind (its
// agent never came back to detach) is undone from the handle it saved.
import type { ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { deleteWorkload } from '../controller/actions.js';
import type { Controller } from '../controller/controller.js';
import { listInstances, listNodes } from '../controller/queries.js';
import type { Logger } from '../core/ports.js';
import { detachVolume, readAttachHandle } from '../storage/attach/index.js';

/** How long the live agents get to stop the service and detach its volume. */
export const demoStopTimeoutMs = 20_000;

export interface DemoParts {
  controller: Controller;
  children: readonly { child: ChildProcess }[];
  dataDir: string;
  nodes: readonly { name: string }[];
  logger: Logger;
}

export async function stopDemo(parts: DemoParts): Promise<void> {
  await deleteWorkload(parts.controller, 'kv', 'continuum-up').catch(() => undefined);
  const deadline = Date.now() + demoStopTimeoutMs;
  while (Date.now() < deadline && (await stillRunning(parts.controller))) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  for (const { child } of parts.children) {
    if (child.pid === undefined) continue;
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  for (const node of parts.nodes)
    await detachLeftovers(join(parts.dataDir, 'nodes', node.name), parts.logger);
}

/** An instance of the service still runs on a node whose agent is connected (it will detach). */
async function stillRunning(controller: Controller): Promise<boolean> {
  const connected = new Set(
    (await listNodes(controller)).filter((n) => n.connected).map((n) => n.name),
  );
  return (await listInstances(controller)).some(
    (i) => i.workload === 'kv' && i.state !== 'stopped' && connected.has(i.node),
  );
}

async function detachLeftovers(nodeDir: string, logger: Logger): Promise<void> {
  const root = join(nodeDir, 'run', 'attach');
  for (const workload of entries(root)) {
    for (const volume of entries(join(root, workload))) {
      const handle = readAttachHandle(join(root, workload, volume));
      if (handle === null) continue;
      await detachVolume(handle, { log: logger }).catch((error: unknown) =>
        logger.log('warn', 'could not detach a volume left by a killed node', {
          mountPath: handle.mountPath,
          error: String(error),
        }),
      );
    }
  }
}

function entries(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
