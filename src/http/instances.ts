// Instance routes: decode, one call into the registry, the answer.
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Metrics } from '../metrics.js';
import type { Registry } from '../registry/registry.js';
import { RollcallError } from '../errors.js';
import { errorResponses, instanceList, instanceParams, listInstancesQuery, parseWait, serviceParams } from '../schemas/api.js';
import { instance, patchBody, registerBody } from '../schemas/instance.js';
import type { WatchHub } from '../watch/hub.js';
import { awaitChange } from './long-poll.js';

/** How long a list with minRevision waits for this replica to apply it, unless `wait` says otherwise. */
const MIN_REVISION_WAIT_MS = 10_000;

export interface InstanceRoutesOptions {
  registry: Registry;
  hub: WatchHub;
  metrics: Metrics;
  shutdown: AbortSignal;
}

const INSTANCE_URL = '/v1/namespaces/:namespace/services/:service/instances/:id';

export const instanceRoutes: FastifyPluginAsyncZod<InstanceRoutesOptions> = async (app, { registry, hub, metrics, shutdown }) => {
  app.put(
    INSTANCE_URL,
    {
      config: { access: { action: 'write', namespaceFrom: 'params' } },
      schema: {
        tags: ['instances'],
        summary: 'Register an instance, or replace its registration',
        description:
          'Creates the instance (201) or replaces an existing registration (200). Fields left out take their defaults: status up, weight 1, ttlSeconds 30, tags [], metadata {}. An identical registration only renews the lease.',
        params: instanceParams,
        body: registerBody,
        response: { 200: instance, 201: instance, ...errorResponses(400, 401, 413, 415, 503) },
      },
    },
    async (req, reply) => {
      const { namespace, service, id } = req.params;
      const { instance: saved, created } = await registry.register(namespace, service, id, req.body);
      metrics.registrations.inc({ result: created ? 'created' : 'replaced' });
      return reply.code(created ? 201 : 200).send(saved);
    },
  );

  app.put(
    `${INSTANCE_URL}/heartbeat`,
    {
      config: { access: { action: 'write', namespaceFrom: 'params', audit: 'debug' } },
      schema: {
        tags: ['instances'],
        summary: 'Renew the lease',
        description: 'Answers 404 when the instance is unknown or its lease already ended: the caller then registers again. A heartbeat is not a change: no revision, no event, except for an instance flagged lapsed by self-preservation, which it brings back (MODIFIED, reason recovered; refused with 503 storage_full when the disk is full).',
        params: instanceParams,
        response: { 200: instance, ...errorResponses(400, 401, 404, 503) },
      },
    },
    async (req) => {
      const { namespace, service, id } = req.params;
      try {
        const renewed = await registry.heartbeat(namespace, service, id);
        metrics.heartbeats.inc({ result: 'ok' });
        metrics.leaseRenewals.inc({ transport: 'http', result: 'ok' });
        return renewed;
      } catch (err) {
        metrics.heartbeats.inc({ result: 'not_found' });
        metrics.leaseRenewals.inc({ transport: 'http', result: 'not_found' });
        throw err;
      }
    },
  );

  app.patch(
    INSTANCE_URL,
    {
      config: { access: { action: 'write', namespaceFrom: 'params' } },
      schema: {
        tags: ['instances'],
        summary: 'Update status, weight, zone, tags, metadata or ttlSeconds',
        description: 'Only the fields given change. Also renews the lease. zone: null clears the zone.',
        params: instanceParams,
        body: patchBody,
        response: { 200: instance, ...errorResponses(400, 401, 404, 413, 415, 503) },
      },
    },
    async (req) => {
      const { namespace, service, id } = req.params;
      return registry.patch(namespace, service, id, req.body);
    },
  );

  app.delete(
    INSTANCE_URL,
    {
      config: { access: { action: 'write', namespaceFrom: 'params' } },
      schema: {
        tags: ['instances'],
        summary: 'Deregister an instance',
        params: instanceParams,
        response: { 204: z.null().meta({ description: 'Deregistered' }), ...errorResponses(400, 401, 404, 503) },
      },
    },
    async (req, reply) => {
      const { namespace, service, id } = req.params;
      await registry.deregister(namespace, service, id);
      metrics.deregistrations.inc();
      return reply.code(204).send(null);
    },
  );

  app.get(
    INSTANCE_URL,
    {
      config: { access: { action: 'read', namespaceFrom: 'params' } },
      schema: {
        tags: ['instances'],
        summary: 'Get one instance',
        params: instanceParams,
        response: { 200: instance, ...errorResponses(400, 401, 404) },
      },
    },
    async (req) => {
      const { namespace, service, id } = req.params;
      await registry.settled();
      return registry.get(namespace, service, id);
    },
  );

  app.get(
    '/v1/namespaces/:namespace/services/:service/instances',
    {
      config: { access: { action: 'read', namespaceFrom: 'params' } },
      schema: {
        tags: ['instances'],
        summary: 'List the instances of a service',
        description:
          'An unknown service lists empty. With `index`, a blocking query: answers as soon as this service changed after revision `index`, else after `wait`. The X-Rollcall-Revision header carries the revision.',
        params: serviceParams,
        querystring: listInstancesQuery,
        response: { 200: instanceList, ...errorResponses(400, 401, 504) },
      },
    },
    async (req, reply) => {
      const { namespace, service } = req.params;
      const { status, tag, zone, index, wait, minRevision } = req.query;
      if (minRevision !== undefined && !(await registry.waitForRevision(minRevision, wait === undefined ? MIN_REVISION_WAIT_MS : parseWait(wait)!))) {
        throw new RollcallError(
          'revision_not_reached',
          `This replica has applied revision ${registry.revision}, not yet ${minRevision}; retry, or ask the replica that wrote it.`,
        );
      }
      await awaitChange({ registry, hub, metrics, shutdown, reply }, { namespace, service }, index, wait);
      await registry.settled();
      const list = registry.list({
        namespace,
        service,
        ...(status === undefined ? {} : { status }),
        ...(tag === undefined ? {} : { tag }),
        ...(zone === undefined ? {} : { zone }),
      });
      return reply.header('x-rollcall-revision', String(list.revision)).send(list);
    },
  );
};
