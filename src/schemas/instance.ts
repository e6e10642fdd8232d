// The instance model, declared once: validation, TypeScript types and the OpenAPI spec all come from here.
import { isIP } from 'node:net';
import { z } from 'zod';

export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
// "." and ".." are refused: clients and proxies normalise them out of URLs, so such an instance could be
// registered but never addressed again.
export const INSTANCE_ID = /^(?!\.\.?$)[A-Za-z0-9._:-]{1,128}$/;
// RFC 1123 hostname: dot-separated labels of letters, digits and inner hyphens, 253 chars at most.
const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
// Text that ends up in logs, configs, terminals and dashboards must show what it is. Refused: control
// characters (Cc: newlines forge log lines), format characters (Cf: bidi overrides U+202A-202E and isolates
// U+2066-2069, LRM/RLM, zero-width characters, which make text display differently from what it is), line and
// paragraph separators (Zl, Zp), and lone surrogates (Cs), which SQLite's UTF-8 would silently replace.
const PLAIN_TEXT = /^[^\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]*$/u;
const PLAIN_TEXT_MESSAGE = 'must not contain control, format (bidi, zero-width) or separator characters';
const plainText = () => z.string().regex(PLAIN_TEXT, PLAIN_TEXT_MESSAGE);

export function isValidAddress(value: string): boolean {
  return isIP(value) !== 0 || HOSTNAME.test(value);
}

export const namespaceName = z
  .string()
  .regex(DNS_LABEL, 'must be a DNS-1123 label: 1-63 characters of a-z, 0-9 and "-", starting and ending alphanumeric')
  .meta({ description: 'DNS-1123 label', example: 'default' });

export const serviceName = z
  .string()
  .regex(DNS_LABEL, 'must be a DNS-1123 label: 1-63 characters of a-z, 0-9 and "-", starting and ending alphanumeric')
  .meta({ description: 'DNS-1123 label', example: 'payments' });

export const instanceId = z
  .string()
  .regex(INSTANCE_ID, 'must be 1-128 characters of A-Z, a-z, 0-9, ".", "_", ":" and "-", and not "." or ".."')
  .meta({ description: 'Instance id, unique within its service', example: 'payments-7f9c-1' });

export const instanceStatus = z.enum(['starting', 'up', 'draining', 'down']).meta({
  description: 'starting and down get no traffic; draining gets no new traffic; up is routable when weight > 0',
});

export const address = z
  .string()
  .max(253)
  // A zone id names an interface of one host; the nginx/HAProxy configs and other hosts cannot use it.
  .refine((v) => !v.includes('%'), 'must not carry an IPv6 zone id (%eth0): it names an interface of one host only')
  .refine(isValidAddress, 'must be an IPv4 address, an IPv6 address or a DNS hostname')
  .meta({ description: 'IPv4, IPv6 or DNS hostname', example: '10.0.0.12' });

export const port = z.int().min(1).max(65535).meta({ example: 8080 });
export const weight = z.int().min(0).max(256).meta({ description: '0 = no new traffic', example: 1 });
export const ttlSeconds = z.int().min(1).max(86400).meta({ description: 'Lease length in seconds', example: 30 });
export const zone = plainText().max(64).meta({ example: 'eu-west-1a' });
export const tags = z
  .array(plainText().min(1).max(64))
  .max(32)
  .meta({ example: ['http', 'v2'] });
export const metadata = z
  .record(plainText().min(1).max(128), plainText().max(1024))
  .refine((m) => Object.keys(m).length <= 64, 'must have at most 64 keys')
  .meta({ example: { version: '2.4.1' } });

export const DEFAULTS = { status: 'up', weight: 1, ttlSeconds: 30 } as const;

/** PUT body: a full registration. Fields left out take their defaults. */
export const registerBody = z
  .object({
    address,
    port,
    status: instanceStatus.optional(),
    weight: weight.optional(),
    zone: zone.nullable().optional(),
    tags: tags.optional(),
    metadata: metadata.optional(),
    ttlSeconds: ttlSeconds.optional(),
  })
  .strict()
  .meta({ id: 'RegisterInstance' });

/** PATCH body: only the fields given change. address and port identify the endpoint and are changed by PUT. */
export const patchBody = registerBody.omit({ address: true, port: true }).meta({ id: 'PatchInstance' });

export const instance = z
  .object({
    namespace: z.string(),
    service: z.string(),
    id: z.string(),
    address: z.string(),
    port: z.int(),
    status: instanceStatus,
    weight: z.int(),
    zone: z.string().nullable(),
    tags: z.array(z.string()),
    metadata: z.record(z.string(), z.string()),
    ttlSeconds: z.int(),
    registeredAt: z.string().meta({ description: 'ISO 8601 UTC' }),
    lastHeartbeatAt: z.string().meta({ description: 'ISO 8601 UTC' }),
    expiresAt: z.string().meta({ description: 'ISO 8601 UTC; the lease ends here unless renewed' }),
    revision: z.int().meta({ description: 'Registry revision of this instance\'s last change' }),
    createRevision: z.int().meta({ description: 'Registry revision at which this instance was registered' }),
    lapsed: z.boolean().optional().meta({
      description: 'Present (true) only while the lease has lapsed during self-preservation: kept listed, maybe still alive behind a partition',
    }),
    lapsedAt: z.string().nullable().optional().meta({ description: 'ISO 8601 UTC; when the lease lapsed (with lapsed)' }),
  })
  .meta({ id: 'Instance' });

export type RegisterInput = z.infer<typeof registerBody>;
export type PatchInput = z.infer<typeof patchBody>;
export type Instance = z.infer<typeof instance>;
export type InstanceStatus = z.infer<typeof instanceStatus>;

export const eventType = z.enum(['ADDED', 'MODIFIED', 'DELETED']);
// lapsed / recovered: a lease lapsed during self-preservation (kept, flagged) / a lapsed instance renewed.
export const eventReason = z.enum(['registered', 'updated', 'deregistered', 'expired', 'lapsed', 'recovered']);
export const registryEvent = z
  .object({ type: eventType, revision: z.int(), reason: eventReason, instance })
  .meta({ id: 'RegistryEvent' });
export type RegistryEvent = z.infer<typeof registryEvent>;
export type EventType = z.infer<typeof eventType>;
export type EventReason = z.infer<typeof eventReason>;

/** Routable = may get new traffic: status up and weight above zero. Shared by generators and client-side picking. */
export function isRoutable(i: Pick<Instance, 'status' | 'weight'>): boolean {
  return i.status === 'up' && i.weight > 0;
}
