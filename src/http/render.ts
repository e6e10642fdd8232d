// Rendered load balancer configs: decode the query, take one registry snapshot, call a pure generator.
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { renderHaproxy } from '../generators/haproxy.js';
import { renderNginx } from '../generators/nginx.js';
import { BALANCE_VALUES, DEFAULT_BALANCE, DEFAULT_LISTEN, parseGeneratorOptions, parseListen } from '../generators/options.js';
import type { Registry } from '../registry/registry.js';
import { errorResponses, namespaceParams } from '../schemas/api.js';
import { DNS_LABEL } from '../schemas/instance.js';

export interface RenderRoutesOptions {
  registry: Pick<Registry, 'list' | 'settled'>;
}

function isListen(value: string): boolean {
  try {
    parseListen(value);
    return true;
  } catch {
    return false;
  }
}

const renderQuery = z
  .object({
    listen: z
      .string()
      .refine(isListen, 'must be PORT, ADDRESS:PORT or [IPV6]:PORT')
      .default(DEFAULT_LISTEN)
      .meta({ description: 'Where the proxy listens: a port, address:port or [ipv6]:port', example: '8080' }),
    service: z
      .string()
      .refine((v) => v.split(',').every((s) => s === '' || DNS_LABEL.test(s.trim())), 'must be a comma list of DNS-1123 labels')
      .optional()
      .meta({ description: 'Only these services (comma list); each listed service is routed, answering 503 while it has no routable instance', example: 'api,web' }),
    balance: z
      .enum(BALANCE_VALUES)
      .default(DEFAULT_BALANCE)
      .meta({ description: 'Load-balancing algorithm, one that both nginx and HAProxy implement' }),
  })
  .strict();

const generators = {
  nginx: {
    render: renderNginx,
    summary: 'An nginx config (http {} context) that routes Host <service>.<namespace> to the routable instances',
  },
  haproxy: {
    render: renderHaproxy,
    summary: 'A complete haproxy.cfg that routes Host <service>.<namespace> to the routable instances',
  },
} as const;

export const renderRoutes: FastifyPluginAsyncZod<RenderRoutesOptions> = async (app, { registry }) => {
  for (const [proxy, generator] of Object.entries(generators)) {
    app.get(
      `/v1/namespaces/:namespace/render/${proxy}`,
      {
        config: { access: { action: 'read', namespaceFrom: 'params' } },
        schema: {
          tags: ['render'],
          summary: generator.summary,
          description:
            'Deterministic: the same registry state gives byte-identical output, so callers can compare before reloading. ' +
            'Unknown hosts answer 404; a service without a routable instance answers 503. ' +
            'Ids, tags and metadata never reach the config except as sanitized comments.',
          // OpenAPI lists the response under text/plain (the error bodies are JSON, as everywhere).
          produces: ['text/plain', 'application/json'],
          params: namespaceParams,
          querystring: renderQuery,
          response: {
            200: z.string().meta({ description: `The ${proxy} config` }),
            ...errorResponses(400, 401),
          },
        },
      },
      async (req, reply) => {
        const { namespace } = req.params;
        const options = parseGeneratorOptions(req.query);
        await registry.settled();
        const snapshot = registry.list({ namespace });
        const body = generator.render({ namespace, instances: snapshot.items }, options);
        return reply
          .header('content-type', 'text/plain; charset=utf-8')
          .header('x-rollcall-revision', String(snapshot.revision))
          .send(body);
      },
    );
  }
};
