import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Metrics } from '../metrics.js';
import type { Registry } from '../registry/registry.js';
import { errorResponses } from '../schemas/api.js';

export interface OpsRoutesOptions {
  registry: Registry;
  metrics: Metrics;
  /** Null when ready; otherwise why not (database closed, migrations pending). */
  notReadyReason: () => string | null;
}

export const opsRoutes: FastifyPluginAsyncZod<OpsRoutesOptions> = async (app, { registry, metrics, notReadyReason }) => {
  app.get(
    '/healthz',
    {
      config: { access: 'ops' },
      schema: {
        tags: ['ops'],
        summary: 'Liveness: the process answers',
        response: { 200: z.object({ status: z.literal('ok') }) },
      },
    },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/readyz',
    {
      config: { access: 'ops' },
      schema: {
        tags: ['ops'],
        summary: 'Readiness: database open and every migration applied',
        description:
          'Also answers what a dashboard shows beside readiness: the current revision, the oldest revision a watcher can still resume from (sinceRevision below it answers revision_compacted), and how many watchers are connected. Self-preservation does not make the registry unready (it still serves); `protection` says whether it is on.',
        response: {
          200: z.object({
            status: z.literal('ready'),
            revision: z.int(),
            protection: z.object({
              active: z.boolean(),
              since: z.string().nullable().meta({ description: 'ISO 8601 UTC, while active' }),
              lapsed: z.int().meta({ description: 'Instances kept with a lapsed lease' }),
            }),
            compactedRevision: z.int().meta({ description: 'Oldest resumable revision: watch with sinceRevision >= this' }),
            watchers: z.int().meta({ description: 'Watch streams connected now (WebSocket and SSE), as rollcall_watchers' }),
          }),
          ...errorResponses(503),
        },
      },
    },
    async (_req, reply) => {
      const reason = notReadyReason();
      if (reason) return reply.code(503).send({ error: 'not_ready', message: reason });
      const watchers = (await metrics.watchers.get()).values.reduce((sum, v) => sum + v.value, 0);
      return reply.send({
        status: 'ready' as const,
        revision: registry.revision,
        compactedRevision: registry.compactedRevision(),
        watchers,
        protection: registry.protection(),
      });
    },
  );

  app.get(
    '/metrics',
    {
      config: { access: 'ops' },
      schema: {
        tags: ['ops'],
        summary: 'Prometheus metrics (text exposition format)',
        produces: ['text/plain'],
      },
    },
    async (_req, reply) => {
      metrics.instances.reset();
      for (const row of registry.countByStatus()) {
        metrics.instances.set({ namespace: row.namespace, service: row.service, status: row.status }, row.count);
      }
      metrics.revision.set(registry.revision);
      const ips = registry.serviceCidrUsage();
      metrics.virtualIpsUsed.set(ips.used);
      metrics.virtualIpsCapacity.set(ips.capacity);
      const protection = registry.protection();
      metrics.protectionActive.set(protection.active ? 1 : 0);
      metrics.lapsedInstances.set(protection.lapsed);
      return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
    },
  );

  app.get('/openapi.json', { config: { access: 'ops' }, schema: { hide: true } }, async () => app.swagger());
  app.get('/openapi.yaml', { config: { access: 'ops' }, schema: { hide: true } }, async (_req, reply) => reply.type('application/yaml').send(app.swagger({ yaml: true })));
};
