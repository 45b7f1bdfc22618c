// The demo cluster that `continuum up` applies: one site, two production nodes, one spare, and the
// HTTP key-value service shipped with Continuum, protected with an HTTP health probe, keeping its
// keys on a replicated volume where this machine can attach one.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ClusterSpecInput } from '../core/spec.js';

export const demoNodes = [
  { name: 'node-1', role: 'production' as const },
  { name: 'node-2', role: 'production' as const },
  { name: 'spare-1', role: 'spare' as const },
];

/** The compiled demo service; `npm run build` makes it. */
export function demoServicePath(): string {
  const path = fileURLToPath(new URL('../demo/kv-service.js', import.meta.url));
  if (existsSync(path)) return path;
  const built = fileURLToPath(new URL('../../dist/demo/kv-service.js', import.meta.url));
  if (existsSync(built)) return built;
  throw new Error(`demo service not found at ${path}: run "npm run build" first`);
}

/** The demo's replicated volume: two copies, so a failover loses no acknowledged key. */
export const demoVolume = { name: 'kv-data', sizeMiB: 64, replicas: 2 };

/**
 * `volumeRoot`: where each node mounts the demo's replicated volume (`<volumeRoot>/<node>`: all the
 * demo's nodes share one machine), which is also the service's working directory, so its keys live
 * on the volume. Without it (no attach method on this machine) the keys stay in each node's own
 * directory.
 */
export function demoSpec(options: {
  endpointPort: number;
  servicePath: string;
  volumeRoot?: string;
}): ClusterSpecInput {
  const mountPath =
    options.volumeRoot === undefined ? undefined : join(options.volumeRoot, '{node}');
  return {
    apiVersion: 'continuum/v1',
    sites: [{ name: 'local', description: 'this machine' }],
    nodes: demoNodes.map((n) => ({
      name: n.name,
      site: 'local',
      role: n.role,
      capacity: { cpu: 2, memoryMiB: 2048 },
      labels: { demo: 'true' },
    })),
    workloads: [
      {
        name: 'kv',
        driver: 'process',
        process: {
          command: [process.execPath, options.servicePath],
          stopGraceMs: 2000,
          ...(mountPath === undefined ? {} : { cwd: mountPath }),
        },
        ...(mountPath === undefined ? {} : { volumes: [{ ...demoVolume, mountPath }] }),
        resources: { cpu: 1, memoryMiB: 256 },
        endpoints: [{ name: 'http', port: options.endpointPort, host: '127.0.0.1' }],
        probes: [
          {
            name: 'health',
            type: 'http',
            endpoint: 'http',
            path: '/health',
            expectStatus: 200,
            intervalMs: 500,
            timeoutMs: 1000,
            failureThreshold: 2,
          },
        ],
        availability: {
          mode: 'ha',
          priority: 500,
          restart: { maxRestarts: 3, windowMs: 60_000, backoffInitialMs: 100, backoffMaxMs: 2000 },
        },
      },
    ],
  };
}
