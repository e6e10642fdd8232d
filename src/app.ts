// buildApp: the whole registry as one Fastify app, without a process (tests build it; server.ts listens).
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import websocket from '@fastify/websocket';
import Fastify, { LogController, type FastifyServerOptions } from 'fastify';
import { validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { join } from 'node:path';
import type { Server as TlsServer } from 'node:tls';
import { buildConsulServer, type ConsulServer } from './adapters/consul/server.js';
import { eurekaRoutes } from './adapters/eureka/routes.js';
import { prometheusSdRoutes } from './adapters/sd/prometheus.js';
import { createAuthSource } from './auth/auth-source.js';
import { BEARER_SCHEME } from './auth/access.js';
import type { RouteAccess } from './auth/access.js';
import { installAuth } from './auth/hook.js';
import { loadServerTls, reloadServerTls } from './auth/tls.js';
import { parseHostPort, type Config } from './config.js';
import { createDnsAdapter, type DnsAdapter } from './dns/index.js';
import { installErrorHandlers } from './http/error-handler.js';
import { documentedTransform, documentedTransformObject } from './http/openapi-docs.js';
import { installJsonBodyParser } from './http/json-body.js';
import { instanceRoutes } from './http/instances.js';
import { leaseRoutes } from './http/leases.js';
import { opsRoutes } from './http/ops.js';
import { renderRoutes } from './http/render.js';
import { installServerLimits, serverLimitOptions } from './http/server-limits.js';
import { serviceRoutes } from './http/services.js';
import { uiRoutes } from './http/ui.js';
import { onWebSocketError, watchRoutes } from './http/watch.js';
import { whoamiRoutes } from './http/whoami.js';
import { createMetrics } from './metrics.js';
import { systemClock, type Clock } from './registry/clock.js';
import { startLeaseKeeper } from './registry/lease-keeper.js';
import { createRegistry } from './registry/registry.js';
import { parseCidr, type Cidr } from './registry/virtual-ips.js';
import { createInstanceStore } from './store/instance-store.js';
import { migrate, pendingMigrations } from './store/migrate.js';
import { openEtcdBackend } from './store/etcd/backend.js';
import { openDatabase, type Db } from './store/open.js';
import { createWatchHub } from './watch/hub.js';
import { VERSION } from './version.js';

export { VERSION } from './version.js';
const BODY_LIMIT = 1024 * 1024;
/** The Consul API's one node: rollcall itself (Consul node ids are UUIDs). */
const CONSUL_NODE_ID = '7a1c0a11-0000-4000-8000-00000000c0de';

export interface AppDeps {
  config: Config;
  clock?: Clock;
  logger?: FastifyServerOptions['logger'];
  /** Collect Node process metrics (the server does; tests that build many apps don't). */
  processMetrics?: boolean;
}

/** The database file for a data dir; ':memory:' keeps everything in memory (tests, openapi export). */
export function databaseFile(dataDir: string): string {
  return dataDir === ':memory:' ? ':memory:' : join(dataDir, 'rollcall.db');
}

export async function buildApp(deps: AppDeps) {
  const { config } = deps;
  const clock = deps.clock ?? systemClock;
  // First, so a bad auth file stops the start before anything is opened.
  const auth = createAuthSource({ adminToken: config.token, authFile: config.authFile });
  const tls = loadServerTls(config);
  const hub = createWatchHub();
  const metrics = createMetrics({ collectDefaults: deps.processMetrics ?? false });
  // The store (README "High availability on etcd"): SQLite in this process, or etcd shared by every replica.
  const etcd = config.store === 'etcd' ? await openEtcdBackend(config, hub, clock, (err, what) => app.log.warn({ err }, 'etcd %s failed', what)) : undefined;
  const db: Db | undefined = etcd ? undefined : openDatabase(databaseFile(config.dataDir));
  if (db) migrate(db);
  const registry = etcd?.registry ?? createRegistry({
    store: createInstanceStore(db!, { historySize: config.historySize }),
    hub,
    clock,
    maxExpiriesPerSweep: config.maxExpiriesPerSweep,
    // Valid: loadConfig checked it.
    serviceCidr: parseCidr(config.serviceCidr) as Cidr,
    onExpired: (n) => metrics.expiries.inc(n),
    protection: {
      windowMs: config.protectWindow,
      thresholdPercent: config.protectThreshold,
      maxMs: config.protectMax,
      minLapses: config.protectMinLapses,
    },
    onProtection: (change) => {
      if (change.active) {
        app.log.warn(change, 'self-preservation on: %d leases lapsed at once; keeping them listed, flagged lapsed', change.lapsed);
      } else {
        app.log.warn(change, 'self-preservation off (%s); %d lapsed instances now expire gradually', change.reason, change.lapsed);
      }
    },
    onFatal: (err) => {
      app.log.fatal({ err }, 'a commit failed; exiting so the registry restarts from what is durable');
      process.exit(70);
    },
  });
  const shutdown = new AbortController();

  const app = Fastify({
    logger: deps.logger ?? false,
    bodyLimit: BODY_LIMIT,
    requestIdHeader: 'x-request-id',
    // Per-request logs at 15k heartbeats/s would cost more than the requests; errors are still logged.
    logController: new LogController({ disableRequestLogging: true }),
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 256 },
    ...serverLimitOptions(config),
    // HTTPS and WSS on the same port. Typed as the plain-HTTP options: nothing here depends on which it is.
    ...(tls === null ? {} : { https: tls }),
  } as FastifyServerOptions).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  // Responses are built from typed records, so the compiler already checks their shape; re-validating every
  // answer with zod cost ~3x the time of listing a 1,000-instance service. The response schemas still
  // document the API in OpenAPI.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  installErrorHandlers(app);
  installServerLimits(app, config);
  installJsonBodyParser(app);

  app.decorate('registry', registry);
  await app.register(websocket, { options: { maxPayload: 64 * 1024 }, errorHandler: onWebSocketError });
  // After the WebSocket plugin, whose onRequest hook must run first: it marks upgrade requests so that a refused
  // upgrade's socket is destroyed after the 401/403 (before, every refused upgrade leaked its socket and held
  // app.close() forever). Before any route: the auth hook marks the docs routes as ops routes as they are added.
  installAuth(app, { credentials: auth === null ? null : auth.credentials, protectOps: config.protectOps });
  app.decorate('reloadAuth', () => auth?.reload().size ?? null);
  app.decorate('reloadTls', () => {
    if (tls === null) return false;
    reloadServerTls(app.server as unknown as TlsServer, config);
    return true;
  });

  // Every route the app serves, so the OpenAPI contract test can compare them with the documented paths.
  const served: ServedRoute[] = [];
  app.decorate('servedRoutes', served);
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const hidden = (route.schema as { hide?: boolean } | undefined)?.hide === true || route.url.startsWith('/docs');
    const access = route.config?.access;
    for (const method of methods) {
      if (method !== 'HEAD') served.push({ method, url: route.url, documented: !hidden, ...(access === undefined ? {} : { access }) });
    }
  });

  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    metrics.httpDuration.observe(
      { method: req.method, route, status: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'rollcall',
        version: VERSION,
        description:
          'A standalone service registry: instances register, heartbeat and deregister; leases expire; every change raises one registry-wide revision; watchers follow the changes over WebSocket, Server-Sent Events or blocking queries.\n\nLive dashboard: [/ui](/ui).',
      },
      tags: [
        { name: 'instances', description: 'Register, renew, update, deregister and list instances' },
        { name: 'services', description: 'Services (stable virtual IPs) and namespaces' },
        { name: 'watch', description: 'Change streams' },
        { name: 'render', description: 'Load balancer configs from the registry' },
        { name: 'ops', description: 'Health, readiness and metrics' },
        { name: 'discovery', description: 'Service discovery for other tools (Prometheus)' },
        { name: 'auth', description: 'Who the caller is' },
      ],
      components: { securitySchemes: { bearer: BEARER_SCHEME } },
      security: [{ bearer: [] }],
    },
    transform: documentedTransform,
    transformObject: documentedTransformObject,
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  const notReadyReason = () => {
    if (etcd) return etcd.notReadyReason();
    if (!db!.open) return 'The database is closed.';
    const pending = pendingMigrations(db!);
    return pending.length > 0 ? `Migrations not applied: ${pending.join(', ')}.` : null;
  };

  await app.register(opsRoutes, { registry, metrics, notReadyReason });
  await app.register(instanceRoutes, { registry, hub, metrics, shutdown: shutdown.signal });
  await app.register(leaseRoutes, { registry, metrics, maxBufferedBytes: config.watchBufferBytes, pingIntervalMs: config.watchPingMs });
  await app.register(serviceRoutes, { registry, hub, metrics, shutdown: shutdown.signal });
  await app.register(renderRoutes, { registry });
  await app.register(prometheusSdRoutes, { registry });
  await app.register(eurekaRoutes, {
    registry,
    hub,
    metrics,
    namespace: config.eurekaNamespace,
  });
  await app.register(uiRoutes);
  await app.register(whoamiRoutes, { authEnabled: auth !== null });
  await app.register(watchRoutes, {
    registry,
    hub,
    metrics,
    maxBufferedBytes: config.watchBufferBytes,
    pingIntervalMs: config.watchPingMs,
    maxWatchers: config.maxWatchers,
  });

  // Protocol adapters for clients people already run (issue 11). The Consul API has its own listener, started
  // and closed with this app.
  let consul: ConsulServer | undefined;
  if (config.consulListen !== undefined) {
    const { host, port } = parseHostPort(config.consulListen)!;
    consul = await buildConsulServer({
      registry,
      hub,
      metrics,
      shutdown: shutdown.signal,
      node: { node: 'rollcall', nodeId: CONSUL_NODE_ID, address: host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host, datacenter: config.consulDatacenter },
      credentials: auth === null ? null : auth.credentials,
      onError: (err) => app.log.error({ err }, 'Consul API request failed'),
    });
    app.addHook('onReady', async () => {
      await consul!.listen({ host, port });
      app.log.info({ address: consulAddress() }, 'Consul-compatible API listening');
    });
  }
  const consulAddress = () => {
    const address = consul?.server.address();
    return address && typeof address === 'object' ? `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}` : undefined;
  };
  app.decorate('consulUrl', { getter: consulAddress });
  // DNS answers from the same registry memory; a Service's virtual IP answers its name (the clusterIP style).
  const dns =
    config.dnsListen === undefined
      ? undefined
      : createDnsAdapter({ registry, metrics, config, services: { get: (ns, name) => registry.findService(ns, name) }, onError: (err) => app.log.warn({ err }, 'DNS') });
  app.decorate('dns', dns);
  app.addHook('onReady', async () => {
    if (!dns) return;
    const { host, port } = await dns.start();
    app.log.info(`DNS listening at ${host}:${port} (udp, tcp) for ${config.dnsDomain}`);
  });

  let stopKeeper = () => {};
  let keeperStarted = false;
  // Leases run once clients can reach the server: the restart grace starts there, not when the database was
  // loaded, and nothing sweeps before anyone could heartbeat. (Apps only inject()ed sweep by hand.)
  app.addHook('onListen', async () => {
    // On etcd, leases are etcd's: it expires them and every replica sees the delete on its watch.
    if (keeperStarted || etcd) return;
    keeperStarted = true;
    registry.startLeases();
    stopKeeper = startLeaseKeeper(registry, {
      sweepMs: config.sweepMs,
      heartbeatFlushMs: config.heartbeatFlushMs,
      onStall: (ms) => {
        metrics.leaseStallSeconds.inc(ms / 1000);
        app.log.warn({ stalledMs: ms }, 'the process did not run for %d ms; every lease was extended by as much', ms);
      },
      onError: (err) => app.log.error({ err }, 'lease keeper failed'),
    });
  });
  app.addHook('preClose', async () => {
    shutdown.abort();
    await consul?.close();
  });
  app.addHook('onClose', async () => {
    await dns?.close();
    stopKeeper();
    try {
      registry.flushHeartbeats();
    } catch (err) {
      // A full disk: heartbeat times are lost, leases are not (a restart grants a fresh TTL anyway).
      app.log.warn({ err }, 'could not save heartbeat times at shutdown');
    }
    registry.flushNow();
    db?.close();
    await etcd?.close();
  });

  return app;
}

export interface ServedRoute {
  method: string;
  url: string;
  documented: boolean;
  /** What the route declared it needs (auth tests send every route every way). */
  access?: RouteAccess;
}

export type App = Awaited<ReturnType<typeof buildApp>>;

declare module 'fastify' {
  interface FastifyInstance {
    registry: ReturnType<typeof createRegistry>;
    servedRoutes: ServedRoute[];
    /** Base URL of the Consul-compatible listener once it listens (undefined when off). */
    consulUrl: string | undefined;
    dns: DnsAdapter | undefined;
    /** Reads the auth file again (SIGHUP): the number of principals now in force, null when auth is off. Throws on a bad file, keeping the old one. */
    reloadAuth(): number | null;
    /** Reads the TLS certificate, key and client CA again (SIGHUP): false without TLS. Throws on bad files, keeping the old ones. */
    reloadTls(): boolean;
  }
}
