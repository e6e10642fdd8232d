// The Consul-compatible listener: Consul's HTTP paths under /v1, decoded, one registry call each, encoded as
// Consul does (JSON bodies, X-Consul-* headers, plain-text errors). Its own Fastify instance on its own port.
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import { bearerToken, type Credentials } from '../../auth/credentials.js';
import { missingScope } from '../../auth/rules.js';
import type { Metrics } from '../../metrics.js';
import type { Registry } from '../../registry/registry.js';
import { DNS_LABEL, type Instance, type InstanceStatus } from '../../schemas/instance.js';
import type { WatchFilter, WatchHub } from '../../watch/hub.js';
import { parseGoDuration } from './duration.js';
import { parseFilter } from './filter.js';
import {
  CHECK_ID_KEY,
  CHECK_STATE_KEY,
  ConsulError,
  agentService,
  aggregatedStatus,
  catalogService,
  checkIdOf,
  checkStatusOf,
  decodeRegistration,
  healthChecks,
  nodeJson,
  serfHealth,
  serviceEntry,
  statusForCheck,
  toServiceName,
  type CheckStatus,
  type NodeInfo,
} from './mapping.js';

export interface ConsulServerOptions {
  registry: Registry;
  hub: WatchHub;
  metrics: Metrics;
  /** Aborted when the registry shuts down: waiting blocking queries answer at once. */
  shutdown: AbortSignal;
  node: NodeInfo;
  /**
   * The registry's credentials (ROLLCALL_TOKEN, --auth-file), null when auth is off. A request carries its token
   * as Consul clients do (X-Consul-Token, Authorization: Bearer or ?token=); reads need read, writes write, on
   * the request's namespace (?ns=, else default).
   */
  credentials: (() => Credentials) | null;
  /** A request failed on rollcall's side (a 5xx): the server logs it; the client gets no details. */
  onError?: (err: unknown) => void;
}

// Consul's blocking-query bounds: 5 minutes unless asked, 10 at most, plus up to wait/16 of jitter so that
// many watchers that started together do not all come back in the same instant.
const DEFAULT_WAIT_MS = 5 * 60_000;
const MAX_WAIT_MS = 10 * 60_000;
const VERSION = '1.15.0';

type Query = Record<string, string | string[] | undefined>;

function one(q: Query, name: string): string | undefined {
  const v = q[name];
  return Array.isArray(v) ? v[v.length - 1] : v;
}

function many(q: Query, name: string): string[] {
  const v = q[name];
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

/** A boolean query flag as Consul reads it: present without a value means true. */
function flag(q: Query, name: string): boolean {
  const v = one(q, name);
  if (v === undefined) return false;
  if (v === '' || /^(1|t|true)$/i.test(v)) return true;
  if (/^(0|f|false)$/i.test(v)) return false;
  throw new ConsulError(400, `Invalid value for ?${name}: ${v}`);
}

export async function buildConsulServer(options: ConsulServerOptions) {
  const { registry, hub, metrics, shutdown, node, credentials } = options;
  const app = Fastify({ logger: false, bodyLimit: 1024 * 1024, routerOptions: { maxParamLength: 256 } });

  // Consul clients send JSON with or without a content type, and PUTs with no body at all.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => {
    if (body === '') return done(null, undefined);
    try {
      done(null, JSON.parse(body as string));
    } catch (err) {
      done(new ConsulError(400, `Request decode failed: ${(err as Error).message}`), undefined);
    }
  });

  app.setErrorHandler((err: Error & { statusCode?: number }, _req, reply) => {
    const status = err instanceof ConsulError ? err.statusCode : err.statusCode !== undefined && err.statusCode < 500 ? err.statusCode : 500;
    if (status >= 500) options.onError?.(err);
    const message = err instanceof ConsulError || status < 500 ? err.message : 'rollcall: internal error; the server log has the details';
    return reply.code(status).type('text/plain; charset=utf-8').send(message);
  });
  // Same latency histogram as the main listener; the route label says which API answered.
  app.addHook('onResponse', async (req, reply) => {
    metrics.httpDuration.observe(
      { method: req.method, route: `consul ${req.routeOptions.url ?? 'unmatched'}`, status: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
  });
  app.setNotFoundHandler((_req, reply) => reply.code(404).type('text/plain; charset=utf-8').send('404 page not found\n'));

  if (credentials !== null) {
    app.addHook('onRequest', async (req) => {
      const q = req.query as Query;
      const header = req.headers['x-consul-token'];
      const given = (typeof header === 'string' ? header : undefined) ?? bearerToken(req.headers.authorization) ?? one(q, 'token');
      // Consul answers 403 "ACL not found" / "Permission denied" as plain text; its clients only read the status.
      const principal = given === undefined ? null : credentials().byToken(given);
      if (principal === null) throw new ConsulError(403, 'ACL not found: rollcall needs a token in X-Consul-Token');
      const action = req.method === 'GET' || req.method === 'HEAD' ? 'read' : 'write';
      const missing = missingScope(principal, action, one(q, 'ns') ?? 'default');
      if (missing !== null) throw new ConsulError(403, `Permission denied: "${principal.name}" lacks the scope ${missing}`);
    });
  }

  /** The rollcall namespace of a request: Consul's ?ns= (Enterprise namespaces), else "default". */
  function namespaceOf(req: FastifyRequest, bodyNamespace?: unknown): string {
    const q = req.query as Query;
    const ns = one(q, 'ns') ?? (typeof bodyNamespace === 'string' && bodyNamespace !== '' ? bodyNamespace : undefined) ?? 'default';
    if (!DNS_LABEL.test(ns)) throw new ConsulError(400, `Invalid namespace "${ns}": rollcall namespaces are DNS labels`);
    const dc = one(q, 'dc');
    if (dc !== undefined && dc !== '' && dc !== node.datacenter) throw new ConsulError(400, `No path to datacenter "${dc}" (this rollcall is "${node.datacenter}")`);
    return ns;
  }

  /**
   * Consul's blocking query: without ?index, or with 0, answer now; else wait until something the filter
   * covers changed after index, or the wait ran out. An index ahead of the registry (its data was reset)
   * answers at once with the lower index, which tells the client to start over from 0.
   */
  async function blockingRead<T>(req: FastifyRequest, reply: FastifyReply, filter: WatchFilter, read: () => T): Promise<T> {
    const q = req.query as Query;
    const rawIndex = one(q, 'index');
    let index = 0;
    if (rawIndex !== undefined && rawIndex !== '') {
      if (!/^\d{1,20}$/.test(rawIndex)) throw new ConsulError(400, `Invalid index: ${rawIndex}`);
      index = Number(rawIndex);
    }
    const rawWait = one(q, 'wait');
    let waitMs = DEFAULT_WAIT_MS;
    if (rawWait !== undefined && rawWait !== '') {
      const parsed = parseGoDuration(rawWait);
      if (parsed === undefined) throw new ConsulError(400, `Invalid wait time: ${rawWait}`);
      waitMs = Math.min(parsed, MAX_WAIT_MS);
    }
    if (index > 0 && index <= registry.revision && hub.lastChange(filter) <= index && !shutdown.aborted) {
      waitMs += Math.floor(Math.random() * (waitMs / 16));
      const gone = new AbortController();
      const onClose = () => gone.abort();
      reply.raw.once('close', onClose);
      metrics.longPollsWaiting.inc();
      try {
        await hub.waitForChange(filter, index, waitMs, AbortSignal.any([gone.signal, shutdown]));
      } finally {
        metrics.longPollsWaiting.dec();
        reply.raw.off('close', onClose);
      }
    }
    return registry.whenSettled(() => {
      // Consul never answers index 0: a client would not block on it and would spin.
      reply.header('x-consul-index', String(Math.max(1, hub.lastChange(filter))));
      reply.header('x-consul-knownleader', 'true');
      reply.header('x-consul-lastcontact', '0');
      return read();
    });
  }

  function instancesOf(namespace: string, service: string, tags: string[]): Instance[] {
    return registry.list({ namespace, service }).items.filter((i) => tags.every((t) => i.tags.includes(t)));
  }

  /** Applies ?filter= (a subset of Consul's language) to encoded entries. */
  function filtered<T>(q: Query, entries: T[]): T[] {
    const keep = parseFilter(one(q, 'filter'));
    return keep === undefined ? entries : entries.filter(keep);
  }

  function serviceOrThrow(namespace: string, id: string): Instance {
    const found = registry.findById(namespace, id);
    if (!found) throw new ConsulError(404, `Unknown service ID "${id}". Ensure that the service ID is passed, not the service name.`);
    return found;
  }

  function checkOrThrow(namespace: string, checkId: string): Instance {
    if (checkId.startsWith('service:')) {
      const found = registry.findById(namespace, checkId.slice('service:'.length));
      if (found && checkIdOf(found) === checkId) return found;
    } else {
      // Custom check ids are rare; they cost a scan of the namespace.
      const found = registry.snapshot({ namespace }).items.find((i) => i.metadata[CHECK_ID_KEY] === checkId);
      if (found) return found;
    }
    throw new ConsulError(404, `Unknown check ID "${checkId}". Ensure that the check ID is passed, not the check name.`);
  }

  /** A TTL check report: renews the lease; changes status/marker only when the state differs. */
  async function reportCheck(namespace: string, i: Instance, state: CheckStatus) {
    const marker = state === 'passing' ? undefined : state;
    // Maintenance outlasts check reports (they only update what the check says underneath); a service that
    // never passed stays starting while its check keeps failing.
    const stillStarting = i.status === 'starting';
    const status: InstanceStatus = i.status === 'draining' ? 'draining' : statusForCheck(state, stillStarting).status;
    if (status === i.status && i.metadata[CHECK_STATE_KEY] === marker) {
      await registry.heartbeat(namespace, i.service, i.id);
      metrics.heartbeats.inc({ result: 'ok' });
    } else {
      const { [CHECK_STATE_KEY]: _old, ...rest } = i.metadata;
      await registry.patch(namespace, i.service, i.id, { status, metadata: marker === undefined ? rest : { ...rest, [CHECK_STATE_KEY]: marker } });
    }
  }

  app.get('/v1/agent/self', async (req) => {
    namespaceOf(req);
    return {
      Config: { Datacenter: node.datacenter, NodeName: node.node, NodeID: node.nodeId, Revision: 'rollcall', Server: true, Version: VERSION, PrimaryDatacenter: node.datacenter },
      DebugConfig: {},
      Coord: null,
      Member: { Name: node.node, Addr: node.address, Port: 8301, Tags: { dc: node.datacenter, role: 'consul', build: VERSION }, Status: 1 },
      Meta: { 'consul-network-segment': '' },
      Stats: {},
    };
  });

  app.get('/v1/status/leader', async () => JSON.stringify(`${node.address}:8300`));
  app.get('/v1/status/peers', async () => [`${node.address}:8300`]);
  app.get('/v1/catalog/datacenters', async () => [node.datacenter]);
  app.get('/v1/catalog/nodes', async (req, reply) => {
    const namespace = namespaceOf(req);
    return blockingRead(req, reply, { namespace }, () => [nodeJson(node)]);
  });

  app.get('/v1/catalog/services', async (req, reply) => {
    const namespace = namespaceOf(req);
    const q = req.query as Query;
    parseFilter(one(q, 'filter'));
    return blockingRead(req, reply, { namespace }, () => {
      // name → the union of its instances' tags, as Consul answers; a filter sees catalog entries.
      const out: Record<string, string[]> = {};
      const entries = filtered(q, registry.list({ namespace }).items.map((i) => catalogService(i, node)));
      for (const e of entries) {
        const tags = (out[e.ServiceName] ??= []);
        for (const t of e.ServiceTags) if (!tags.includes(t)) tags.push(t);
      }
      for (const tags of Object.values(out)) tags.sort();
      return out;
    });
  });

  app.get('/v1/catalog/service/:service', async (req, reply) => {
    const namespace = namespaceOf(req);
    const q = req.query as Query;
    parseFilter(one(q, 'filter'));
    const service = toServiceName((req.params as { service: string }).service);
    return blockingRead(req, reply, { namespace, service }, () =>
      filtered(q, instancesOf(namespace, service, many(q, 'tag')).map((i) => catalogService(i, node))),
    );
  });

  app.get('/v1/health/service/:service', async (req, reply) => {
    const namespace = namespaceOf(req);
    const q = req.query as Query;
    parseFilter(one(q, 'filter'));
    const passing = flag(q, 'passing');
    const service = toServiceName((req.params as { service: string }).service);
    return blockingRead(req, reply, { namespace, service }, () =>
      filtered(
        q,
        instancesOf(namespace, service, many(q, 'tag'))
          .filter((i) => !passing || aggregatedStatus(i) === 'passing')
          .map((i) => serviceEntry(i, node)),
      ),
    );
  });

  app.get('/v1/health/checks/:service', async (req, reply) => {
    const namespace = namespaceOf(req);
    const q = req.query as Query;
    parseFilter(one(q, 'filter'));
    const service = toServiceName((req.params as { service: string }).service);
    return blockingRead(req, reply, { namespace, service }, () => filtered(q, instancesOf(namespace, service, []).flatMap((i) => healthChecks(i, node))));
  });

  /** rollcall is the one node: any other node name is unknown, as Consul answers for a missing node. */
  function isOurNode(req: FastifyRequest): boolean {
    return (req.params as { node: string }).node === node.node;
  }

  app.get('/v1/catalog/node/:node', async (req, reply) => {
    const namespace = namespaceOf(req);
    return blockingRead(req, reply, { namespace }, () =>
      isOurNode(req)
        ? { Node: nodeJson(node), Services: Object.fromEntries(registry.list({ namespace }).items.map((i) => [i.id, { ...agentService(i), Datacenter: node.datacenter }])) }
        : null,
    );
  });

  app.get('/v1/health/node/:node', async (req, reply) => {
    const namespace = namespaceOf(req);
    const q = req.query as Query;
    parseFilter(one(q, 'filter'));
    return blockingRead(req, reply, { namespace }, () =>
      isOurNode(req) ? filtered(q, [serfHealth(node), ...registry.list({ namespace }).items.flatMap((i) => healthChecks(i, node))]) : [],
    );
  });

  app.get('/v1/health/state/:state', async (req, reply) => {
    const namespace = namespaceOf(req);
    const q = req.query as Query;
    const state = (req.params as { state: string }).state;
    if (!['any', 'passing', 'warning', 'critical'].includes(state)) throw new ConsulError(400, `Invalid check state "${state}": any, passing, warning or critical`);
    parseFilter(one(q, 'filter'));
    return blockingRead(req, reply, { namespace }, () =>
      filtered(
        q,
        [serfHealth(node), ...registry.list({ namespace }).items.flatMap((i) => healthChecks(i, node))].filter((c) => state === 'any' || c.Status === state),
      ),
    );
  });

  app.get('/v1/agent/services', async (req) => {
    const namespace = namespaceOf(req);
    const q = req.query as Query;
    parseFilter(one(q, 'filter'));
    await registry.settled();
    const services = filtered(q, registry.snapshot({ namespace }).items.map((i) => ({ ...agentService(i), Datacenter: node.datacenter })));
    return Object.fromEntries(services.map((s) => [s.ID, s]));
  });

  app.get('/v1/agent/service/:id', async (req) => {
    const namespace = namespaceOf(req);
    await registry.settled();
    return { ...agentService(serviceOrThrow(namespace, (req.params as { id: string }).id)), Datacenter: node.datacenter };
  });

  app.get('/v1/agent/checks', async (req) => {
    const namespace = namespaceOf(req);
    const q = req.query as Query;
    parseFilter(one(q, 'filter'));
    await registry.settled();
    const checks = filtered(q, [serfHealth(node), ...registry.snapshot({ namespace }).items.flatMap((i) => healthChecks(i, node))]);
    return Object.fromEntries(checks.map((c) => [c.CheckID, c]));
  });

  app.put('/v1/agent/service/register', async (req, reply) => {
    const body = req.body as Record<string, unknown> | undefined;
    const namespace = namespaceOf(req, body && typeof body === 'object' ? (body.Namespace ?? body.namespace) : undefined);
    const remote = (req.socket.remoteAddress ?? '127.0.0.1').replace(/^::ffff:/, '');
    const { service, id, input } = decodeRegistration(body, remote);
    const existing = registry.findById(namespace, id);
    if (existing && existing.service !== service) {
      throw new ConsulError(400, `Service ID "${id}" is already registered for service "${existing.service}"; deregister it first or pick another ID`);
    }
    // Consul keeps maintenance mode across a re-registration of the same service.
    const { created } = await registry.register(namespace, service, id, existing?.status === 'draining' ? { ...input, status: 'draining' } : input);
    metrics.registrations.inc({ result: created ? 'created' : 'replaced' });
    return reply.code(200).send();
  });

  app.put('/v1/agent/service/deregister/:id', async (req, reply) => {
    const namespace = namespaceOf(req);
    const i = serviceOrThrow(namespace, (req.params as { id: string }).id);
    await registry.deregister(namespace, i.service, i.id);
    metrics.deregistrations.inc();
    return reply.code(200).send();
  });

  for (const [verb, state] of [['pass', 'passing'], ['warn', 'warning'], ['fail', 'critical']] as const) {
    app.put(`/v1/agent/check/${verb}/:checkId`, async (req, reply) => {
      const namespace = namespaceOf(req);
      await reportCheck(namespace, checkOrThrow(namespace, (req.params as { checkId: string }).checkId), state);
      return reply.code(200).send();
    });
  }

  app.put('/v1/agent/check/update/:checkId', async (req, reply) => {
    const namespace = namespaceOf(req);
    const body = (req.body ?? {}) as Record<string, unknown>;
    const status = body.Status ?? body.status;
    if (status !== 'passing' && status !== 'warning' && status !== 'critical') {
      throw new ConsulError(400, `Invalid check status: "${String(status)}"`);
    }
    await reportCheck(namespace, checkOrThrow(namespace, (req.params as { checkId: string }).checkId), status);
    return reply.code(200).send();
  });

  app.put('/v1/agent/service/maintenance/:id', async (req, reply) => {
    const namespace = namespaceOf(req);
    const q = req.query as Query;
    if (one(q, 'enable') === undefined) throw new ConsulError(400, 'Missing value for enable');
    const enable = flag(q, 'enable');
    const i = serviceOrThrow(namespace, (req.params as { id: string }).id);
    // Leaving maintenance returns to what the TTL check last said.
    const status: InstanceStatus = enable ? 'draining' : statusForCheck(checkStatusOf(i), false).status;
    if (status !== i.status) await registry.patch(namespace, i.service, i.id, { status });
    return reply.code(200).send();
  });

  return app;
}

export type ConsulServer = Awaited<ReturnType<typeof buildConsulServer>>;
