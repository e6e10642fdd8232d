// GET /v1/sd/prometheus: Prometheus HTTP service discovery. Decode the query, one registry read, encode.
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Registry } from '../../registry/registry.js';
import { errorResponses } from '../../schemas/api.js';
import { instanceStatus, isRoutable, namespaceName, serviceName, type Instance } from '../../schemas/instance.js';
import { toTargetGroups } from './targets.js';

const STATUSES = instanceStatus.options;

const sdQuery = z
  .object({
    namespace: namespaceName.optional().meta({ description: 'Only this namespace (default: every namespace)' }),
    service: serviceName.optional().meta({ description: 'Only this service; needs namespace' }),
    status: z
      .string()
      .refine(
        (v) => v === 'any' || v.split(',').every((s) => (STATUSES as readonly string[]).includes(s)),
        `must be "any" or a comma list of ${STATUSES.join(', ')}`,
      )
      .optional()
      .meta({
        description: 'Widen the default (routable instances only: status up and weight > 0) to these statuses, or "any"',
        example: 'up,draining',
      }),
    tag: z.string().min(1).max(64).optional().meta({ description: 'Only instances carrying this tag' }),
  })
  .strict()
  .refine((q) => q.service === undefined || q.namespace !== undefined, { message: 'service needs namespace', path: ['service'] });

const targetGroups = z
  .array(
    z.object({
      targets: z.array(z.string()).meta({ example: ['10.0.0.12:8080'] }),
      labels: z.record(z.string(), z.string()).meta({
        example: { __meta_rollcall_namespace: 'default', __meta_rollcall_service: 'payments', __meta_rollcall_tags: ',http,v2,' },
      }),
    }),
  )
  .meta({ id: 'PrometheusTargetGroups' });

export interface PrometheusSdOptions {
  registry: Pick<Registry, 'snapshot' | 'settled'>;
}

export const prometheusSdRoutes: FastifyPluginAsyncZod<PrometheusSdOptions> = async (app, { registry }) => {
  app.get(
    '/v1/sd/prometheus',
    {
      // Without ?namespace= the targets span every namespace: that needs a token whose scope is `*`.
      config: { access: { action: 'read', namespaceFrom: 'query' } },
      schema: {
        tags: ['discovery'],
        summary: 'Scrape targets for Prometheus http_sd_configs',
        description:
          'One target group per instance, labelled `__meta_rollcall_namespace`, `_service`, `_instance_id`, `_address`, `_port`, `_zone`, `_status`, `_weight`, `_tags` (comma-joined with a leading and trailing comma) and `__meta_rollcall_metadata_<key>` (key sanitized to [a-zA-Z0-9_]). By default only routable instances (status up, weight > 0); `status` widens the set.',
        querystring: sdQuery,
        response: { 200: targetGroups, ...errorResponses(400, 401) },
      },
    },
    async (req) => {
      const { namespace, service, status, tag } = req.query;
      await registry.settled();
      const wanted = status === undefined || status === 'any' ? undefined : new Set(status.split(','));
      const keep = (i: Instance) =>
        (status === undefined ? isRoutable(i) : wanted === undefined || wanted.has(i.status)) && (tag === undefined || i.tags.includes(tag));
      const { items } = registry.snapshot({
        ...(namespace === undefined ? {} : { namespace }),
        ...(service === undefined ? {} : { service }),
      });
      return toTargetGroups(items.filter(keep));
    },
  );
};
