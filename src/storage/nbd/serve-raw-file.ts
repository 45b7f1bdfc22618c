// Serves one raw file over NBD, for benchmarks and tests that want the server in its own process:
//   node dist/storage/nbd/serve-raw-file.js --file disk.raw --name disk --socket /tmp/nbd.sock
// (--port N [--host H] for TCP; both may be given; --read-only, --description, --io auto|sync|
// threadpool as in RawFileDevice; --loop-poll-us as in platform/loop-poll.ts, default 50, 0 for
// none). Prints one JSON line {"listening": [...]} on stdout when ready, drains on SIGTERM or
// SIGINT, and exits 0 once the file is closed.
import { parseArgs } from 'node:util';
import { streamLogger } from '../../platform/logger.js';
import {
  LoopPoll,
  loopPollWindowUsDefault,
  parseLoopPollWindowUs,
} from '../../platform/loop-poll.js';
import { RawFileDevice } from '../raw-file-device.js';
import type { NbdLimits } from './limits.js';
import { type NbdAddress, NbdServer } from './server.js';

const { values } = parseArgs({
  options: {
    file: { type: 'string' },
    name: { type: 'string', default: '' },
    description: { type: 'string' },
    socket: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    'read-only': { type: 'boolean', default: false },
    io: { type: 'string', default: 'auto' },
    'handshake-timeout-ms': { type: 'string' },
    'loop-poll-us': { type: 'string', default: String(loopPollWindowUsDefault) },
  },
});

if (values.file === undefined) throw new RangeError('--file: expected the path of a raw file');
if (values.socket === undefined && values.port === undefined) {
  throw new RangeError('expected --socket PATH or --port N (or both)');
}
if (values.io !== 'auto' && values.io !== 'sync' && values.io !== 'threadpool') {
  throw new RangeError(`--io: expected auto, sync or threadpool, got ${values.io}`);
}
const limits: Partial<NbdLimits> = {};
if (values['handshake-timeout-ms'] !== undefined) {
  Object.assign(limits, { handshakeTimeoutMs: Number(values['handshake-timeout-ms']) });
}

const loopPoll = new LoopPoll({
  windowUs: parseLoopPollWindowUs(values['loop-poll-us'], '--loop-poll-us'),
});

const device = RawFileDevice.open(values.file, { readOnly: values['read-only'], io: values.io });
const exportName = values.name;
const server = new NbdServer({
  lookupExport: (name) =>
    name === exportName ? { device, description: values.description } : undefined,
  listExports: () => [{ name: exportName, description: values.description }],
  limits,
  loopPoll,
  logger: streamLogger({ name: 'nbd' }),
});

const listening: NbdAddress[] = [];
if (values.socket !== undefined) listening.push(await server.listen({ socketPath: values.socket }));
if (values.port !== undefined) {
  listening.push(await server.listen({ host: values.host, port: Number(values.port) }));
}
process.stdout.write(`${JSON.stringify({ listening, pid: process.pid })}\n`);

let stopping = false;
const stop = (): void => {
  if (stopping) return;
  stopping = true;
  void server
    .close()
    .then(() => device.close())
    .then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
