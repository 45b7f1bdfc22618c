// Small TCP peers for tests and benchmarks on test/hosts: a server that answers every connection
// with a name (its host's, so that a client can tell who answered an address that moves, a VIP)
// and a client that asks once. Both are `node -e` scripts run inside a host's namespace, so no
// tool beyond node is needed.
import type { ChildProcess } from 'node:child_process';
import type { Host } from './host.js';

const nameServerScript = `
const [port, name] = process.argv.slice(1);
require('node:net')
  .createServer((socket) => { socket.on('error', () => {}); socket.end(name); })
  .listen(Number(port), '0.0.0.0', () => process.stdout.write('listening\\n'));
`;

const askScript = `
const [address, port, timeoutMs] = process.argv.slice(1);
let answer = '';
const socket = require('node:net').connect(Number(port), address);
socket.setTimeout(Number(timeoutMs), () => socket.destroy());
socket.on('data', (chunk) => { answer += chunk; });
socket.on('end', () => process.stdout.write(answer));
socket.on('error', () => {});
`;

const listeningTimeoutMs = 10_000;

/** Starts a server on 0.0.0.0:`port` in `host` that answers `name` (default the host's name). */
export function startNameServer(
  host: Host,
  port: number,
  options: { name?: string } = {},
): Promise<ChildProcess> {
  const child = host.spawn([
    process.execPath,
    '-e',
    nameServerScript,
    String(port),
    options.name ?? host.name,
  ]);
  return new Promise((resolve, reject) => {
    let stderr = '';
    const fail = (error: Error) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(error);
    };
    const timer = setTimeout(
      () => fail(new Error(`name server on ${host.name}:${port} did not listen in time`)),
      listeningTimeoutMs,
    );
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout?.once('data', () => {
      clearTimeout(timer);
      child.removeListener('exit', onExit);
      resolve(child);
    });
    const onExit = (code: number | null) =>
      fail(new Error(`name server on ${host.name}:${port} exited ${code}: ${stderr.trim()}`));
    child.once('exit', onExit);
  });
}

/**
 * Connects from `from` to address:port and reads the answer; undefined when nothing answers
 * within `timeoutMs` (refused, dropped, or a server that does not answer).
 */
export async function askName(
  from: Host,
  address: string,
  port: number,
  options: { timeoutMs?: number } = {},
): Promise<string | undefined> {
  const timeoutMs = options.timeoutMs ?? 500;
  const answer = await from.exec(
    [process.execPath, '-e', askScript, address, String(port), String(timeoutMs)],
    { timeoutMs: timeoutMs + 10_000 },
  );
  return answer === '' ? undefined : answer;
}
