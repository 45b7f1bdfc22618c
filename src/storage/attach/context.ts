// What every attach and detach step is handed: the command runner, where the tools are, the
// limits and the log. One object, so steps stay small and tests can swap the runner.
import { setTimeout as delay } from 'node:timers/promises';
import { ContinuumError } from '../../core/errors.js';
import type { Logger } from '../../core/ports.js';
import { realCommandRunner, runChecked, type CommandRunner } from './command-runner.js';
import type { CommandLine } from './command-lines.js';
import { locateTools, type ToolName, type ToolPaths } from './host-facts.js';
import { attachLimits, type AttachLimits } from './types.js';

export interface AttachContext {
  runner: CommandRunner;
  tools: ToolPaths;
  limits: AttachLimits;
  log: Logger;
}

/** Options every public entry point accepts besides its main argument. */
export interface StepOptions {
  log: Logger;
  limits?: Partial<AttachLimits>;
  /** Replaces the real runner (tests). */
  runner?: CommandRunner;
  /** Replaces the tool search (tests). */
  tools?: ToolPaths;
}

export function attachContext(options: StepOptions): AttachContext {
  return {
    runner: options.runner ?? realCommandRunner,
    tools: options.tools ?? locateTools(),
    limits: attachLimits(options.limits),
    log: options.log,
  };
}

/** The path of a tool; CONTINUUM_ERR_ATTACH_TOOL_MISSING when this host has none. */
export function tool(context: AttachContext, name: ToolName): string {
  const path = context.tools[name];
  if (path === undefined) {
    throw new ContinuumError(
      'CONTINUUM_ERR_ATTACH_TOOL_MISSING',
      `${name} not found on PATH or in the system directories`,
      { details: { tool: name } },
    );
  }
  return path;
}

/** Runs a command that must succeed, under the ordinary command timeout unless told otherwise. */
export function run(
  context: AttachContext,
  step: string,
  command: CommandLine,
  timeoutMs = context.limits.commandTimeoutMs,
): Promise<string> {
  return runChecked(context.runner, step, command, {
    timeoutMs,
    outputBytesMax: context.limits.outputBytesMax,
  });
}

/**
 * Waits for a condition the kernel shows only in /proc or /sys (no event to wait on), looking
 * every pollIntervalMs; CONTINUUM_ERR_ATTACH_TIMEOUT at the deadline.
 */
export async function waitUntil(
  context: AttachContext,
  what: string,
  condition: () => boolean,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() >= deadline) {
      throw new ContinuumError(
        'CONTINUUM_ERR_ATTACH_TIMEOUT',
        `waited ${timeoutMs} ms for ${what}`,
      );
    }
    await delay(context.limits.pollIntervalMs);
  }
}
