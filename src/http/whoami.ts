// GET /v1/auth/whoami: who the registry takes the caller for, so clients and dashboards can tell what they may do.
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ROLES } from '../auth/access.js';
import { errorResponses } from '../schemas/api.js';

export interface WhoamiRoutesOptions {
  authEnabled: boolean;
}

const whoami = z
  .object({
    authenticated: z.boolean().meta({ description: 'False when the registry runs without auth: then anyone may do anything' }),
    name: z.string().nullable().meta({ description: 'The auth file entry (ROLLCALL_TOKEN for the shared token); null without auth' }),
    role: z.enum(ROLES),
    namespaces: z.array(z.string()).meta({ description: 'Namespace globs the caller may act on; "*" is every namespace' }),
  })
  .meta({ id: 'Whoami' });

export const whoamiRoutes: FastifyPluginAsyncZod<WhoamiRoutesOptions> = async (app, { authEnabled }) => {
  app.get(
    '/v1/auth/whoami',
    {
      config: { access: 'principal' },
      schema: {
        tags: ['auth'],
        summary: 'The caller: its name, role and namespaces',
        description: 'Any valid credential may ask, whatever its scope. Without auth the answer is an unauthenticated admin on "*".',
        response: { 200: whoami, ...errorResponses(401) },
      },
    },
    async (req) => {
      const principal = req.principal;
      if (!authEnabled || principal === null) return { authenticated: false, name: null, role: 'admin' as const, namespaces: ['*'] };
      return { authenticated: true, name: principal.name, role: principal.role, namespaces: principal.namespaces };
    },
  );
};
