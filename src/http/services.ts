// Service routes: the catalog of a namespace, explicit Services (stable virtual IPs) and namespaces.
// Decode, one call into the registry, the answer.
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Metrics } from '../metrics.js';
import type { Registry } from '../registry/registry.js';
import { blockingQuery, errorResponses, namespaceList, namespaceParams, serviceList, serviceParams } from '../schemas/api.js';
import { putServiceBody, service } from '../schemas/service.js';
import type { WatchHub } from '../watch/hub.js';
import { awaitChange } from './long-poll.js';

const SERVICE_URL = '/v1/namespaces/:namespace/services/:service';

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
        description:
          'Every service name that has instances or an explicit Service. A Service with no instances lists with 0 counts; one with a Service also carries `virtualIP` and `ports`. With `index`, a blocking query that answers once an instance or a Service of this namespace changed after that revision.',
        params: namespaceParams,
        querystring: z.object(blockingQuery).strict(),
        response: { 200: serviceList, ...errorResponses(400, 401) },
      },
    },
    async (req, reply) => {
      const { namespace } = req.params;
      await awaitChange({ registry, hub, metrics, shutdown, reply }, { namespace, resources: ['instances', 'services'] }, req.query.index, req.query.wait);
      await registry.settled();
      const list = registry.services(namespace);
      return reply.header('x-rollcall-revision', String(list.revision)).send(list);
    },
  );

  app.put(
    SERVICE_URL,
    {
      config: { access: { action: 'admin', namespaceFrom: 'params' } },
      schema: {
        tags: ['services'],
        summary: 'Create a Service (a stable virtual IP for the service), or replace its ports',
        description: [
          'Creates the Service (201) or replaces its ports (200); an identical PUT changes nothing (200, no new revision).',
          'virtualIP is allocated from the registry\'s --service-cidr unless one inside it is asked for; it never changes for the life of the Service (409 virtual_ip_immutable for another one).',
          'targetPort omitted = each instance\'s registered port. Port names are DNS labels, required and unique when there is more than one port.',
        ].join(' '),
        params: serviceParams,
        body: putServiceBody,
        response: { 200: service, 201: service, ...errorResponses(400, 401, 409, 413, 415, 422) },
      },
    },
    async (req, reply) => {
      const { namespace, service: name } = req.params;
      const { service: saved, created } = await registry.putService(namespace, name, req.body);
      return reply.code(created ? 201 : 200).send(saved);
    },
  );

  app.get(
    SERVICE_URL,
    {
      config: { access: { action: 'read', namespaceFrom: 'params' } },
      schema: {
        tags: ['services'],
        summary: 'Get a Service',
        description:
          'With `index`, a blocking query: answers once this Service changed after that revision (or after `wait`); 404 when it does not exist by then.',
        params: serviceParams,
        querystring: z.object(blockingQuery).strict(),
        response: { 200: service, ...errorResponses(400, 401, 404) },
      },
    },
    async (req, reply) => {
      const { namespace, service: name } = req.params;
      await awaitChange({ registry, hub, metrics, shutdown, reply }, { namespace, service: name, resources: ['services'] }, req.query.index, req.query.wait);
      await registry.settled();
      return reply.header('x-rollcall-revision', String(registry.revision)).send(registry.getService(namespace, name));
    },
  );

  app.delete(
    SERVICE_URL,
    {
      config: { access: { action: 'admin', namespaceFrom: 'params' } },
      schema: {
        tags: ['services'],
        summary: 'Delete a Service and release its virtual IP (its instances stay registered)',
        params: serviceParams,
        response: { 204: z.null().meta({ description: 'Deleted' }), ...errorResponses(400, 401, 404) },
      },
    },
    async (req, reply) => {
      const { namespace, service: name } = req.params;
      await registry.deleteService(namespace, name);
      return reply.code(204).send(null);
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
