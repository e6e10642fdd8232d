// The Service model (a stable virtual address in front of a service's instances), declared once: validation,
// TypeScript types and the OpenAPI spec all come from here.
import { isIP } from 'node:net';
import { z } from 'zod';
import { DNS_LABEL, port } from './instance.js';

/** At most this many ports per Service: far above any real use, low enough to keep rulesets and env small. */
export const MAX_SERVICE_PORTS = 64;

export const servicePortInput = z
  .object({
    name: z
      .string()
      .regex(DNS_LABEL, 'must be a DNS-1123 label: 1-63 characters of a-z, 0-9 and "-", starting and ending alphanumeric')
      .optional()
      .meta({ description: 'Required and unique when the Service has more than one port', example: 'http' }),
    port: port.meta({ description: 'The port clients connect to on the virtual IP', example: 80 }),
    targetPort: port
      .optional()
      .meta({ description: "The instances' port traffic goes to; omitted = each instance's registered port", example: 8080 }),
    protocol: z.literal('tcp').optional().meta({ description: 'Only tcp for now (the default)' }),
  })
  .strict();

/** PUT body: the whole Service. virtualIP omitted = allocate one (or keep the one it has). */
export const putServiceBody = z
  .object({
    ports: z.array(servicePortInput).min(1).max(MAX_SERVICE_PORTS),
    virtualIP: z
      .string()
      .refine((v) => isIP(v) !== 0, 'must be an IPv4 or IPv6 address')
      .optional()
      .meta({ description: 'Ask for this address (inside --service-cidr, free); omitted = allocated', example: '127.77.0.10' }),
  })
  .strict()
  .superRefine((body, ctx) => {
    // Shape rules that involve more than one port: unique ports, and names that tell them apart.
    const seenPorts = new Set<number>();
    const seenNames = new Set<string>();
    body.ports.forEach((p, i) => {
      if (seenPorts.has(p.port)) ctx.addIssue({ code: 'custom', path: ['ports', i, 'port'], message: `port ${p.port} is listed twice` });
      seenPorts.add(p.port);
      if (body.ports.length > 1 && p.name === undefined) {
        ctx.addIssue({ code: 'custom', path: ['ports', i, 'name'], message: 'is required when the Service has more than one port' });
      }
      if (p.name !== undefined) {
        if (seenNames.has(p.name)) ctx.addIssue({ code: 'custom', path: ['ports', i, 'name'], message: `name "${p.name}" is used twice` });
        seenNames.add(p.name);
      }
    });
  })
  .meta({ id: 'PutService' });

export const servicePort = z
  .object({
    name: z.string().nullable(),
    port: z.int(),
    targetPort: z.int().nullable().meta({ description: "null = each instance's registered port" }),
    protocol: z.literal('tcp'),
  })
  .meta({ id: 'ServicePort' });

export const service = z
  .object({
    namespace: z.string(),
    name: z.string(),
    virtualIP: z.string().meta({ description: 'Stable for the life of the Service', example: '127.77.0.1' }),
    ports: z.array(servicePort),
    revision: z.int().meta({ description: "Registry revision of this Service's last change" }),
    createRevision: z.int().meta({ description: 'Registry revision at which this Service was created' }),
    createdAt: z.string().meta({ description: 'ISO 8601 UTC' }),
  })
  .meta({ id: 'Service' });

export type PutServiceInput = z.infer<typeof putServiceBody>;
export type ServicePort = z.infer<typeof servicePort>;
export type Service = z.infer<typeof service>;

export const serviceEventReason = z.enum(['created', 'updated', 'deleted']);
export type ServiceEventReason = z.infer<typeof serviceEventReason>;
export const serviceEvent = z
  .object({ type: z.enum(['ADDED', 'MODIFIED', 'DELETED']), revision: z.int(), reason: serviceEventReason, service })
  .meta({ id: 'ServiceEvent' });
export type ServiceEvent = z.infer<typeof serviceEvent>;

/** What a watch can follow. Default instances only, so watchers from before Services see no change. */
export const WATCH_RESOURCES = ['instances', 'services'] as const;
export type WatchResource = (typeof WATCH_RESOURCES)[number];
