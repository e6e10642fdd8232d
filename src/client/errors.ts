// Errors are values with stable codes. Codes from the registry's `{error}` body pass through unchanged
// (validation_failed, instance_not_found, …); the client adds its own for what never reached an answer.
export type ClientOnlyErrorCode =
  | 'unreachable' // connection refused, DNS failure, reset: the registry did not answer
  | 'timeout' // no answer within the client's timeout
  | 'bad_response' // an answer that is not the JSON the API promises
  | 'closed' // the client or view was closed while the call was pending
  | 'disconnected'; // a watch socket closed unexpectedly

export interface RollcallClientErrorOptions {
  status?: number;
  details?: unknown;
  cause?: unknown;
}

export class RollcallClientError extends Error {
  /** The registry's `error` code, or one of ClientOnlyErrorCode. */
  readonly code: string;
  /** HTTP status when the registry answered; undefined when it did not. */
  readonly status?: number;
  readonly details?: unknown;

  constructor(code: string, message: string, options: RollcallClientErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RollcallClientError';
    this.code = code;
    if (options.status !== undefined) this.status = options.status;
    if (options.details !== undefined) this.details = options.details;
  }
}

/**
 * Worth trying again later: the registry did not answer, answered 5xx, or asked us to slow down.
 * Any other 4xx is the caller's mistake and repeating it changes nothing.
 */
export function isRetryable(err: unknown): boolean {
  if (!(err instanceof RollcallClientError)) return true;
  if (err.code === 'closed') return false;
  if (err.status === undefined) return true;
  return err.status >= 500 || err.status === 408 || err.status === 429;
}

export function isNotFound(err: unknown): boolean {
  return err instanceof RollcallClientError && err.status === 404;
}

export function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
