// The Eureka-compatible API under /eureka (and /eureka/v2, the path Netflix' own server and eureka-js-client
// default to): decode JSON or XML, one registry call, encode as Eureka does. Hidden from openapi.yaml: it is
// Eureka's protocol, documented by Eureka and in the README, not part of rollcall's own API.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { RollcallError } from '../../errors.js';
import type { Metrics } from '../../metrics.js';
import type { Registry } from '../../registry/registry.js';
import type { Instance } from '../../schemas/instance.js';
import type { WatchHub } from '../../watch/hub.js';
import { parseXml, toXml, wantsJson } from './codec.js';
import { createRecentChanges } from './delta.js';
import {
  EUREKA_PREFIX,
  EurekaError,
  appsHashcode,
  decodeInstance,
  overrideMetadata,
  toApplications,
  toEurekaInstance,
  toRollcallStatus,
  toServiceName,
  withOverride,
} from './mapping.js';

export interface EurekaRoutesOptions {
  registry: Registry;
  hub: WatchHub;
  metrics: Metrics;
  /** The rollcall namespace Eureka's flat app list maps onto. */
  namespace: string;
}

const PREFIXES = ['/eureka', '/eureka/v2'];

interface AppParams {
  app: string;
}
interface InstanceParams extends AppParams {
  id: string;
}

export const eurekaRoutes: FastifyPluginAsync<EurekaRoutesOptions> = async (app, { registry, hub, metrics, namespace }) => {
  const recent = createRecentChanges(hub, namespace);
  // Foreign protocol: left out of openapi.yaml (README documents it). Auth is the shared hook's, on the one
  // namespace this API serves; Eureka clients send the token as the Basic auth password (http://u:TOKEN@host).
  const READ = { schema: { hide: true }, config: { access: { action: 'read' as const, namespace } } };
  const WRITE = { schema: { hide: true }, config: { access: { action: 'write' as const, namespace } } };
  const RENEW = { schema: { hide: true }, config: { access: { action: 'write' as const, namespace, audit: 'debug' as const } } };
  app.addHook('onClose', async () => recent.close());

  // Eureka clients post JSON or XML; both become the same object ({instance: {...}}).
  app.addContentTypeParser(['application/xml', 'text/xml'], { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, parseXml(body as string));
    } catch (err) {
      done(new EurekaError(400, `Malformed XML: ${(err as Error).message}`), undefined);
    }
  });

  // Eureka answers errors as plain text; its clients only look at the status.
  app.setErrorHandler((err: Error & { statusCode?: number }, req, reply) => {
    // RollcallError (the shared auth hook's 401/403) carries `status`; Fastify's own errors carry statusCode.
    const own = err instanceof EurekaError ? err.statusCode : err instanceof RollcallError ? err.status : err.statusCode;
    const status = own !== undefined && own < 500 ? own : 500;
    if (status === 401) reply.header('www-authenticate', 'Basic realm="rollcall"');
    if (status >= 500) req.log.error({ err }, 'eureka request failed');
    const message = status < 500 ? err.message : 'rollcall: internal error; the server log has the details';
    return reply.code(status).type('text/plain; charset=utf-8').send(message);
  });

  function send(req: FastifyRequest, reply: FastifyReply, root: Record<string, unknown>) {
    if (wantsJson(req.headers.accept)) return reply.type('application/json').send(JSON.stringify(root));
    return reply.type('application/xml').send(toXml(root));
  }

  function serviceOf(appName: string): string {
    const service = toServiceName(appName);
    if (service === undefined) throw new EurekaError(404, `Unknown app "${appName}"`);
    return service;
  }

  function instanceOf(params: InstanceParams): Instance {
    const service = serviceOf(params.app);
    try {
      return registry.get(namespace, service, params.id);
    } catch {
      throw new EurekaError(404, `Unknown instance "${params.id}" of app "${params.app}"`);
    }
  }

  function all(): Instance[] {
    return registry.list({ namespace }).items;
  }

  function applications(instances: Instance[], hashcodeOf: Instance[] = instances) {
    return {
      applications: {
        versions__delta: String(registry.revision),
        apps__hashcode: appsHashcode(hashcodeOf),
        application: toApplications(instances),
      },
    };
  }

  for (const prefix of PREFIXES) {
    app.get(`${prefix}/apps`, READ, async (req, reply) => {
      await registry.settled();
      return send(req, reply, applications(all()));
    });

    // The changes of the last three minutes; the hashcode is the whole registry's, so a client can check
    // that its copy with the delta applied matches and refetch in full when it does not.
    app.get(`${prefix}/apps/delta`, READ, async (req, reply) => {
      await registry.settled();
      const changes = recent.list();
      const byApp = new Map<string, ReturnType<typeof toEurekaInstance>[]>();
      for (const c of changes) {
        const name = c.instance.service.toUpperCase();
        let list = byApp.get(name);
        if (!list) byApp.set(name, (list = []));
        list.push(toEurekaInstance(c.instance, c.actionType));
      }
      return send(req, reply, {
        applications: {
          versions__delta: String(registry.revision),
          apps__hashcode: appsHashcode(all()),
          application: [...byApp.entries()].map(([name, instance]) => ({ name, instance })),
        },
      });
    });

    app.get<{ Params: AppParams }>(`${prefix}/apps/:app`, READ, async (req, reply) => {
      await registry.settled();
      const service = serviceOf(req.params.app);
      const [application] = toApplications(registry.list({ namespace, service }).items);
      if (!application) throw new EurekaError(404, `Unknown app "${req.params.app}"`);
      return send(req, reply, { application });
    });

    app.get<{ Params: InstanceParams }>(`${prefix}/apps/:app/:id`, READ, async (req, reply) => {
      await registry.settled();
      return send(req, reply, { instance: toEurekaInstance(instanceOf(req.params)) });
    });

    app.get<{ Params: { id: string } }>(`${prefix}/instances/:id`, READ, async (req, reply) => {
      await registry.settled();
      const found = registry.findById(namespace, req.params.id);
      if (!found) throw new EurekaError(404, `Unknown instance "${req.params.id}"`);
      return send(req, reply, { instance: toEurekaInstance(found) });
    });

    for (const [kind, field] of [
      ['vips', 'vipAddress'],
      ['svips', 'secureVipAddress'],
    ] as const) {
      app.get<{ Params: { vip: string } }>(`${prefix}/${kind}/:vip`, READ, async (req, reply) => {
        await registry.settled();
        const instances = all();
        const matching = instances.filter((i) => (i.metadata[`${EUREKA_PREFIX}${field}`] ?? i.service).split(',').includes(req.params.vip));
        return send(req, reply, applications(matching, instances));
      });
    }

    app.post<{ Params: AppParams }>(`${prefix}/apps/:app`, WRITE, async (req, reply) => {
      const { service, id, input } = decodeInstance(req.params.app, req.body);
      let existing: Instance | undefined;
      try {
        existing = registry.get(namespace, service, id);
      } catch {
        existing = undefined;
      }
      const { created } = await registry.register(namespace, service, id, withOverride(input, existing));
      metrics.registrations.inc({ result: created ? 'created' : 'replaced' });
      return reply.code(204).send();
    });

    // Renew: 404 for an unknown or expired instance, so the client registers again.
    app.put<{ Params: InstanceParams }>(`${prefix}/apps/:app/:id`, RENEW, async (req, reply) => {
      const i = instanceOf(req.params);
      try {
        await registry.heartbeat(namespace, i.service, i.id);
      } catch (err) {
        if (!(err instanceof RollcallError) || err.code !== 'instance_not_found') throw err;
        metrics.heartbeats.inc({ result: 'not_found' });
        throw new EurekaError(404, `Unknown instance "${req.params.id}" of app "${req.params.app}"`);
      }
      metrics.heartbeats.inc({ result: 'ok' });
      return reply.code(200).send();
    });

    app.delete<{ Params: InstanceParams }>(`${prefix}/apps/:app/:id`, WRITE, async (req, reply) => {
      const i = instanceOf(req.params);
      await registry.deregister(namespace, i.service, i.id);
      metrics.deregistrations.inc();
      return reply.code(200).send();
    });

    // Status override (e.g. OUT_OF_SERVICE to take an instance out of rotation); kept across re-registrations.
    app.put<{ Params: InstanceParams; Querystring: { value?: string } }>(`${prefix}/apps/:app/:id/status`, WRITE, async (req, reply) => {
      const i = instanceOf(req.params);
      const value = (req.query.value ?? '').toUpperCase();
      const status = toRollcallStatus(value);
      if (status === undefined || value === 'UNKNOWN') throw new EurekaError(400, `Invalid status "${req.query.value ?? ''}": UP, DOWN, STARTING or OUT_OF_SERVICE`);
      await registry.patch(namespace, i.service, i.id, { status, metadata: overrideMetadata(i, value) });
      return reply.code(200).send();
    });

    // Removing the override: the instance falls back to ?value= (Eureka's suggestion), UP when not given.
    app.delete<{ Params: InstanceParams; Querystring: { value?: string } }>(`${prefix}/apps/:app/:id/status`, WRITE, async (req, reply) => {
      const i = instanceOf(req.params);
      const status = toRollcallStatus(req.query.value ?? 'UP');
      if (status === undefined) throw new EurekaError(400, `Invalid status "${req.query.value ?? ''}"`);
      await registry.patch(namespace, i.service, i.id, { status, metadata: overrideMetadata(i, undefined) });
      return reply.code(200).send();
    });

    // PUT …/metadata?key=value: adds or replaces metadata entries.
    app.put<{ Params: InstanceParams; Querystring: Record<string, string> }>(`${prefix}/apps/:app/:id/metadata`, WRITE, async (req, reply) => {
      const i = instanceOf(req.params);
      const updates = Object.entries(req.query);
      if (updates.some(([k]) => k.startsWith(EUREKA_PREFIX) || k === '')) throw new EurekaError(400, `Metadata keys starting with "${EUREKA_PREFIX}" are reserved`);
      await registry.patch(namespace, i.service, i.id, { metadata: { ...i.metadata, ...Object.fromEntries(updates.map(([k, v]) => [k, String(v)])) } });
      return reply.code(200).send();
    });
  }
};
