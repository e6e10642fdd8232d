// A small JSON-over-fetch layer: one place that turns every outcome into either a parsed body
// or a RollcallClientError with a stable code.
import type { Agent } from 'undici';
import { RollcallClientError } from './errors.js';

export interface HttpConfig {
  /** Base URL without a trailing slash, e.g. http://127.0.0.1:7400 */
  baseUrl: string;
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

export async function requestJson<T>(
  config: HttpConfig,
  method: string,
  path: string,
  body?: unknown,
  timeoutMs = config.timeoutMs,
): Promise<HttpAnswer<T>> {
  const url = config.baseUrl + path;
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
    throw transportError(err, config, method, url, timeout);
  }
  let text: string;
  try {
    text = await res.text();
  } catch (err) {
    throw transportError(err, config, method, url, timeout);
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

function transportError(err: unknown, config: HttpConfig, method: string, url: string, timeout: AbortSignal): RollcallClientError {
  if (config.signal.aborted) return new RollcallClientError('closed', `${method} ${url} was cancelled: the client is closed.`);
  if (timeout.aborted) return new RollcallClientError('timeout', `${method} ${url}: no answer from the registry within ${config.timeoutMs} ms.`);
  // fetch reports network failures as TypeError('fetch failed') with the system error as its cause.
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const why = cause?.code ?? cause?.message ?? (err as Error).message;
  return new RollcallClientError('unreachable', `Cannot reach the registry at ${config.baseUrl} (${why}).`, { cause: err });
}

/** The registry answers every 4xx/5xx as `{error, message, details?}`; anything else still becomes a coded error. */
export function answerError(status: number, body: unknown, what: string): RollcallClientError {
  const b = (body ?? {}) as { error?: unknown; message?: unknown; details?: unknown };
  const code = typeof b.error === 'string' ? b.error : status >= 500 ? 'server_error' : `http_${status}`;
  const message = typeof b.message === 'string' ? b.message : `${what} answered ${status}.`;
  return new RollcallClientError(code, message, { status, details: b.details });
}
