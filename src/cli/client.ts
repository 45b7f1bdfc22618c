// The CLI's API client: bearer token, JSON in and out, and errors carried by their stable code.
import { readToken } from '../platform/tokens.js';

export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

export interface ClientOptions {
  controllerUrls: string[];
  tokenFile: string;
  timeoutMs?: number;
}

export class ApiClient {
  private readonly token: string;
  constructor(private readonly options: ClientOptions) {
    this.token = readToken(options.tokenFile);
  }

  /**
   * Tries each controller in turn: one that does not answer, or answers that it is not the leader,
   * is passed over (the leader it names is tried next). Any other answer is final.
   */
  async request<T>(
    method: string,
    path: string,
    body?: string,
    contentType = 'application/json',
  ): Promise<T> {
    const response = await this.fetchAny(path, {
      method,
      headers: {
        authorization: `Bearer ${this.token}`,
        'x-continuum-actor': `cli:${process.env.USER ?? 'unknown'}`,
        ...(body === undefined ? {} : { 'content-type': contentType }),
      },
      ...(body === undefined ? {} : { body }),
      signal: AbortSignal.timeout(this.options.timeoutMs ?? 15_000),
    });
    const text = await response.text();
    const value = text === '' ? undefined : (JSON.parse(text) as unknown);
    if (!response.ok) throw errorOf(response.status, value);
    return value as T;
  }

  private async fetchAny(path: string, init: RequestInit): Promise<Response> {
    const queue = [...this.options.controllerUrls];
    const tried = new Set<string>();
    let lastError: unknown;
    for (let base = queue.shift(); base !== undefined; base = queue.shift()) {
      const root = base.replace(/\/$/, '');
      if (tried.has(root)) continue;
      tried.add(root);
      let response: Response;
      try {
        response = await fetch(`${root}${path}`, init);
      } catch (err) {
        lastError = err;
        continue;
      }
      if (response.status === 503) {
        const value = (await response
          .clone()
          .json()
          .catch(() => undefined)) as ErrorBody | undefined;
        if (value?.error?.code === 'CONTINUUM_ERR_NOT_LEADER') {
          lastError = errorOf(503, value);
          const leader = (value.error.details as { leader?: unknown } | undefined)?.leader;
          if (typeof leader === 'string') queue.unshift(leader);
          continue;
        }
      }
      return response;
    }
    if (lastError instanceof ApiError) throw lastError;
    throw new ApiError(
      'CONTINUUM_ERR_UNAVAILABLE',
      `no controller answered at ${this.options.controllerUrls.join(', ')} (${(lastError as Error)?.message ?? 'unknown error'})`,
      503,
    );
  }

  /** Reads a Server-Sent Events stream, calling onEvent with each data payload. */
  async stream(path: string, onEvent: (data: string) => void, signal?: AbortSignal): Promise<void> {
    const response = await this.fetchAny(path, {
      headers: { authorization: `Bearer ${this.token}` },
      ...(signal === undefined ? {} : { signal }),
    });
    if (!response.ok || response.body === null)
      throw new ApiError(
        'CONTINUUM_ERR_UNAVAILABLE',
        `stream ${path}: HTTP ${response.status}`,
        response.status,
      );
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of response.body) {
      buffer += decoder.decode(chunk as Uint8Array, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block
          .split('\n')
          .filter((l) => l.startsWith('data:'))
          .map((l) => l.slice(5).trimStart())
          .join('\n');
        if (data !== '') onEvent(data);
      }
    }
  }
}

interface ErrorBody {
  error?: { code?: string; message?: string; details?: unknown };
}

function errorOf(status: number, value: unknown): ApiError {
  const error = (value as ErrorBody | undefined)?.error;
  return new ApiError(
    error?.code ?? 'CONTINUUM_ERR_INTERNAL',
    error?.message ?? `HTTP ${status}`,
    status,
    error?.details,
  );
}
