// What a route needs from its caller, declared once on the route as `config: { access }` and read by the
// auth hook on the MATCHED route. Deciding on the raw URL is what let `/%761/…` and absolute-form targets
// through: the router decodes and normalises the path, so only the route it picked can be trusted.

export const ROLES = ['read', 'write', 'admin'] as const;
export type Role = (typeof ROLES)[number];
/** An action needs a role at least this strong: admin ⊃ write ⊃ read. */
export type Action = Role;

export type RouteAccess =
  /** Health, readiness, metrics, docs and the spec: open unless --protect-ops. */
  | 'ops'
  /** Any valid credential, whatever its scope (whoami). */
  | 'principal'
  /**
   * Open even with --protect-ops: files that hold no data (the dashboard's page and scripts). A browser cannot
   * send a token for the page that asks for the token; everything the page shows comes from guarded routes.
   */
  | 'public'
  | {
      action: Action;
      /**
       * Where the namespace the request touches comes from. Absent (or absent from the query) means the request
       * spans every namespace, which needs a credential whose scope is `*`. `each`: the request names many
       * instances (lease renewals); the hook checks the role only, and the handler checks every instance's
       * namespace with missingScope, as if each were its own request.
       */
      namespaceFrom?: 'params' | 'query' | 'each';
      /** The one namespace an adapter serves (Eureka has no namespaces: it serves --eureka-namespace). */
      namespace?: string;
      /** Log level of the audit line for an allowed write; heartbeats say 'debug' (thousands a second). */
      audit?: 'info' | 'debug';
    };

/** A matched route that declares nothing is treated as the strongest need, so a forgotten declaration fails closed. */
export const UNDECLARED_ACCESS: RouteAccess = { action: 'admin' };

/** The OpenAPI security scheme every guarded route documents. */
export const BEARER_SCHEME = {
  type: 'http' as const,
  scheme: 'bearer',
  description:
    'With ROLLCALL_TOKEN or --auth-file, every route except the ops routes (/healthz, /readyz, /metrics, /docs, the spec; guarded too with --protect-ops) needs `Authorization: Bearer <token>`, or a client certificate named in the auth file under mutual TLS. 401 `unauthorized`: no or unknown credential; 403 `forbidden`: the credential lacks the scope named in the message (read < write < admin, on the namespace, `*` for every namespace).',
};

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: RouteAccess;
  }
}
