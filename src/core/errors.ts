// Stable error codes for every component (CONVENTIONS.md item 10). The API, CLI and console map
// errors by `code`, never by message text.

export interface ErrorInfo {
  /** HTTP status where the error crosses the API. */
  readonly status: number;
  /** Whether retrying the same request later can succeed. */
  readonly retryable: boolean;
}

export const errorCatalog = {
  CONTINUUM_ERR_SPEC_INVALID: { status: 400, retryable: false },
  CONTINUUM_ERR_BAD_REQUEST: { status: 400, retryable: false },
  CONTINUUM_ERR_BODY_TOO_LARGE: { status: 413, retryable: false },
  CONTINUUM_ERR_UNAUTHORIZED: { status: 401, retryable: false },
  CONTINUUM_ERR_NOT_FOUND: { status: 404, retryable: false },
  CONTINUUM_ERR_NODE_NOT_FOUND: { status: 404, retryable: false },
  CONTINUUM_ERR_WORKLOAD_NOT_FOUND: { status: 404, retryable: false },
  CONTINUUM_ERR_CONFLICT: { status: 409, retryable: true },
  CONTINUUM_ERR_NO_PLACEMENT: { status: 409, retryable: true },
  CONTINUUM_ERR_STALE_EPOCH: { status: 409, retryable: false },
  CONTINUUM_ERR_STORE_CLOSED: { status: 503, retryable: true },
  CONTINUUM_ERR_UNAVAILABLE: { status: 503, retryable: true },
  /** A follower controller was asked to write; details.leader names the leader when known. */
  CONTINUUM_ERR_NOT_LEADER: { status: 503, retryable: true },
  CONTINUUM_ERR_TIMEOUT: { status: 504, retryable: true },
  CONTINUUM_ERR_INTERNAL: { status: 500, retryable: false },
  CONTINUUM_ERR_CONFIG: { status: 400, retryable: false },
  CONTINUUM_ERR_DRIVER: { status: 500, retryable: true },
  CONTINUUM_ERR_VOLUME_NOT_FOUND: { status: 404, retryable: false },
  CONTINUUM_ERR_VOLUME_EXISTS: { status: 409, retryable: false },
  CONTINUUM_ERR_VOLUME_IN_USE: { status: 409, retryable: true },
  CONTINUUM_ERR_VOLUME_HAS_DEPENDENTS: { status: 409, retryable: false },
  CONTINUUM_ERR_VOLUME_BAD_NAME: { status: 400, retryable: false },
  CONTINUUM_ERR_VOLUME_BAD_SIZE: { status: 400, retryable: false },
  CONTINUUM_ERR_VOLUME_LIMIT: { status: 409, retryable: false },
  CONTINUUM_ERR_VOLUME_CORRUPT: { status: 500, retryable: false },
  CONTINUUM_ERR_VOLUME_IO: { status: 500, retryable: true },
  CONTINUUM_ERR_VOLUME_IMAGE_FORMAT: { status: 400, retryable: false },
  CONTINUUM_ERR_VOLUME_TOOL_MISSING: { status: 501, retryable: false },
  CONTINUUM_ERR_VOLUME_STORE_LOCKED: { status: 409, retryable: true },
  // Volume attach (src/storage/attach, docs/volume-attach.md).
  CONTINUUM_ERR_ATTACH_INVALID: { status: 400, retryable: false },
  CONTINUUM_ERR_ATTACH_UNSUPPORTED: { status: 501, retryable: false },
  CONTINUUM_ERR_ATTACH_IN_USE: { status: 409, retryable: false },
  CONTINUUM_ERR_ATTACH_FOREIGN_DATA: { status: 409, retryable: false },
  CONTINUUM_ERR_ATTACH_TOOL_MISSING: { status: 500, retryable: false },
  CONTINUUM_ERR_ATTACH_COMMAND_FAILED: { status: 500, retryable: true },
  CONTINUUM_ERR_ATTACH_TIMEOUT: { status: 504, retryable: true },
  CONTINUUM_ERR_ATTACH_BUSY: { status: 409, retryable: true },
  CONTINUUM_ERR_ATTACH_HANDLE_INVALID: { status: 500, retryable: false },
  // Alerting (src/controller/alerts, docs/alerts.md).
  CONTINUUM_ERR_ALERT_CHANNEL_NOT_FOUND: { status: 404, retryable: false },
  CONTINUUM_ERR_ALERT_SILENCE_NOT_FOUND: { status: 404, retryable: false },
  CONTINUUM_ERR_ALERT_SILENCE_LIMIT: { status: 409, retryable: true },
} as const satisfies Record<string, ErrorInfo>;

export type ErrorCode = keyof typeof errorCatalog;

/** An operating error: typed, expected, handled. Impossible states use `assert` instead. */
export class ContinuumError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryable: boolean;
  readonly details: unknown;

  constructor(
    code: ErrorCode,
    message: string,
    options: { details?: unknown; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ContinuumError';
    this.code = code;
    this.status = errorCatalog[code].status;
    this.retryable = errorCatalog[code].retryable;
    this.details = options.details;
  }

  toJSON(): { code: ErrorCode; message: string; retryable: boolean; details?: unknown } {
    return {
      code: this.code,
      message: this.message,
      retryable: this.retryable,
      ...(this.details === undefined ? {} : { details: this.details }),
    };
  }
}

/** Whether a code that crossed a wire (an agent's answer) is one of ours. */
export function isErrorCode(value: string): value is ErrorCode {
  return Object.hasOwn(errorCatalog, value);
}

export function isContinuumError(value: unknown): value is ContinuumError {
  return value instanceof ContinuumError;
}

/** Assertions stay on (CONVENTIONS.md item 11): an impossible state crashes loudly. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}
