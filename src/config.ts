// Server configuration: one zod schema for flags and environment, with coercion and defaults. Pure.
import { z } from 'zod';
import { RollcallError } from './errors.js';
import { DEFAULT_SERVICE_CIDR } from './registry/services.js';
import { parseCidr } from './registry/virtual-ips.js';

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
  // Services (stable virtual addresses)
  /** The range Services' virtual IPs come from; loopback by default so it works on one machine without root. */
  serviceCidr: z
    .string()
    .default(DEFAULT_SERVICE_CIDR)
    .superRefine((v, ctx) => {
      const parsed = parseCidr(v);
      if (typeof parsed === 'string') ctx.addIssue({ code: 'custom', message: parsed });
    }),

  // Authentication and TLS (README "Authentication and TLS")
  /** YAML file of scoped tokens and client-certificate CNs; reloaded on SIGHUP. */
  authFile: z.string().min(1).optional(),
  /** Also guard /healthz, /readyz, /metrics, /docs and the spec. */
  protectOps: z
    .union([z.boolean(), z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1')])
    .default(false),
  /** PEM certificate chain and key: serve HTTPS and WSS on the same port; both reloaded on SIGHUP. */
  tlsCert: z.string().min(1).optional(),
  tlsKey: z.string().min(1).optional(),
  /** PEM CA bundle: clients must present a certificate it signed (mutual TLS). */
  tlsClientCa: z.string().min(1).optional(),
}).superRefine((c, ctx) => {
  if (c.protectOps && c.token === undefined && c.authFile === undefined) {
    ctx.addIssue({ code: 'custom', path: ['protectOps'], message: 'needs ROLLCALL_TOKEN or --auth-file, or nothing would be protected' });
  }
  if ((c.tlsCert === undefined) !== (c.tlsKey === undefined)) {
    ctx.addIssue({ code: 'custom', path: [c.tlsCert === undefined ? 'tlsCert' : 'tlsKey'], message: '--tls-cert and --tls-key go together' });
  }
  if (c.tlsClientCa !== undefined && c.tlsCert === undefined) {
    ctx.addIssue({ code: 'custom', path: ['tlsClientCa'], message: 'needs --tls-cert and --tls-key (mutual TLS is TLS)' });
  }
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
  ROLLCALL_SERVICE_CIDR: 'serviceCidr',
  ROLLCALL_AUTH_FILE: 'authFile',
  ROLLCALL_PROTECT_OPS: 'protectOps',
  ROLLCALL_TLS_CERT: 'tlsCert',
  ROLLCALL_TLS_KEY: 'tlsKey',
  ROLLCALL_TLS_CLIENT_CA: 'tlsClientCa',
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
