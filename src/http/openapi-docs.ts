// Finishing touches on the generated OpenAPI document, applied where @fastify/swagger builds it:
// every response gets a sentence (the plugin's fallback is "Default Response"), and the zod provider's input
// variants ("…Input") replace their output twins only where a request body uses them; unused ones are dropped.
import { jsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod';

type Transform = typeof jsonSchemaTransform;
type TransformObject = typeof jsonSchemaTransformObject;

/** What each status means on this API; a route's own description (zod `.meta({ description })`) wins. */
const BY_STATUS: Record<string, string> = {
  '200': 'OK',
  '201': 'Created',
  '204': 'Done; no body',
  '400': 'Bad input: a malformed body, path or query. `{error, message, details}` names the fields',
  '401': 'Missing or wrong bearer token (only when the registry runs with a token)',
  '403': 'The credential is valid but lacks the scope this request needs (the message names it)',
  '404': 'Not found: an unknown, deregistered or expired instance (register again), or an unknown Service',
  '408': 'The request did not arrive in time (headers or body too slow)',
  '409': 'Conflicts with what is stored (a virtual IP already taken or fixed for the life of the Service, or the service range is full)',
  '417': 'An Expect header other than 100-continue',
  '413': 'Body larger than the 1 MiB limit',
  '415': 'Body is not application/json',
  '422': 'Well-formed but not usable here (a virtual IP outside the service range)',
  '426': 'Not a WebSocket upgrade: use a WebSocket client, or Accept: text/event-stream for Server-Sent Events',
  '503': 'Unavailable for now: not ready (database closed, migration pending), the disk is full (storage_full; reads go on), etcd unreachable (store_unavailable), or too many connections or watchers',
  '504': 'minRevision not applied by this replica within the wait (revision_not_reached): retry, or ask the replica that wrote it',
};

/** Route-specific sentences for the answers that mean different things on different routes. */
const BY_ROUTE: Record<string, string> = {
  'GET /healthz 200': 'The process answers',
  'GET /readyz 200': 'Ready: the database is open and migrated; the current revision',
  'GET /metrics 200': 'Prometheus text exposition format',
  'PUT /v1/namespaces/{namespace}/services/{service}/instances/{id} 200': 'Replaced; an identical registration only renews the lease',
  'PUT /v1/namespaces/{namespace}/services/{service}/instances/{id} 201': 'Registered: a new instance',
  'PATCH /v1/namespaces/{namespace}/services/{service}/instances/{id} 200': 'Updated; the lease is renewed too',
  'GET /v1/namespaces/{namespace}/services/{service}/instances/{id} 200': 'The instance',
  'PUT /v1/namespaces/{namespace}/services/{service}/instances/{id}/heartbeat 200': 'Renewed: the instance with its new expiresAt',
  'GET /v1/namespaces/{namespace}/services/{service}/instances 200':
    'The instances and the revision they were read at (also in X-Rollcall-Revision); with ?index, once something changed or wait ran out',
  'GET /v1/namespaces/{namespace}/services 200': 'The services of the namespace with their instance counts',
  'GET /v1/namespaces 200': 'The namespaces with their service and instance counts',
  'GET /v1/leases 101': 'Switching Protocols: from here on the socket carries LeaseStreamMessage messages, both ways',
  'GET /v1/leases 426': 'Not a WebSocket upgrade: open it with a WebSocket client, or renew with POST /v1/leases/renew',
  'POST /v1/leases/renew 200': 'One result per instance, in the order asked: renewed, or why not',
};

const openApiPath = (url: string) => url.replace(/:(\w+)/g, '{$1}');

export const documentedTransform: Transform = (input) => {
  const out = jsonSchemaTransform(input);
  const schema = out.schema as { response?: Record<string, Record<string, unknown>>; hide?: boolean };
  const method = [input.route.method].flat()[0] ?? 'GET';
  const key = (status: string) => `${method} ${openApiPath(out.url)} ${status}`;
  // A route without a response schema would be documented as one "200: Default Response": give it its sentence.
  if (!schema.response && BY_ROUTE[key('200')]) schema.response = { 200: { description: BY_ROUTE[key('200')] } };
  for (const [status, response] of Object.entries(schema.response ?? {})) {
    if (typeof response !== 'object' || response === null || typeof response.description === 'string') continue;
    const description = BY_ROUTE[key(status)] ?? BY_STATUS[status];
    // The plugin reads the raw schema's description before the shared schema's: set it beside a $ref, so a shared
    // Error or Instance does not give every route the same sentence; elsewhere use the plugin's own key for it.
    if (description) schema.response![status] = { ...response, [typeof response.$ref === 'string' ? 'description' : 'x-response-description']: description };
  }
  return out;
};

interface Document {
  paths?: unknown;
  components?: { schemas?: Record<string, unknown> };
}

const REF = /"#\/components\/schemas\/([^"]+)"/g;

function refsIn(value: unknown): Set<string> {
  return new Set([...JSON.stringify(value ?? null).matchAll(REF)].map((m) => m[1] as string));
}

export const documentedTransformObject: TransformObject = (input) => {
  const doc = jsonSchemaTransformObject(input) as Document;
  const schemas = doc.components?.schemas;
  if (!schemas) return doc as ReturnType<TransformObject>;
  // What the paths use, directly or through other schemas.
  const used = refsIn(doc.paths);
  for (let grew = true; grew; ) {
    grew = false;
    for (const name of [...used]) {
      for (const ref of refsIn(schemas[name])) {
        if (used.has(ref)) continue;
        used.add(ref);
        grew = true;
      }
    }
  }
  const renames = new Map<string, string>();
  for (const name of Object.keys(schemas)) {
    if (!name.endsWith('Input')) continue;
    const twin = name.slice(0, -'Input'.length);
    // A used input variant takes its twin's name when the twin itself is unused; an unused one goes.
    if (used.has(name) && !used.has(twin)) renames.set(name, twin);
    else if (!used.has(name)) delete schemas[name];
  }
  for (const [from, to] of renames) {
    schemas[to] = schemas[from];
    delete schemas[from];
  }
  if (renames.size === 0) return doc as ReturnType<TransformObject>;
  const renamed = JSON.parse(
    JSON.stringify(doc).replace(REF, (whole, name: string) => (renames.has(name) ? `"#/components/schemas/${renames.get(name)}"` : whole)),
  ) as Document;
  return renamed as ReturnType<TransformObject>;
};
