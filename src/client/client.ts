// createClient: the REST calls of the registry, self-maintaining registrations and live watch views,
// all owned by one client so that close() stops every timer and socket it started.
import { createApi, createServicesApi } from './api.js';
import { DEFAULT_RETRY, type RetryOptions } from './backoff.js';
import { createEndpoints, parseRegistryUrls } from './endpoints.js';
import type { HttpConfig } from './http.js';
import { LeaseStream } from './lease-stream.js';
import { Registration, type RegisterOptions } from './registration.js';
import { tlsDispatcher, type ClientTls } from './tls.js';
import { WatchView, type WatchOptions } from './watch-view.js';

export interface ClientOptions {
  /**
   * The registry's base URL, e.g. http://127.0.0.1:7400, or the URLs of several replicas of one registry
   * (rollcall over etcd): calls, watch views and heartbeats then fail over to the next replica when one fails.
   */
  url: string | readonly string[];
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** For an https:// registry: the CA to trust and, for mutual TLS, a client certificate and key (PEM). */
  tls?: ClientTls;
  /** Per-request timeout in ms (default 5000). */
  timeoutMs?: number;
  /** Backoff for background retries and reconnects. */
  retry?: RetryOptions;
  /**
   * Heartbeat every registration over one shared lease stream (GET /v1/leases, a WebSocket); default true. When
   * the registry refuses it (an older registry) heartbeats go over HTTP, and the stream is tried again later.
   * false: always one HTTP request per heartbeat.
   */
  leaseStream?: boolean;
}

export function createClient(options: ClientOptions) {
  const endpoints = createEndpoints(parseRegistryUrls(options.url));
  const abort = new AbortController();
  const http: HttpConfig = {
    endpoints,
    get baseUrl() {
      return endpoints.current();
    },
    timeoutMs: options.timeoutMs ?? 5000,
    signal: abort.signal,
  };
  if (options.token !== undefined) http.token = options.token;
  if (options.tls !== undefined) {
    http.dispatcher = tlsDispatcher(options.tls);
    // Requests see a failure when they await it; a client that never sends one must not crash the process.
    http.dispatcher.catch(() => {});
  }
  const retry: RetryOptions = { ...DEFAULT_RETRY, ...options.retry };
  const api = createApi(http);
  const registrations = new Set<Registration>();
  const leases =
    options.leaseStream === false
      ? undefined
      : new LeaseStream({
          // Read at every (re)connect: the stream follows the replica the HTTP calls found answering (a stream
          // that fails falls back to HTTP heartbeats, which fail over and move endpoints.current()).
          get baseUrl() {
            return endpoints.current();
          },
          timeoutMs: http.timeoutMs,
          retry,
          ...(http.token === undefined ? {} : { token: http.token }),
          ...(options.tls === undefined ? {} : { tls: options.tls }),
        });
  const stopped = (r: Registration) => {
    registrations.delete(r);
    // No registration left to renew: no reason to hold a socket open.
    if (registrations.size === 0) leases?.idle();
  };
  const views = new Set<WatchView>();
  let closed = false;

  function assertOpen(): void {
    if (closed) throw new Error('This rollcall client is closed.');
  }

  return {
    ...api,
    /** The replica calls go to first now (the only one when the client was given one URL). */
    get url(): string {
      return endpoints.current();
    },
    /** Every replica the client was given, in the order given. */
    urls: endpoints.urls,
    /** Explicit Services (stable virtual IPs): put, get, delete, list. */
    services: createServicesApi(http),

    /**
     * Registers an instance and keeps it registered. Resolves after the first attempt, also when the
     * registry is unreachable (the handle then retries in the background and emits 'registered' when it
     * succeeds); rejects only when the registry refuses the registration (4xx).
     */
    async register(input: RegisterOptions): Promise<Registration> {
      assertOpen();
      const reg = new Registration(input, { api, retry, onStopped: stopped, ...(leases === undefined ? {} : { leases }) });
      registrations.add(reg);
      await reg.start();
      return reg;
    },

    /**
     * A live view of one service, of a whole namespace when `service` is omitted, or of every namespace with
     * `allNamespaces`. With `resources: ['services', 'instances']` it follows Services too.
     */
    watch(watchOptions: WatchOptions = {}): WatchView {
      assertOpen();
      const view = new WatchView(watchOptions, {
        endpoints,
        timeoutMs: http.timeoutMs,
        retry,
        onClosed: (v: WatchView) => views.delete(v),
        ...(http.token === undefined ? {} : { token: http.token }),
        ...(options.tls === undefined ? {} : { tls: options.tls }),
      });
      views.add(view);
      return view;
    },

    /** Stops every registration's heartbeats (without deregistering), closes every view and cancels requests in flight. */
    close(): void {
      if (closed) return;
      closed = true;
      for (const r of [...registrations]) r.stop();
      leases?.close();
      for (const v of [...views]) v.close();
      abort.abort();
      void http.dispatcher?.then((d) => d.close());
    },
  };
}

export type RollcallClient = ReturnType<typeof createClient>;
