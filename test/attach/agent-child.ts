// A stand-in for an agent in its own process, possibly as another user: `attach` attaches a volume,
// writes a file and exits without detaching (as an agent does at a restart); `detach` detaches
// what a handle in the run directory records. Prints one JSON line with what it saw.
// Run as `node --import tsx agent-child.ts '<json>'`.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { silentLogger } from '../../src/core/ports.js';
import {
  attachVolume,
  detachVolume,
  readAttachHandle,
  type AttachMethod,
} from '../../src/storage/attach/index.js';
import { writeDurably } from './harness.js';

export interface ChildRequest {
  op: 'attach' | 'detach';
  socketPath: string;
  exportName: string;
  runDir: string;
  mountPath: string;
  method: AttachMethod | 'auto';
}

const request = JSON.parse(process.argv[2] ?? '{}') as ChildRequest;
if (request.op === 'detach') {
  const handle = readAttachHandle(request.runDir);
  if (handle !== null) await detachVolume(handle, { log: silentLogger });
  process.stdout.write(`${JSON.stringify({ detached: handle !== null })}\n`);
} else {
  const handle = await attachVolume({
    nbd: { socketPath: request.socketPath, exportName: request.exportName },
    mountPath: request.mountPath,
    fileSystem: 'ext4',
    method: request.method,
    runDir: request.runDir,
    log: silentLogger,
  });
  const file = join(request.mountPath, 'from-child.txt');
  const earlier = existsSync(file) ? readFileSync(file, 'utf8') : null;
  writeDurably(file, `written by pid ${process.pid}\n`);
  const rootOwner = statSync(request.mountPath).uid;
  process.stdout.write(`${JSON.stringify({ handle, earlier, rootOwner })}\n`);
}
