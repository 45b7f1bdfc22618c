// Runs the external tools of volume attach (losetup, mount, mkfs.ext4, blkid...), each with a
// timeout and its output captured, behind a small port so that the decisions around them (retry
// on busy, format or not) can be tested with a scripted runner.
import { spawn } from 'node:child_process';
import { basename } from 'node:path';
import { ContinuumError } from '../../core/errors.js';

export interface CommandOutcome {
  /** Null when the command was ended by a signal. */
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  timeoutMs: number;
  /** Bytes kept of stdout and of stderr, each; the rest is counted, not kept. */
  outputBytesMax: number;
}

export interface CommandRunner {
  /**
   * Resolves with the outcome whatever the exit status; rejects with
   * CONTINUUM_ERR_ATTACH_TOOL_MISSING when the file cannot be run, and with
   * CONTINUUM_ERR_ATTACH_TIMEOUT when it outlives `timeoutMs` (it is then sent SIGKILL).
   */
  run(file: string, args: readonly string[], options: RunOptions): Promise<CommandOutcome>;
}

/** Collects at most `bytesMax` bytes of a stream and notes how much more there was. */
class OutputTail {
  private readonly chunks: Buffer[] = [];
  private keptBytes = 0;
  private droppedBytes = 0;
  constructor(private readonly bytesMax: number) {}

  add(chunk: Buffer): void {
    const kept = chunk.subarray(0, Math.max(0, this.bytesMax - this.keptBytes));
    if (kept.length > 0) this.chunks.push(kept);
    this.keptBytes += kept.length;
    this.droppedBytes += chunk.length - kept.length;
  }

  text(): string {
    const kept = Buffer.concat(this.chunks).toString('utf8');
    return this.droppedBytes === 0 ? kept : `${kept}... (${this.droppedBytes} more bytes)`;
  }
}

/** The one place where attach starts a short-lived process. */
export const realCommandRunner: CommandRunner = {
  run(file, args, options) {
    return new Promise((resolve, reject) => {
      const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      const stdout = new OutputTail(options.outputBytesMax);
      const stderr = new OutputTail(options.outputBytesMax);
      child.stdout.on('data', (chunk: Buffer) => stdout.add(chunk));
      child.stderr.on('data', (chunk: Buffer) => stderr.add(chunk));
      let settled = false;
      // Settles at the deadline without waiting for the exit: a process stuck in the kernel on a
      // dead NBD server (state D) may never leave, and the caller must not hang with it.
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        child.kill('SIGKILL');
        reject(
          new ContinuumError(
            'CONTINUUM_ERR_ATTACH_TIMEOUT',
            `${commandText(file, args)} did not finish within ${options.timeoutMs} ms` +
              describeStderr(stderr.text()),
            { details: { command: file, args: [...args], timeoutMs: options.timeoutMs } },
          ),
        );
      }, options.timeoutMs);
      child.once('error', (error: NodeJS.ErrnoException) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(
          new ContinuumError(
            'CONTINUUM_ERR_ATTACH_TOOL_MISSING',
            `cannot run ${file}: ${error.code ?? error.message}`,
            { details: { command: file }, cause: error },
          ),
        );
      });
      child.once('close', (exitCode, signal) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({ exitCode, signal, stdout: stdout.text(), stderr: stderr.text() });
      });
    });
  },
};

export function commandText(file: string, args: readonly string[]): string {
  return [basename(file), ...args].join(' ');
}

function describeStderr(stderr: string): string {
  const trimmed = stderr.trim();
  return trimmed === '' ? '' : `: ${trimmed}`;
}

/** The error for a command that ran and failed, with what it said on stderr. */
export function commandFailed(
  step: string,
  file: string,
  args: readonly string[],
  outcome: CommandOutcome,
): ContinuumError {
  const status =
    outcome.exitCode === null ? `was ended by ${outcome.signal}` : `exited ${outcome.exitCode}`;
  return new ContinuumError(
    'CONTINUUM_ERR_ATTACH_COMMAND_FAILED',
    `${step}: ${commandText(file, args)} ${status}${describeStderr(outcome.stderr)}`,
    {
      details: {
        step,
        command: file,
        args: [...args],
        exitCode: outcome.exitCode,
        signal: outcome.signal,
        stderr: outcome.stderr,
      },
    },
  );
}

/** Runs a command that must succeed (exit 0); returns its stdout. */
export async function runChecked(
  runner: CommandRunner,
  step: string,
  command: { file: string; args: readonly string[] },
  options: RunOptions,
): Promise<string> {
  const outcome = await runner.run(command.file, command.args, options);
  if (outcome.exitCode !== 0) throw commandFailed(step, command.file, command.args, outcome);
  return outcome.stdout;
}
