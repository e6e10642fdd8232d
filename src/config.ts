// Server configuration: one zod schema for flags and environment, with coercion and defaults. Pure.
import { z } from 'zod';
import { RollcallError } from './errors.js';

const MiB = 1024 * 1024;

export const configSchema = z.object({
  host: z.string().min(1).default('127.0.0.1'),
  port: z.coerce.number().int().min(0).max(65535).default(7400),
  dataDir: z.string().min(1).default('./data'),
  /** Events kept in the durable log for resuming watches. */
  historySize: z.coerce.number().int().min(100).max(100_000_000).default(100_000),
  /** A watcher whose unsent backlog passes this many bytes is closed as a slow consumer. */
  watchBufferBytes: z.coerce.number().int().min(64 * 1024).default(4 * MiB),
  /** WebSocket watchers are pinged this often; one missed pong closes a dead peer's socket. */
  watchPingMs: z.coerce.number().int().min(50).default(30_000),
  /** When set, every /v1 request must carry `Authorization: Bearer <token>`. */
  token: z.string().min(1).optional(),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Lease sweep period: expiry lands at most this long after a deadline. */
  sweepMs: z.coerce.number().int().min(10).max(1000).default(200),
  heartbeatFlushMs: z.coerce.number().int().min(100).default(5000),
  maxExpiriesPerSweep: z.coerce.number().int().min(1).default(1000),

  // Hostile or broken peers (src/http/server-limits.ts): how long a request may take to arrive, how many
  // connections and watchers may be open. Long-polls and watch streams are answers, not requests: unaffected.
  /** The request line and headers must arrive within this. */
  headersTimeoutMs: z.coerce.number().int().min(100).max(600_000).default(10_000),
  /** The whole request, body included, must arrive within this. */
  requestTimeoutMs: z.coerce.number().int().min(100).max(3_600_000).default(30_000),
  /** An idle keep-alive connection is closed after this (above the usual 60 s of load balancers). */
  keepAliveTimeoutMs: z.coerce.number().int().min(100).max(3_600_000).default(72_000),
  /** A connection silent both ways while a request is served is cut after this; 0 = never. */
  connectionTimeoutMs: z.coerce.number().int().min(0).max(3_600_000).default(120_000),
  /** Open connections above this are answered 503 too_many_connections; 0 = no limit. */
  maxConnections: z.coerce.number().int().min(0).default(10_000),
  /** Watchers (WebSocket + SSE) above this are refused with 503 too_many_watchers; 0 = no limit. */
  maxWatchers: z.coerce.number().int().min(0).default(8_000),
}).refine((c) => c.headersTimeoutMs <= c.requestTimeoutMs, {
  message: 'must not exceed requestTimeoutMs (the headers are part of the request)',
  path: ['headersTimeoutMs'],
});

export type Config = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;

const ENV: Record<string, keyof Config> = {
  ROLLCALL_HOST: 'host',
  ROLLCALL_PORT: 'port',
  ROLLCALL_DATA_DIR: 'dataDir',
  ROLLCALL_HISTORY_SIZE: 'historySize',
  ROLLCALL_WATCH_BUFFER_BYTES: 'watchBufferBytes',
  ROLLCALL_TOKEN: 'token',
  ROLLCALL_LOG_LEVEL: 'logLevel',
  ROLLCALL_MAX_CONNECTIONS: 'maxConnections',
  ROLLCALL_MAX_WATCHERS: 'maxWatchers',
  ROLLCALL_HEADERS_TIMEOUT_MS: 'headersTimeoutMs',
  ROLLCALL_REQUEST_TIMEOUT_MS: 'requestTimeoutMs',
  ROLLCALL_KEEP_ALIVE_TIMEOUT_MS: 'keepAliveTimeoutMs',
  ROLLCALL_CONNECTION_TIMEOUT_MS: 'connectionTimeoutMs',
};

/** Flags win over environment variables, which win over defaults. Throws a RollcallError naming bad settings. */
export function loadConfig(flags: Partial<Record<keyof Config, unknown>>, env: NodeJS.ProcessEnv = {}): Config {
  const input: Record<string, unknown> = {};
  for (const [name, key] of Object.entries(ENV)) {
    const value = env[name];
    if (value !== undefined && value !== '') input[key] = value;
  }
  for (const [key, value] of Object.entries(flags)) if (value !== undefined) input[key] = value;
  const parsed = configSchema.safeParse(input);
  if (!parsed.success) {
    const details = parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
    throw new RollcallError(
      'bad_request',
      `Invalid configuration: ${details.map((d) => `${d.path}: ${d.message}`).join('; ')}`,
      details,
    );
  }
  return parsed.data;
}
