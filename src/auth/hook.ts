// The one auth hook every adapter shares: it reads the access the MATCHED route declares (config.access) and
// decides before any handler, body parsing or WebSocket/SSE upgrade runs.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TLSSocket } from 'node:tls';
import { RollcallError } from '../errors.js';
import { errorBody } from '../schemas/api.js';
import { UNDECLARED_ACCESS, type RouteAccess } from './access.js';
import { presentedToken, type Credentials } from './credentials.js';
import { missingRole, missingScope, type Principal } from './rules.js';

export interface AuthOptions {
  /** The credentials in force, a function so a reload swaps them; null when auth is off (no hook at all). */
  credentials: (() => Credentials) | null;
  /** Also guard the ops routes (health, readiness, metrics, docs, spec). */
  protectOps: boolean;
}

function namespaceOf(req: FastifyRequest, access: Exclude<RouteAccess, string>): string | undefined {
  if (access.namespace !== undefined) return access.namespace;
  const from = access.namespaceFrom;
  // `each`: many namespaces, checked per item by the handler.
  if (from === undefined || from === 'each') return undefined;
  const value = (from === 'params' ? req.params : req.query) as Record<string, unknown> | undefined;
  const namespace = value?.namespace;
  // A repeated ?namespace= is an array: treat it as "every namespace" so it can only ask for more, never less.
  return typeof namespace === 'string' ? namespace : undefined;
}

/** The subject CN of a client certificate that TLS verified against --tls-client-ca, else null. */
function verifiedCertificateCn(req: FastifyRequest): string | null {
  const socket = req.raw.socket as Partial<TLSSocket>;
  if (socket.authorized !== true || typeof socket.getPeerCertificate !== 'function') return null;
  const cn = socket.getPeerCertificate().subject?.CN;
  return typeof cn === 'string' ? cn : null;
}

/** A bearer token wins over a client certificate, so one mTLS client can still act as another principal. */
function authenticate(req: FastifyRequest, credentials: Credentials): Principal {
  const header = req.headers.authorization;
  if (header !== undefined) {
    const token = presentedToken(header);
    if (token === null) throw new RollcallError('unauthorized', 'The Authorization header must be "Bearer <token>" (or Basic auth with the token as the password).');
    const principal = credentials.byToken(token);
    if (principal === null) throw new RollcallError('unauthorized', 'The bearer token is not known to this registry.');
    return principal;
  }
  const cn = verifiedCertificateCn(req);
  if (cn !== null) {
    const principal = credentials.byCertificate(cn);
    if (principal === null) throw new RollcallError('unauthorized', `No entry of the auth file names the client certificate CN "${cn}".`);
    return principal;
  }
  throw new RollcallError('unauthorized', 'This registry needs "Authorization: Bearer <token>".');
}

export function installAuth(app: FastifyInstance, options: AuthOptions): void {
  app.decorateRequest('principal', null);
  app.decorateRequest('principalNow', null);

  app.addHook('onRoute', (route) => {
    // Swagger UI registers its own /docs routes; they are ops routes like the spec.
    if (route.url.startsWith('/docs') && route.config?.access === undefined) route.config = { ...route.config, access: 'ops' };
    // The spec documents the bearer scheme whether or not this process enforces it (`npm run openapi` runs
    // without auth): ops routes are open by default, every other route may answer 401 and 403.
    const schema = route.schema as { security?: unknown; response?: Record<string, unknown> } | undefined;
    if (schema === undefined) return;
    if (route.config?.access === 'ops' || route.config?.access === 'public') schema.security = [];
    else if (schema.response !== undefined) schema.response = { ...schema.response, 401: errorBody, 403: errorBody };
  });

  const current = options.credentials;
  if (current === null) return;

  app.addHook('onRequest', async (req) => {
    // No route matched: the 404 handler reaches nothing, and answering 401 first would only hide typos.
    if (req.is404) return;
    const access: RouteAccess = req.routeOptions.config.access ?? UNDECLARED_ACCESS;
    if (access === 'public' || (access === 'ops' && !options.protectOps)) return;
    const principal = authenticate(req, current());
    if (typeof access === 'object') {
      const missing =
        access.namespaceFrom === 'each' ? missingRole(principal, access.action) : missingScope(principal, access.action, namespaceOf(req, access));
      if (missing !== null) {
        throw new RollcallError(
          'forbidden',
          `"${principal.name}" (role ${principal.role}, namespaces ${principal.namespaces.join(',')}) lacks the scope ${missing}.`,
        );
      }
    }
    // Set only once allowed: the audit line below is for what was done, refusals are logged by the error handler.
    req.principal = principal;
    // For routes that act for many items long after this check (the lease stream): the principal as the
    // credentials in force say now, decided again only when a reload swapped them. Throws unauthorized once the
    // credential is gone.
    if (typeof access !== 'object' || access.namespaceFrom !== 'each') return;
    let checkedWith = current();
    let latest = principal;
    req.principalNow = () => {
      const credentials = current();
      if (credentials !== checkedWith) {
        latest = authenticate(req, credentials);
        checkedWith = credentials;
      }
      return latest;
    };
  });

  // Every write names who made it (never the token). Heartbeats log at debug: there are thousands a second.
  app.addHook('onResponse', async (req, reply) => {
    const access = req.routeOptions.config.access;
    if (req.principal === null || typeof access !== 'object' || access.action === 'read') return;
    req.log[access.audit ?? 'info'](
      { principal: req.principal.name, method: req.method, route: req.routeOptions.url, namespace: namespaceOf(req, access), status: reply.statusCode },
      'write by %s',
      req.principal.name,
    );
  });
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Who made the request, once the auth hook accepted it; null when auth is off or the route is open. */
    principal: Principal | null;
    /** The same, decided again against the credentials in force now (after a reload); null like `principal`. */
    principalNow: (() => Principal) | null;
  }
}
