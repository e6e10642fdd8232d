// The one auth hook every adapter shares: it reads the access the MATCHED route declares (config.access) and
// decides before any handler, body parsing or WebSocket/SSE upgrade runs.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { RollcallError } from '../errors.js';
import { UNDECLARED_ACCESS, type RouteAccess } from './access.js';
import { bearerToken, type Credentials } from './credentials.js';
import { missingScope, type Principal } from './rules.js';

export interface AuthOptions {
  /** The credentials in force, a function so a reload swaps them; null when auth is off (no hook at all). */
  credentials: (() => Credentials) | null;
  /** Also guard the ops routes (health, readiness, metrics, docs, spec). */
  protectOps: boolean;
}

function namespaceOf(req: FastifyRequest, from: 'params' | 'query' | undefined): string | undefined {
  if (from === undefined) return undefined;
  const value = (from === 'params' ? req.params : req.query) as Record<string, unknown> | undefined;
  const namespace = value?.namespace;
  // A repeated ?namespace= is an array: treat it as "every namespace" so it can only ask for more, never less.
  return typeof namespace === 'string' ? namespace : undefined;
}

function authenticate(req: FastifyRequest, credentials: Credentials): Principal {
  const token = bearerToken(req.headers.authorization);
  if (token === null) throw new RollcallError('unauthorized', 'This registry needs "Authorization: Bearer <token>".');
  const principal = credentials.byToken(token);
  if (principal === null) throw new RollcallError('unauthorized', 'The bearer token is not known to this registry.');
  return principal;
}

export function installAuth(app: FastifyInstance, options: AuthOptions): void {
  app.decorateRequest('principal', null);

  // Swagger UI registers its own /docs routes; they are ops routes like the spec.
  app.addHook('onRoute', (route) => {
    if (route.url.startsWith('/docs') && route.config?.access === undefined) route.config = { ...route.config, access: 'ops' };
  });

  const current = options.credentials;
  if (current === null) return;
  app.addHook('onRequest', async (req) => {
    // No route matched: the 404 handler reaches nothing, and answering 401 first would only hide typos.
    if (req.is404) return;
    const access: RouteAccess = req.routeOptions.config.access ?? UNDECLARED_ACCESS;
    if (access === 'ops' && !options.protectOps) return;
    const principal = authenticate(req, current());
    req.principal = principal;
    if (access === 'ops' || access === 'principal') return;
    const namespace = namespaceOf(req, access.namespaceFrom);
    const missing = missingScope(principal, access.action, namespace);
    if (missing !== null) {
      throw new RollcallError(
        'forbidden',
        `Token "${principal.name}" (role ${principal.role}, namespaces ${principal.namespaces.join(',')}) lacks the scope ${missing}.`,
      );
    }
  });
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Who made the request, once the auth hook accepted it; null when auth is off or the route is open. */
    principal: Principal | null;
  }
}
