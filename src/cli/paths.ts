// Where Continuum keeps its files by default, so `continuum up` and the other commands agree.
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

export function continuumHome(): string {
  return resolve(process.env.CONTINUUM_HOME ?? join(homedir(), '.continuum'));
}

export const defaultControllerUrl = 'http://127.0.0.1:7400';

export function defaultTokenFile(): string {
  return process.env.CONTINUUM_TOKEN_FILE ?? join(continuumHome(), 'controller', 'api.token');
}
