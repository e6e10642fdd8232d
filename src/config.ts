// Server configuration: one zod schema for flags and environment, with coercion and defaults. Pure.
import { z } from 'zod';
import { RollcallError } from './errors.js';

const MiB = 1024 * 1024;
// A domain of 1-63 character labels of a-z, 0-9 and inner hyphens (or "_"), dot-terminated, 253 characters at most.
const DNS_ZONE = /^(?=.{2,254}$)([a-z0-9_]([-a-z0-9_]{0,61}[a-z0-9_])?\.)+$/;

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

  // DNS (src/dns): off unless dnsListen is given.
  /** host:port (or [v6]:port) for DNS over UDP and TCP on the same port; port 0 picks a free one. */
  dnsListen: z
    .string()
    .regex(/^(\[[0-9a-fA-F:.]+\]|[^:\s[\]]+):\d{1,5}$/, 'must be host:port or [ipv6]:port')
    .refine((v) => Number(v.slice(v.lastIndexOf(':') + 1)) <= 65535, 'port must be 0-65535')
    .optional(),
  /** The zone rollcall is authoritative for. */
  dnsDomain: z
    .string()
    .transform((d) => `${d.toLowerCase().replace(/\.$/, '')}.`)
    .pipe(z.string().regex(DNS_ZONE, 'must be a domain of DNS labels, e.g. rollcall. or svc.example.'))
    .default('rollcall.'),
  /** TTL of positive answers; also the SOA minimum, so the TTL of negative answers. 0 = do not cache. */
  dnsTtl: z.coerce.number().int().min(0).max(86400).default(5),
  /** The name server named in NS and SOA; default ns.<domain>. */
  dnsNs: z
    .string()
    .transform((d) => `${d.toLowerCase().replace(/\.$/, '')}.`)
    .pipe(z.string().regex(DNS_ZONE, 'must be a host name'))
    .optional(),
  /** An idle DNS-over-TCP connection is closed after this long. */
  dnsTcpIdleMs: z.coerce.number().int().min(100).default(10_000),
  /** Open DNS-over-TCP connections at most; more are closed at once. */
  dnsTcpMaxConnections: z.coerce.number().int().min(1).default(256),
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
  ROLLCALL_DNS_LISTEN: 'dnsListen',
  ROLLCALL_DNS_DOMAIN: 'dnsDomain',
  ROLLCALL_DNS_TTL: 'dnsTtl',
  ROLLCALL_DNS_NS: 'dnsNs',
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
