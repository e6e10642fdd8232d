// The dashboard's static files (built by `npm run build` into dist/ui) at /ui, and / redirecting there.
// The page holds no data: it reads everything through the public API, so the files are open (access 'public', even
// with --protect-ops: the page must load to ask for the token). Only the files the build produced are served, looked up by exact name, so no path reaches outside.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsync } from 'fastify';

/** Where the build puts the page: dist/ui beside dist/src. */
export const UI_DIR = join(dirname(fileURLToPath(import.meta.url)), '../../ui');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

function loadAssets(dir: string): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return assets; // not built: /ui answers 404 with a message saying so
  }
  for (const name of names) {
    const type = TYPES[extname(name)];
    if (type === undefined) continue;
    const body = readFileSync(join(dir, name));
    assets.set(name, { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` });
  }
  return assets;
}

export const uiRoutes: FastifyPluginAsync<{ dir?: string }> = async (app, { dir = UI_DIR }) => {
  const assets = loadAssets(dir);
  const config = { access: 'public' as const };
  const schema = { hide: true };

  const send = (name: string, ifNoneMatch: string | undefined, reply: import('fastify').FastifyReply) => {
    const asset = assets.get(name);
    if (asset === undefined) {
      const message = assets.size === 0 ? 'The dashboard is not built: run `npm run build`.' : `No file ${name} in the dashboard.`;
      return reply.code(404).send({ error: 'not_found', message });
    }
    // Names are not content-hashed, so browsers revalidate every load; the ETag makes that a 304.
    reply.header('cache-control', 'no-cache').header('etag', asset.etag).header('x-content-type-options', 'nosniff');
    if (ifNoneMatch === asset.etag) return reply.code(304).send();
    return reply.type(asset.type).send(asset.body);
  };

  app.get('/', { config, schema }, async (_req, reply) => reply.redirect('/ui/', 302));
  app.get('/ui', { config, schema }, async (req, reply) => {
    // /ui and /ui/ are one route (ignoreTrailingSlash); the page's asset URLs are absolute, so both work.
    reply.header('content-security-policy', "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'");
    return send('index.html', req.headers['if-none-match'], reply);
  });
  app.get<{ Params: { file: string } }>('/ui/:file', { config, schema }, async (req, reply) => {
    const { file } = req.params;
    // Exact names from the build only; anything with a slash, "..", or unknown is a 404 from the map lookup.
    return send(file, req.headers['if-none-match'], reply);
  });
};
