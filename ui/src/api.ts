// The registry's public HTTP API as the page uses it. The token lives in memory; it goes to localStorage only when
// the person ticks "remember", and only ever travels in the Authorization header (never in a URL).

const REMEMBER_KEY = 'rollcall.token';

let token: string | null = readRemembered();
const tokenListeners = new Set<() => void>();

function readRemembered(): string | null {
  try {
    return localStorage.getItem(REMEMBER_KEY);
  } catch {
    return null; // storage disabled: the person types the token each time
  }
}

export const auth = {
  hasToken: () => token !== null,
  headers(): Record<string, string> {
    return token === null ? {} : { authorization: `Bearer ${token}` };
  },
  set(value: string, remember: boolean) {
    token = value;
    try {
      if (remember) localStorage.setItem(REMEMBER_KEY, value);
      else localStorage.removeItem(REMEMBER_KEY);
    } catch {
      // storage disabled: kept in memory only
    }
    for (const l of tokenListeners) l();
  },
  forget() {
    token = null;
    try {
      localStorage.removeItem(REMEMBER_KEY);
    } catch {
      // nothing stored
    }
  },
  /** Resolves the next time a token is entered. */
  next(): Promise<void> {
    return new Promise((resolve) => {
      const l = () => {
        tokenListeners.delete(l);
        resolve();
      };
      tokenListeners.add(l);
    });
  },
};

/** An answer of the API that was not 2xx, with its stable code and message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The registry could not be reached at all (down, network gone). */
export class Unreachable extends Error {}

export async function request<T>(path: string, init: { method?: string; body?: unknown } = {}): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, {
      method: init.method ?? 'GET',
      cache: 'no-store',
      headers: { accept: 'application/json', ...auth.headers(), ...(init.body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
    });
  } catch {
    throw new Unreachable('The registry cannot be reached.');
  }
  const text = await res.text();
  let body: unknown = undefined;
  try {
    body = text === '' ? undefined : JSON.parse(text);
  } catch {
    body = text;
  }
  if (!res.ok) {
    const e = (body ?? {}) as { error?: string; message?: string };
    throw new ApiError(res.status, e.error ?? `http_${res.status}`, e.message ?? `The registry answered ${res.status}.`);
  }
  return body as T;
}

export function errorText(err: unknown): string {
  if (err instanceof ApiError) return `${err.message} (${err.status} ${err.code})`;
  if (err instanceof Error) return err.message;
  return String(err);
}
