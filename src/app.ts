// buildApp: the whole registry as one Fastify app, without a process (tests build it; server.ts listens).
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import websocket from '@fastify/websocket';
import Fastify, { LogController, type FastifyServerOptions } from 'fastify';
import { validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { join } from 'node:path';
import type { Config } from './config.js';
import { RollcallError } from './errors.js';
import { installErrorHandlers } from './http/error-handler.js';
import { documentedTransform, documentedTransformObject } from './http/openapi-docs.js';
import { instanceRoutes } from './http/instances.js';
import { opsRoutes } from './http/ops.js';
import { renderRoutes } from './http/render.js';
import { serviceRoutes } from './http/services.js';
import { watchRoutes } from './http/watch.js';
import { createMetrics } from './metrics.js';
import { systemClock, type Clock } from './registry/clock.js';
import { startLeaseKeeper } from './registry/lease-keeper.js';
import { createRegistry } from './registry/registry.js';
import { createInstanceStore } from './store/instance-store.js';
import { migrate, pendingMigrations } from './store/migrate.js';
import { openDatabase, type Db } from './store/open.js';
import { createWatchHub } from './watch/hub.js';
import { VERSION } from './version.js';

export { VERSION } from './version.js';
const BODY_LIMIT = 1024 * 1024;

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
  const db: Db = openDatabase(databaseFile(config.dataDir));
  migrate(db);
  const store = createInstanceStore(db, { historySize: config.historySize });
  const hub = createWatchHub();
  const metrics = createMetrics({ collectDefaults: deps.processMetrics ?? false });
  const registry = createRegistry({
    store,
    hub,
    clock,
    maxExpiriesPerSweep: config.maxExpiriesPerSweep,
    onExpired: (n) => metrics.expiries.inc(n),
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
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  // Responses are built from typed records, so the compiler already checks their shape; re-validating every
  // answer with zod cost ~3x the time of listing a 1,000-instance service. The response schemas still
  // document the API in OpenAPI.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  installErrorHandlers(app);

  app.decorate('registry', registry);
  // Every route the app serves, so the OpenAPI contract test can compare them with the documented paths.
  const served: { method: string; url: string; documented: boolean }[] = [];
  app.decorate('servedRoutes', served);
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const hidden = (route.schema as { hide?: boolean } | undefined)?.hide === true || route.url.startsWith('/docs');
    for (const method of methods) if (method !== 'HEAD') served.push({ method, url: route.url, documented: !hidden });
  });

  if (config.token !== undefined) {
    const expected = `Bearer ${config.token}`;
    // Runs before the WebSocket upgrade too, so unauthenticated watchers never get a socket.
    app.addHook('onRequest', async (req) => {
      if (req.url.startsWith('/v1/') && req.headers.authorization !== expected) {
        throw new RollcallError('unauthorized', 'This registry needs "Authorization: Bearer <token>".');
      }
    });
  }

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
          'A standalone service registry: instances register, heartbeat and deregister; leases expire; every change raises one registry-wide revision; watchers follow the changes over WebSocket, Server-Sent Events or blocking queries.',
      },
      tags: [
        { name: 'instances', description: 'Register, renew, update, deregister and list instances' },
        { name: 'services', description: 'Services and namespaces' },
        { name: 'watch', description: 'Change streams' },
        { name: 'render', description: 'Load balancer configs from the registry' },
        { name: 'ops', description: 'Health, readiness and metrics' },
      ],
      ...(config.token === undefined
        ? {}
        : { components: { securitySchemes: { bearer: { type: 'http' as const, scheme: 'bearer' } } }, security: [{ bearer: [] }] }),
    },
    transform: documentedTransform,
    transformObject: documentedTransformObject,
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  await app.register(websocket, { options: { maxPayload: 64 * 1024 } });

  const notReadyReason = () => {
    if (!db.open) return 'The database is closed.';
    const pending = pendingMigrations(db);
    return pending.length > 0 ? `Migrations not applied: ${pending.join(', ')}.` : null;
  };

  await app.register(opsRoutes, { registry, metrics, notReadyReason });
  await app.register(instanceRoutes, { registry, hub, metrics, shutdown: shutdown.signal });
  await app.register(serviceRoutes, { registry, hub, metrics, shutdown: shutdown.signal });
  await app.register(renderRoutes, { registry });
  await app.register(watchRoutes, {
    registry,
    hub,
    metrics,
    maxBufferedBytes: config.watchBufferBytes,
    pingIntervalMs: config.watchPingMs,
  });

  let stopKeeper = () => {};
  app.addHook('onReady', async () => {
    stopKeeper = startLeaseKeeper(registry, {
      sweepMs: config.sweepMs,
      heartbeatFlushMs: config.heartbeatFlushMs,
      onError: (err) => app.log.error({ err }, 'lease keeper failed'),
    });
  });
  app.addHook('preClose', async () => {
    shutdown.abort();
  });
  app.addHook('onClose', async () => {
    stopKeeper();
    registry.flushNow();
    db.close();
  });

  return app;
}

export type App = Awaited<ReturnType<typeof buildApp>>;

declare module 'fastify' {
  interface FastifyInstance {
    registry: ReturnType<typeof createRegistry>;
    servedRoutes: { method: string; url: string; documented: boolean }[];
  }
}
