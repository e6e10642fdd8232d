// Request and response shapes of the HTTP API, declared once for validation, types and OpenAPI.
import { z } from 'zod';
import { instance, instanceId, instanceStatus, namespaceName, serviceName } from './instance.js';
import { servicePort, WATCH_RESOURCES, type WatchResource } from './service.js';

export const errorBody = z
  .object({
    error: z.string().meta({ description: 'Stable machine-readable code', example: 'validation_failed' }),
    message: z.string().meta({ description: 'A sentence a person understands' }),
    details: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  })
  .meta({ id: 'Error' });

export const namespaceParams = z.object({ namespace: namespaceName });
export const serviceParams = z.object({ namespace: namespaceName, service: serviceName });
export const instanceParams = z.object({ namespace: namespaceName, service: serviceName, id: instanceId });

const DURATION = /^(\d{1,7})(ms|s|m)$/;
const MAX_WAIT_MS = 5 * 60_000;

/** Parses a long-poll wait like `500ms`, `10s` or `1m`; undefined when malformed or over 5 minutes. */
export function parseWait(value: string): number | undefined {
  const m = DURATION.exec(value);
  if (!m) return undefined;
  const ms = Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 's' ? 1000 : 60_000);
  return ms <= MAX_WAIT_MS ? ms : undefined;
}

export const blockingQuery = {
  index: z.coerce
    .number()
    .int()
    .min(0)
    .optional()
    .meta({ description: 'Blocking query: answer once the result changed after this revision (or after `wait`)' }),
  wait: z
    .string()
    .refine((v) => parseWait(v) !== undefined, 'must be a duration like 500ms, 10s or 1m, at most 5m')
    .optional()
    .meta({ description: 'How long a blocking query waits at most (default 30s, max 5m)', example: '30s' }),
};

export const listInstancesQuery = z
  .object({
    status: instanceStatus.optional(),
    tag: z.string().min(1).max(64).optional(),
    zone: z.string().min(1).max(64).optional(),
    ...blockingQuery,
    minRevision: z.coerce
      .number()
      .int()
      .min(0)
      .optional()
      .meta({
        description:
          'Read-your-writes across replicas (etcd backend): answer only once this replica has applied this revision, waiting at most `wait` (default 10s); else 504 revision_not_reached',
      }),
  })
  .strict();

export const instanceList = z
  .object({
    revision: z.int().meta({ description: 'Registry-wide revision at which the answer is consistent' }),
    items: z.array(instance),
  })
  .meta({ id: 'InstanceList' });

export const serviceList = z
  .object({
    revision: z.int(),
    items: z.array(
      z.object({
        name: z.string(),
        instances: z.int(),
        up: z.int(),
        virtualIP: z.string().optional().meta({ description: 'Only when the service has an explicit Service (PUT …/services/{service})' }),
        ports: z.array(servicePort).optional().meta({ description: 'Only when the service has an explicit Service' }),
      }),
    ),
  })
  .meta({ id: 'ServiceList' });

export const namespaceList = z
  .object({
    revision: z.int(),
    items: z.array(z.object({ name: z.string(), services: z.int(), instances: z.int() })),
  })
  .meta({ id: 'NamespaceList' });

const RESOURCES_LIST = new RegExp(`^(${WATCH_RESOURCES.join('|')})(,(${WATCH_RESOURCES.join('|')}))*$`);

/** The `resources` query parameter as a list without repeats; instances only when absent. */
export function parseResources(value: string | undefined): WatchResource[] {
  if (value === undefined) return ['instances'];
  return [...new Set(value.split(',') as WatchResource[])];
}

export const watchQuery = z
  .object({
    namespace: namespaceName.optional().meta({ description: 'Omit to watch every namespace' }),
    service: serviceName.optional().meta({ description: 'Needs namespace; omit to watch every service of the namespace' }),
    sinceRevision: z.coerce
      .number()
      .int()
      .min(0)
      .optional()
      .meta({ description: 'Resume: every matching event after this revision, then live events; no snapshot' }),
    resources: z
      .string()
      .regex(RESOURCES_LIST, `must be a comma-separated list of ${WATCH_RESOURCES.join(' and ')}`)
      .optional()
      .meta({ description: 'What to follow: `instances` (the default), `services`, or `services,instances`', example: 'services,instances' }),
    bookmarkSeconds: z.coerce
      .number()
      .int()
      .min(1)
      .max(300)
      .default(15)
      .meta({ description: 'Send a BOOKMARK after this many seconds without events' }),
  })
  .strict()
  .refine((q) => q.service === undefined || q.namespace !== undefined, {
    message: 'service needs namespace',
    path: ['service'],
  });

/** Standard error responses for the docs: every 4xx/5xx body is an Error. */
export function errorResponses<S extends number>(...statuses: S[]): Record<S, typeof errorBody> {
  return Object.fromEntries(statuses.map((s) => [s, errorBody])) as Record<S, typeof errorBody>;
}
