#!/usr/bin/env node
// `continuum`: the operator's tool and the way to start every daemon.
import { Command, CommanderError } from 'commander';
import { ApiError } from './client.js';
import { addAlertCommands } from './commands-alerts.js';
import { addClientCommands } from './commands-client.js';
import { addDaemonCommands } from './commands-daemons.js';
import { addVolumeCommands } from './commands-volume.js';
import { addUpCommand } from './up.js';
import { ContinuumError } from '../core/errors.js';

const program = new Command('continuum')
  .description('Continuum keeps servers and applications running through failures')
  .version('0.1.0');
addUpCommand(program);
addDaemonCommands(program);
addClientCommands(program);
addAlertCommands(program);
addVolumeCommands(program);
program.exitOverride();

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode);
  if (err instanceof ApiError || err instanceof ContinuumError) {
    process.stderr.write(`error ${err.code}: ${err.message}\n`);
    const problems = (err instanceof ApiError ? err.details : err.details) as
      { problems?: { path: string; message: string }[] } | undefined;
    for (const p of problems?.problems ?? []) process.stderr.write(`  ${p.path}: ${p.message}\n`);
    process.exit(err.code === 'CONTINUUM_ERR_UNAVAILABLE' ? 3 : 1);
  }
  process.stderr.write(`error: ${(err as Error).message}\n`);
  process.exit(1);
}
