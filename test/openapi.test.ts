// The served OpenAPI document: committed copy has no drift, and documents exactly the routes served.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { buildTestApp } from './helper.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');

t.test('openapi.yaml in the repo equals what the server serves (run `npm run openapi` to regenerate)', async (t) => {
  const { app } = await buildTestApp(t, { dataDir: ':memory:' });
  const served = (await app.inject({ url: '/openapi.yaml' })).body;
  const committed = readFileSync(join(root, 'openapi.yaml'), 'utf8');
  t.equal(committed, served, 'openapi.yaml drifted from the served spec: run `npm run openapi`');
  const json = (await app.inject({ url: '/openapi.json' })).json();
  t.same(json, parse(served), 'JSON and YAML forms agree');
});

t.test('routes served equal the paths documented; errors and examples are documented', async (t) => {
  const { app } = await buildTestApp(t, { dataDir: ':memory:' });
  const spec = (await app.inject({ url: '/openapi.json' })).json();
  const documented = Object.entries(spec.paths as Record<string, Record<string, unknown>>)
    .flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`))
    .sort();
  const served = app.servedRoutes
    .filter((r) => r.documented)
    .map((r) => `${r.method} ${r.url.replace(/:(\w+)/g, '{$1}')}`)
    .sort();
  t.same(documented, served);
  const put = spec.paths['/v1/namespaces/{namespace}/services/{service}/instances/{id}'].put;
  t.ok(put.responses['201'] && put.responses['400'] && put.responses['413'], 'PUT documents 201, 400 and 413');
  t.match(spec.components.schemas.Error, { properties: { error: {}, message: {} } });
  t.ok(spec.components.schemas.RegisterInstance.properties.port.example !== undefined, 'fields carry examples');
  t.ok(spec.paths['/v1/watch'].get.parameters.some((p: any) => p.name === 'sinceRevision'), 'watch parameters documented');
});

t.test('Swagger UI is browsable at /docs', async (t) => {
  const { app } = await buildTestApp(t, { dataDir: ':memory:' });
  const res = await app.inject({ url: '/docs/' });
  t.equal(res.statusCode, 200);
  t.match(res.body, /swagger/i);
});
