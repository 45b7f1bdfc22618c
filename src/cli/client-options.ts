// The options every API command takes, and how a command turns them into a client and prints.
import type { Command } from 'commander';
import { ApiClient } from './client.js';
import type { OutputFormat } from './format.js';
import { defaultControllerUrl, defaultTokenFile } from './paths.js';

interface GlobalOptions {
  controller: string;
  tokenFile: string;
  output: OutputFormat;
}

export function clientOf(cmd: Command): { client: ApiClient; output: OutputFormat } {
  const opts = cmd.opts<GlobalOptions>();
  const urls = opts.controller
    .split(',')
    .map((u) => u.trim())
    .filter(Boolean);
  return {
    client: new ApiClient({ controllerUrls: urls, tokenFile: opts.tokenFile }),
    output: opts.output,
  };
}

export function print(output: OutputFormat, value: unknown, human: () => string): void {
  process.stdout.write(`${output === 'json' ? JSON.stringify(value, null, 2) : human()}\n`);
}

/** The options every API command takes (on the command itself, so daemons can use the same names). */
export function withClientOptions(command: Command): Command {
  return command
    .option(
      '--controller <urls>',
      'controller address(es), comma-separated',
      process.env.CONTINUUM_CONTROLLER ?? defaultControllerUrl,
    )
    .option('--token-file <path>', 'API token file', defaultTokenFile())
    .option(...outputOption);
}

/** -o table|json, for every command that prints results. */
export const outputOption = [
  '-o, --output <format>',
  'table or json',
  (value: string) => {
    if (value !== 'table' && value !== 'json')
      throw new Error(`--output: expected "table" or "json", got "${value}"`);
    return value;
  },
  'table',
] as const;
