// Unmounting with a bounded retry while the file system is busy. A workload that has just been
// stopped may still have a child with a file open or its cwd inside, and these clear by
// themselves; a lazy unmount would hide the problem and leave the device held, so it is not used.
import { setTimeout as delay } from 'node:timers/promises';
import { ContinuumError } from '../../core/errors.js';
import { saysBusy, syncFileSystemCommand, type CommandLine } from './command-lines.js';
import { commandFailed } from './command-runner.js';
import { tool, type AttachContext } from './context.js';

/**
 * Runs the unmount command until it succeeds or `isMounted()` turns false. A busy file system is
 * retried every unmountRetryIntervalMs until unmountBusyTimeoutMs, then reported as
 * CONTINUUM_ERR_ATTACH_BUSY (retryable: the caller may stop what holds it and detach again).
 */
export async function unmountWithRetry(
  context: AttachContext,
  options: { command: CommandLine; mountPath: string; isMounted: () => boolean },
): Promise<void> {
  const { limits } = context;
  const deadline = Date.now() + limits.unmountBusyTimeoutMs;
  let attempts = 0;
  for (;;) {
    attempts += 1;
    const outcome = await context.runner.run(options.command.file, options.command.args, {
      timeoutMs: limits.commandTimeoutMs,
      outputBytesMax: limits.outputBytesMax,
    });
    if (outcome.exitCode === 0 || !options.isMounted()) return;
    if (!saysBusy(outcome.stderr)) {
      throw commandFailed('unmount', options.command.file, options.command.args, outcome);
    }
    if (Date.now() >= deadline) {
      throw new ContinuumError(
        'CONTINUUM_ERR_ATTACH_BUSY',
        `${options.mountPath} is still in use after ${attempts} unmount attempts over ` +
          `${limits.unmountBusyTimeoutMs} ms: ${outcome.stderr.trim()}`,
        { details: { mountPath: options.mountPath, attempts } },
      );
    }
    await delay(limits.unmountRetryIntervalMs);
  }
}

/**
 * Flushes the file system before unmounting. A failure is logged, not thrown: when the NBD
 * server is gone the flush cannot succeed, and the unmount must still release what it can.
 */
export async function syncBeforeUnmount(context: AttachContext, mountPath: string): Promise<void> {
  const command = syncFileSystemCommand(tool(context, 'sync'), mountPath);
  try {
    const outcome = await context.runner.run(command.file, command.args, {
      timeoutMs: context.limits.commandTimeoutMs,
      outputBytesMax: context.limits.outputBytesMax,
    });
    if (outcome.exitCode !== 0) {
      context.log.log('warn', 'sync before unmount failed', {
        mountPath,
        stderr: outcome.stderr.trim(),
      });
    }
  } catch (error) {
    context.log.log('warn', 'sync before unmount failed', { mountPath, error: String(error) });
  }
}
