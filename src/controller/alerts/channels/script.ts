// The script channel: runs a command (no shell) with the notification as JSON on standard input.
// Exit code 0 is delivered; any other code, or a timeout, is a failed attempt. On timeout the
// whole process group is killed, so a script's own children do not outlive it.
import { spawn } from 'node:child_process';
import type { AlertChannelSpec } from '../../../core/alerting-spec.js';
import type { Notification } from '../model.js';
import { abortError, DeliveryError, type AlertChannel, type SendOptions } from './channel.js';

type ScriptSpec = Extract<AlertChannelSpec, { type: 'script' }>;

/** Standard error kept for the failure message, at most. */
const stderrBytesMax = 1024;

export function scriptChannel(spec: ScriptSpec): AlertChannel {
  return {
    name: spec.name,
    type: 'script',
    send(notification: Notification, options: SendOptions): Promise<void> {
      return new Promise((resolve, reject) => {
        const [command, ...args] = spec.command as [string, ...string[]];
        const child = spawn(command, args, { stdio: ['pipe', 'ignore', 'pipe'], detached: true });
        let stderr = '';
        let settled = false;
        const finish = (err?: DeliveryError) => {
          if (settled) return;
          settled = true;
          if (err === undefined) resolve();
          else reject(err);
        };
        const killGroup = () => {
          try {
            if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
          } catch {
            // The group is already gone.
          }
        };
        const onAbort = () => {
          killGroup();
          finish(abortError(spec.timeoutMs));
        };
        if (options.signal.aborted) onAbort();
        else options.signal.addEventListener('abort', onAbort, { once: true });
        child.stderr.setEncoding('utf8');
        child.stderr.on('data', (chunk: string) => {
          if (stderr.length < stderrBytesMax) stderr += chunk;
        });
        child.on('error', (err) =>
          finish(
            new DeliveryError(`cannot run ${command}: ${err.message}`, {
              retryable: true,
              cause: err,
            }),
          ),
        );
        child.on('close', (code, signal) => {
          options.signal.removeEventListener('abort', onAbort);
          if (code === 0) return finish();
          const how = code === null ? `killed by ${signal}` : `exit code ${code}`;
          const tail = stderr.trim().slice(-stderrBytesMax);
          finish(
            new DeliveryError(`${command}: ${how}${tail === '' ? '' : `: ${tail}`}`, {
              retryable: true,
            }),
          );
        });
        // A script that does not read its input must not fail the write with EPIPE.
        child.stdin.on('error', () => undefined);
        child.stdin.end(JSON.stringify({ version: 'continuum.alerts/v1', ...notification }));
      });
    },
  };
}
