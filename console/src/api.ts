// The console's HTTP client for /v1: the bearer token on every request, and errors mapped by their
// stable code (CONVENTIONS.md item 10), never by message text.
import type { ApiErrorBody, ErrorCode, Problem } from './types.js';

/** Reads answer fast on a healthy controller; longer than this is reported as a failure. */
export const requestTimeoutMs = 15_000;
const tokenKey = 'continuum.apiToken';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode | 'CONSOLE_ERR_NETWORK',
    message: string,
    readonly problems: Problem[] = [],
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** The token lives in sessionStorage only: it ends with the browser tab (issue 7). */
export function storedToken(): string | null {
  return sessionStorage.getItem(tokenKey);
}

export function storeToken(token: string | null): void {
  if (token === null) sessionStorage.removeItem(tokenKey);
  else sessionStorage.setItem(tokenKey, token);
}

/** Called when the controller refuses the token, so the app can return to sign-in. */
let onUnauthorized: () => void = () => undefined;
export function whenUnauthorized(handler: () => void): void {
  onUnauthorized = handler;
}

export function authHeaders(token: string): Record<string, string> {
  // Actions are journaled with this actor, so an operator can tell console actions from the CLI's.
  return { authorization: `Bearer ${token}`, 'x-continuum-actor': 'console' };
}

export async function request<T>(
  method: 'GET' | 'POST',
  path: string,
  options: { body?: string; token?: string; signal?: AbortSignal } = {},
): Promise<T> {
  const token = options.token ?? storedToken() ?? '';
  const signal = options.signal ?? AbortSignal.timeout(requestTimeoutMs);
  let response: Response;
  try {
    response = await fetch(path.replace(/^\//, ''), {
      method,
      headers: {
        ...authHeaders(token),
        ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(options.body === undefined ? {} : { body: options.body }),
      signal,
    });
  } catch (error) {
    throw new ApiError(
      0,
      'CONSOLE_ERR_NETWORK',
      `the controller did not answer (${String(error)})`,
    );
  }
  const text = await response.text();
  if (response.ok) return (text === '' ? undefined : JSON.parse(text)) as T;
  const body = parseError(text);
  const code = body?.error.code ?? 'CONTINUUM_ERR_INTERNAL';
  if (code === 'CONTINUUM_ERR_UNAUTHORIZED' && options.token === undefined) onUnauthorized();
  throw new ApiError(
    response.status,
    code,
    body?.error.message ?? `HTTP ${response.status}`,
    body?.error.details?.problems ?? [],
  );
}

function parseError(text: string): ApiErrorBody | undefined {
  try {
    const value = JSON.parse(text) as ApiErrorBody;
    return typeof value?.error?.code === 'string' ? value : undefined;
  } catch {
    return undefined;
  }
}

export const get = <T>(path: string): Promise<T> => request<T>('GET', path);
export const post = <T>(path: string, body: unknown): Promise<T> =>
  request<T>('POST', path, { body: typeof body === 'string' ? body : JSON.stringify(body) });
