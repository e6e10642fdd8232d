// A small JSON-over-fetch layer: one place that turns every outcome into either a parsed body
// or a RollcallClientError with a stable code, and that fails a call over to the next registry replica.
import type { Agent } from 'undici';
import type { Endpoints } from './endpoints.js';
import { RollcallClientError } from './errors.js';

export interface HttpConfig {
  /** The registry replicas (one base URL or several); see endpoints.ts. */
  endpoints: Endpoints;
  /** The replica calls go to first now, without a trailing slash, e.g. http://127.0.0.1:7400 */
  readonly baseUrl: string;
  token?: string;
  /** Set when the client has TLS settings (CA, client certificate). */
  dispatcher?: Promise<Agent>;
  timeoutMs: number;
  /** Aborted by client.close(), so no request outlives its client. */
  signal: AbortSignal;
}

export interface HttpAnswer<T> {
  status: number;
  body: T;
}

export function authHeaders(token: string | undefined): Record<string, string> {
  return token ? { authorization: `Bearer ${token}` } : {};
}

/**
 * One call of the API. When a replica does not answer (refused, reset, timeout) or answers 5xx (503
 * store_unavailable: it lost etcd), the same call goes to the next replica; every call is idempotent (see
 * endpoints.ts). A 4xx is the registry's verdict and is never retried elsewhere. When every replica failed, the
 * last failure is thrown, its message naming what each replica did.
 */
export async function requestJson<T>(
  config: HttpConfig,
  method: string,
  path: string,
  body?: unknown,
  timeoutMs = config.timeoutMs,
): Promise<HttpAnswer<T>> {
  const failures: string[] = [];
  let last: RollcallClientError | undefined;
  for (const baseUrl of config.endpoints.order()) {
    try {
      const answer = await requestOnce<T>(config, baseUrl, method, path, body, timeoutMs);
      config.endpoints.succeeded(baseUrl);
      return answer;
    } catch (err) {
      if (!(err instanceof RollcallClientError) || !isReplicaFailure(err)) throw err;
      config.endpoints.failed(baseUrl);
      last = err;
      failures.push(`${baseUrl}: ${err.status === undefined ? err.message.replace(/\.$/, '') : `${err.status} ${err.code}`}`);
    }
  }
  if (failures.length === 1) throw last!;
  throw new RollcallClientError(last!.code, `${method} ${path}: no registry replica answered (${failures.join('; ')}).`, {
    ...(last!.status === undefined ? {} : { status: last!.status }),
    details: last!.details,
    cause: last,
  });
}

/** The replica is down, cut off, or lost its store: another replica may well answer. */
function isReplicaFailure(err: RollcallClientError): boolean {
  if (err.status === undefined) return err.code === 'unreachable' || err.code === 'timeout';
  return err.status >= 500;
}

async function requestOnce<T>(
  config: HttpConfig,
  baseUrl: string,
  method: string,
  path: string,
  body: unknown,
  timeoutMs: number,
): Promise<HttpAnswer<T>> {
  const url = baseUrl + path;
  const headers: Record<string, string> = { accept: 'application/json', ...authHeaders(config.token) };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const timeout = AbortSignal.timeout(timeoutMs);
  const dispatcher = await config.dispatcher;
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.any([config.signal, timeout]),
      // Node's fetch is undici: it takes an undici dispatcher, though its types name their own copy.
      ...(dispatcher === undefined ? {} : ({ dispatcher } as object)),
    });
  } catch (err) {
    throw transportError(err, config, baseUrl, method, url, timeout, timeoutMs);
  }
  let text: string;
  try {
    text = await res.text();
  } catch (err) {
    throw transportError(err, config, baseUrl, method, url, timeout, timeoutMs);
  }
  let parsed: unknown = undefined;
  if (text.length > 0) {
    try {
      parsed = JSON.parse(text);
    } catch {
      if (res.ok) {
        throw new RollcallClientError('bad_response', `${method} ${url} answered ${res.status} with a body that is not JSON.`, {
          status: res.status,
        });
      }
    }
  }
  if (!res.ok) throw answerError(res.status, parsed, `${method} ${url}`);
  return { status: res.status, body: parsed as T };
}

function transportError(err: unknown, config: HttpConfig, baseUrl: string, method: string, url: string, timeout: AbortSignal, timeoutMs: number): RollcallClientError {
  if (config.signal.aborted) return new RollcallClientError('closed', `${method} ${url} was cancelled: the client is closed.`);
  if (timeout.aborted) return new RollcallClientError('timeout', `${method} ${url}: no answer from the registry within ${timeoutMs} ms.`);
  // fetch reports network failures as TypeError('fetch failed') with the system error as its cause.
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const why = cause?.code ?? cause?.message ?? (err as Error).message;
  return new RollcallClientError('unreachable', `Cannot reach the registry at ${baseUrl} (${why}).`, { cause: err });
}

/** The registry answers every 4xx/5xx as `{error, message, details?}`; anything else still becomes a coded error. */
export function answerError(status: number, body: unknown, what: string): RollcallClientError {
  const b = (body ?? {}) as { error?: unknown; message?: unknown; details?: unknown };
  const code = typeof b.error === 'string' ? b.error : status >= 500 ? 'server_error' : `http_${status}`;
  const message = typeof b.message === 'string' ? b.message : `${what} answered ${status}.`;
  return new RollcallClientError(code, message, { status, details: b.details });
}
