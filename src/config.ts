// Server configuration: one zod schema for flags and environment, with coercion and defaults. Pure.
import { z } from 'zod';
import { RollcallError } from './errors.js';

const MiB = 1024 * 1024;

const DURATION = /^(\d{1,9})(ms|s|m|h)$/;
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;

/** A duration like 500ms, 3s, 10m or 1h (a bare number is milliseconds), as milliseconds. */
const duration = z.union([z.number(), z.string()]).transform((value, ctx) => {
  if (typeof value === 'number' || /^\d+$/.test(value)) return Number(value);
  const m = DURATION.exec(value);
  if (m) return Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
  ctx.addIssue({ code: 'custom', message: 'must be a duration like 500ms, 3s, 10m or 1h' });
  return z.NEVER;
});

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

  // Self-preservation: lapses are counted over protectWindow; past protectThreshold percent of the instances
  // (and at least protectMinLapses) lapsed instances are kept, flagged, for at most protectMax.
  protectWindow: duration.pipe(z.number().int().min(100)).default(60_000),
  /** 100 turns self-preservation off. */
  protectThreshold: z.coerce.number().min(0).max(100).default(15),
  protectMax: duration.pipe(z.number().int().min(100)).default(600_000),
  protectMinLapses: z.coerce.number().int().min(1).default(3),
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
  ROLLCALL_PROTECT_WINDOW: 'protectWindow',
  ROLLCALL_PROTECT_THRESHOLD: 'protectThreshold',
  ROLLCALL_PROTECT_MAX: 'protectMax',
  ROLLCALL_PROTECT_MIN_LAPSES: 'protectMinLapses',
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
