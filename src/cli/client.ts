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

  async request<T>(
    method: string,
    path: string,
    body?: string,
    contentType = 'application/json',
  ): Promise<T> {
    let lastError: unknown;
    for (const base of this.options.controllerUrls) {
      let response: Response;
      try {
        response = await fetch(`${base.replace(/\/$/, '')}${path}`, {
          method,
          headers: {
            authorization: `Bearer ${this.token}`,
            'x-continuum-actor': `cli:${process.env.USER ?? 'unknown'}`,
            ...(body === undefined ? {} : { 'content-type': contentType }),
          },
          ...(body === undefined ? {} : { body }),
          signal: AbortSignal.timeout(this.options.timeoutMs ?? 15_000),
        });
      } catch (err) {
        lastError = err;
        continue;
      }
      const text = await response.text();
      const value = text === '' ? undefined : (JSON.parse(text) as unknown);
      if (!response.ok) {
        const error = (
          value as { error?: { code?: string; message?: string; details?: unknown } } | undefined
        )?.error;
        throw new ApiError(
          error?.code ?? 'CONTINUUM_ERR_INTERNAL',
          error?.message ?? `HTTP ${response.status}`,
          response.status,
          error?.details,
        );
      }
      return value as T;
    }
    throw new ApiError(
      'CONTINUUM_ERR_UNAVAILABLE',
      `no controller answered at ${this.options.controllerUrls.join(', ')} (${(lastError as Error)?.message ?? 'unknown error'})`,
      503,
    );
  }

  /** Reads a Server-Sent Events stream, calling onEvent with each data payload. */
  async stream(path: string, onEvent: (data: string) => void, signal?: AbortSignal): Promise<void> {
    const base = this.options.controllerUrls[0]!;
    const response = await fetch(`${base.replace(/\/$/, '')}${path}`, {
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
