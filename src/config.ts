// Server configuration: one zod schema for flags and environment, with coercion and defaults. Pure.
import { isIP } from 'node:net';
import { z } from 'zod';
import { RollcallError } from './errors.js';
import { DEFAULT_SERVICE_CIDR } from './registry/services.js';
import { parseCidr } from './registry/virtual-ips.js';

const MiB = 1024 * 1024;
// A domain of 1-63 character labels of a-z, 0-9 and inner hyphens (or "_"), dot-terminated, 253 characters at most.
const DNS_ZONE = /^(?=.{2,254}$)([a-z0-9_]([-a-z0-9_]{0,61}[a-z0-9_])?\.)+$/;

/** Parses HOST:PORT or [IPV6]:PORT for an extra listener (port 0 picks a free one); undefined when malformed. */
export function parseHostPort(value: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value);
  if (!m) return undefined;
  const host = m[1] ?? m[2]!;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  if (m[1] !== undefined && isIP(host) !== 6) return undefined;
  return { host, port };
}
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
  // Services (stable virtual addresses)
  /** The range Services' virtual IPs come from; loopback by default so it works on one machine without root. */
  serviceCidr: z
    .string()
    .default(DEFAULT_SERVICE_CIDR)
    .superRefine((v, ctx) => {
      const parsed = parseCidr(v);
      if (typeof parsed === 'string') ctx.addIssue({ code: 'custom', message: parsed });
    }),
  // Compatibility APIs (issue 11).
  /** HOST:PORT of the Consul-compatible listener; off unless given. */
  consulListen: z
    .string()
    .refine((v) => parseHostPort(v) !== undefined, 'must be HOST:PORT or [IPV6]:PORT, e.g. 127.0.0.1:8500')
    .optional(),
  /** The datacenter name the Consul API reports (and accepts in ?dc=). */
  consulDatacenter: z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, 'must be 1-64 characters of letters, digits, "_" and "-"').default('dc1'),
  /** The rollcall namespace the Eureka API serves: Eureka has no namespaces. */
  eurekaNamespace: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'must be a DNS-1123 label')
    .default('default'),

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

  // Self-preservation: lapses are counted over protectWindow; past protectThreshold percent of the instances
  // (and at least protectMinLapses) lapsed instances are kept, flagged, for at most protectMax.
  protectWindow: duration.pipe(z.number().int().min(100)).default(60_000),
  /** 100 turns self-preservation off. */
  protectThreshold: z.coerce.number().min(0).max(100).default(15),
  protectMax: duration.pipe(z.number().int().min(100)).default(600_000),
  protectMinLapses: z.coerce.number().int().min(1).default(3),

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

  // Storage backend (README "High availability on etcd"): sqlite (one process, the default) or etcd (several
  // stateless replicas over one etcd cluster).
  store: z.enum(['sqlite', 'etcd']).default('sqlite'),
  /** etcd client URLs, comma-separated (http:// or https://). */
  etcdEndpoints: z
    .union([z.string(), z.array(z.string())])
    .transform((v) => (Array.isArray(v) ? v : v.split(',')).map((e) => e.trim()).filter((e) => e !== ''))
    .pipe(z.array(z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' })).min(1, 'needs at least one URL'))
    .default(['http://127.0.0.1:2379']),
  /** Every key rollcall writes lives under this prefix: several registries can share one etcd cluster. */
  etcdPrefix: z
    .string()
    .regex(/^\/[A-Za-z0-9_./-]*[A-Za-z0-9_.-]$/, 'must start with "/", not end with "/", and use letters, digits, "_", ".", "-" and "/"')
    .default('/rollcall'),
  /** PEM CA bundle that signed the etcd members' certificates (https:// endpoints). */
  etcdCa: z.string().min(1).optional(),
  /** PEM client certificate and key, for etcd clusters that require client certificates. */
  etcdCert: z.string().min(1).optional(),
  etcdKey: z.string().min(1).optional(),
  /** etcd user and password, for clusters with authentication on. */
  etcdUsername: z.string().min(1).optional(),
  etcdPassword: z.string().min(1).optional(),
  /** An etcd call that takes longer fails: writes answer 503 store_unavailable instead of hanging. */
  etcdTimeout: duration.pipe(z.number().int().min(100).max(600_000)).default(5000),
  /** How often the elected replica compacts etcd's history to the last historySize revisions. */
  etcdCompactInterval: duration.pipe(z.number().int().min(100)).default(300_000),
}).refine((c) => c.headersTimeoutMs <= c.requestTimeoutMs, {
  message: 'must not exceed requestTimeoutMs (the headers are part of the request)',
  path: ['headersTimeoutMs'],
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
  if ((c.etcdCert === undefined) !== (c.etcdKey === undefined)) {
    ctx.addIssue({ code: 'custom', path: [c.etcdCert === undefined ? 'etcdCert' : 'etcdKey'], message: '--etcd-cert and --etcd-key go together' });
  }
  if ((c.etcdUsername === undefined) !== (c.etcdPassword === undefined)) {
    ctx.addIssue({ code: 'custom', path: [c.etcdUsername === undefined ? 'etcdUsername' : 'etcdPassword'], message: '--etcd-username and ROLLCALL_ETCD_PASSWORD go together' });
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
  ROLLCALL_CONSUL_LISTEN: 'consulListen',
  ROLLCALL_CONSUL_DATACENTER: 'consulDatacenter',
  ROLLCALL_EUREKA_NAMESPACE: 'eurekaNamespace',
  ROLLCALL_MAX_CONNECTIONS: 'maxConnections',
  ROLLCALL_MAX_WATCHERS: 'maxWatchers',
  ROLLCALL_HEADERS_TIMEOUT_MS: 'headersTimeoutMs',
  ROLLCALL_REQUEST_TIMEOUT_MS: 'requestTimeoutMs',
  ROLLCALL_KEEP_ALIVE_TIMEOUT_MS: 'keepAliveTimeoutMs',
  ROLLCALL_CONNECTION_TIMEOUT_MS: 'connectionTimeoutMs',
  ROLLCALL_PROTECT_WINDOW: 'protectWindow',
  ROLLCALL_PROTECT_THRESHOLD: 'protectThreshold',
  ROLLCALL_PROTECT_MAX: 'protectMax',
  ROLLCALL_PROTECT_MIN_LAPSES: 'protectMinLapses',
  ROLLCALL_DNS_LISTEN: 'dnsListen',
  ROLLCALL_DNS_DOMAIN: 'dnsDomain',
  ROLLCALL_DNS_TTL: 'dnsTtl',
  ROLLCALL_DNS_NS: 'dnsNs',
  ROLLCALL_AUTH_FILE: 'authFile',
  ROLLCALL_PROTECT_OPS: 'protectOps',
  ROLLCALL_TLS_CERT: 'tlsCert',
  ROLLCALL_TLS_KEY: 'tlsKey',
  ROLLCALL_TLS_CLIENT_CA: 'tlsClientCa',
  ROLLCALL_STORE: 'store',
  ROLLCALL_ETCD_ENDPOINTS: 'etcdEndpoints',
  ROLLCALL_ETCD_PREFIX: 'etcdPrefix',
  ROLLCALL_ETCD_CA: 'etcdCa',
  ROLLCALL_ETCD_CERT: 'etcdCert',
  ROLLCALL_ETCD_KEY: 'etcdKey',
  ROLLCALL_ETCD_USERNAME: 'etcdUsername',
  ROLLCALL_ETCD_PASSWORD: 'etcdPassword',
  ROLLCALL_ETCD_TIMEOUT: 'etcdTimeout',
  ROLLCALL_ETCD_COMPACT_INTERVAL: 'etcdCompactInterval',
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
