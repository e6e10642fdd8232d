import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Metrics } from '../metrics.js';
import type { Registry } from '../registry/registry.js';
import { blockingQuery, errorResponses, namespaceList, namespaceParams, serviceList } from '../schemas/api.js';
import type { WatchHub } from '../watch/hub.js';
import { awaitChange } from './long-poll.js';

export interface ServiceRoutesOptions {
  registry: Registry;
  hub: WatchHub;
  metrics: Metrics;
  shutdown: AbortSignal;
}

export const serviceRoutes: FastifyPluginAsyncZod<ServiceRoutesOptions> = async (app, { registry, hub, metrics, shutdown }) => {
  app.get(
    '/v1/namespaces/:namespace/services',
    {
      config: { access: { action: 'read', namespaceFrom: 'params' } },
      schema: {
        tags: ['services'],
        summary: 'List the services of a namespace with their instance counts',
        description: 'With `index`, a blocking query that answers once anything in this namespace changed after that revision.',
        params: namespaceParams,
        querystring: z.object(blockingQuery).strict(),
        response: { 200: serviceList, ...errorResponses(400, 401) },
      },
    },
    async (req, reply) => {
      const { namespace } = req.params;
      await awaitChange({ registry, hub, metrics, shutdown, reply }, { namespace }, req.query.index, req.query.wait);
      await registry.settled();
      const list = registry.services(namespace);
      return reply.header('x-rollcall-revision', String(list.revision)).send(list);
    },
  );

  app.get(
    '/v1/namespaces',
    {
      config: { access: { action: 'read' } },
      schema: {
        tags: ['services'],
        summary: 'List namespaces with their service and instance counts',
        response: { 200: namespaceList, ...errorResponses(401) },
      },
    },
    async (_req, reply) => {
      await registry.settled();
      const list = registry.namespaces();
      return reply.header('x-rollcall-revision', String(list.revision)).send(list);
    },
  );
};
