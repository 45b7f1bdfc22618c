// Shared pieces of the NBD integration tests: which real clients are installed, running them with
// a deadline, temporary directories, and an in-process server with a raw-file export, a sparse
// in-memory export and a read-only export, on a unix socket and on TCP.
import { execFile, spawnSync } from 'node:child_process';
import { closeSync, ftruncateSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RawFileDevice } from '../../src/storage/raw-file-device.js';
import { MemoryBlockDevice } from '../../src/storage/nbd/memory-device.js';
import { type NbdAddress, NbdServer, nbdUri } from '../../src/storage/nbd/server.js';
import type { NbdLimits } from '../../src/storage/nbd/limits.js';
import type { BlockDevice } from '../../src/storage/block-device.js';

/** The tools that are missing, for `it(..., { skip })`; undefined when all are there. */
export function missingTools(...tools: string[]): string | undefined {
  const missing = tools.filter(
    (tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0,
  );
  return missing.length === 0 ? undefined : `not installed: ${missing.join(', ')}`;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (killed after `timeoutMs`); never throws for a non-zero exit. */
export function run(
  command: string,
  args: readonly string[],
  timeoutMs = 30_000,
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      args,
      { timeout: timeoutMs, maxBuffer: 64 << 20, killSignal: 'SIGKILL' },
      (error, stdout, stderr) => {
        if (error !== null && typeof error.code !== 'number') {
          reject(new Error(`${command} ${args.join(' ')}: ${error.message}\n${stderr}`));
          return;
        }
        resolve({ code: error === null ? 0 : (error.code as number), stdout, stderr });
      },
    );
  });
}

/** Like run(), but a non-zero exit is an error that shows the command's output. */
export async function runOk(
  command: string,
  args: readonly string[],
  timeoutMs = 30_000,
): Promise<string> {
  const result = await run(command, args, timeoutMs);
  if (result.code !== 0) {
    throw new Error(
      `${command} ${args.join(' ')} exited ${result.code}\n${result.stdout}\n${result.stderr}`,
    );
  }
  return result.stdout;
}

export function tempDir(prefix: string): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** A file of `sizeBytes` that reads as zeroes and takes no space until written. */
export function createSparseFile(path: string, sizeBytes: number): void {
  const fd = openSync(path, 'w');
  ftruncateSync(fd, sizeBytes);
  closeSync(fd);
}

export interface TestServer {
  readonly server: NbdServer;
  readonly unix: NbdAddress;
  readonly tcp: NbdAddress;
  readonly devices: Record<string, BlockDevice>;
  uri(exportName: string, transport: 'unix' | 'tcp'): string;
  close(): Promise<void>;
}

export const RAW_EXPORT_BYTES = 64 << 20;

/**
 * A server with exports "raw" (RawFileDevice over a 64 MiB file in `dir`), "sparse" (in memory,
 * 64 MiB, starts empty) and "frozen" (the raw file again, exported read-only).
 */
export async function startTestServer(
  dir: string,
  limits: Partial<NbdLimits> = {},
): Promise<TestServer> {
  const path = join(dir, 'raw.img');
  createSparseFile(path, RAW_EXPORT_BYTES);
  const raw = RawFileDevice.open(path);
  const devices: Record<string, BlockDevice> = {
    raw,
    sparse: new MemoryBlockDevice({ sizeBytes: RAW_EXPORT_BYTES, blockSizeBytes: 65536 }),
  };
  const server = new NbdServer({
    lookupExport: (name) => {
      if (name === 'frozen') return { device: raw, readOnly: true, description: 'read-only view' };
      const device = devices[name];
      return device === undefined ? undefined : { device, description: `${name} test export` };
    },
    listExports: () => ['raw', 'sparse', 'frozen'].map((name) => ({ name })),
    limits,
  });
  const unix = await server.listen({ socketPath: join(dir, 'nbd.sock') });
  const tcp = await server.listen({ host: '127.0.0.1', port: 0 });
  return {
    server,
    unix,
    tcp,
    devices,
    uri: (name, transport) => nbdUri(transport === 'unix' ? unix : tcp, name),
    async close() {
      await server.close();
      await Promise.all(Object.values(devices).map((device) => device.close()));
    },
  };
}
