// The dashboard's files as the registry serves them: types, revalidation, nothing outside dist/ui, / → /ui.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Fastify from 'fastify';
import t from 'tap';
import { uiRoutes } from '../src/http/ui.js';
import { buildTestApp } from './helper.js';

t.test('serves the built page with content types and ETags; / redirects to /ui/', async (t) => {
  const { app } = await buildTestApp(t);
  const root = await app.inject({ url: '/' });
  t.equal(root.statusCode, 302);
  t.equal(root.headers.location, '/ui/');
  for (const url of ['/ui', '/ui/']) {
    const page = await app.inject({ url });
    t.equal(page.statusCode, 200, url);
    t.match(page.headers['content-type'], /^text\/html; charset=utf-8/);
    t.match(page.body, /<script type="module" src="\/ui\/main.js">/);
    t.match(page.headers['content-security-policy'], /default-src 'self'/);
  }
  const js = await app.inject({ url: '/ui/main.js' });
  t.equal(js.statusCode, 200);
  t.match(js.headers['content-type'], /^text\/javascript/);
  t.equal(js.headers['cache-control'], 'no-cache');
  const etag = js.headers.etag as string;
  t.match(etag, /^"[\w-]+"$/);
  const again = await app.inject({ url: '/ui/main.js', headers: { 'if-none-match': etag } });
  t.equal(again.statusCode, 304);
  t.equal(again.body, '');
  t.match((await app.inject({ url: '/ui/style.css' })).headers['content-type'], /^text\/css/);
});

t.test('nothing outside the built files: traversal and unknown names are 404 JSON', async (t) => {
  const { app } = await buildTestApp(t);
  for (const url of ['/ui/..%2f..%2fpackage.json', '/ui/%2e%2e/%2e%2e/package.json', '/ui/../package.json', '/ui/nope.js', '/ui/main.ts']) {
    const res = await app.inject({ url });
    t.equal(res.statusCode, 404, url);
    t.equal(res.json().error, 'not_found', url);
    t.notMatch(res.body, /"name": "rollcall"/, url);
  }
});

t.test('the page is open without a token (it holds no data); the API behind it is not', async (t) => {
  const { app } = await buildTestApp(t, { config: { token: 'sesame' } });
  t.equal((await app.inject({ url: '/ui' })).statusCode, 200);
  t.equal((await app.inject({ url: '/ui/main.js' })).statusCode, 200);
  t.equal((await app.inject({ url: '/v1/namespaces' })).statusCode, 401);
  const { app: guarded } = await buildTestApp(t, { config: { token: 'sesame', protectOps: true } });
  t.equal((await guarded.inject({ url: '/ui' })).statusCode, 200, 'open with --protect-ops: the page asks for the token');
  t.equal((await guarded.inject({ url: '/' })).statusCode, 302);
  t.equal((await guarded.inject({ url: '/readyz' })).statusCode, 401, 'what it reads stays guarded');
});

t.test('hidden from the OpenAPI document; /docs links to the dashboard', async (t) => {
  const { app } = await buildTestApp(t);
  const spec = app.swagger() as { paths: Record<string, unknown>; info: { description: string } };
  t.notOk(Object.keys(spec.paths).some((p) => p === '/' || p.startsWith('/ui')));
  t.match(spec.info.description, /\[\/ui\]\(\/ui\)/);
});

t.test('an unbuilt dashboard answers 404 saying how to build it', async (t) => {
  const dir = t.testdir();
  mkdirSync(join(dir, 'empty'));
  writeFileSync(join(dir, 'empty', 'README'), 'not an asset');
  const app = Fastify();
  t.teardown(() => app.close());
  await app.register(uiRoutes, { dir: join(dir, 'empty') });
  const res = await app.inject({ url: '/ui' });
  t.equal(res.statusCode, 404);
  t.match(res.json().message, /npm run build/);
});
