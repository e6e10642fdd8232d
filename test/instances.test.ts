// The REST contract of issue 2: status codes, defaults, every validation rule, error bodies.
import t from 'tap';
import { buildTestApp } from './helper.js';

const BASE = '/v1/namespaces/default/services/web/instances';
const valid = { address: '10.0.0.1', port: 8080 };

t.test('register creates (201), replaces (200) and returns the instance with defaults', async (t) => {
  const { app } = await buildTestApp(t);
  const created = await app.inject({ method: 'PUT', url: `${BASE}/a`, payload: valid });
  t.equal(created.statusCode, 201);
  const body = created.json();
  t.match(body, {
    namespace: 'default',
    service: 'web',
    id: 'a',
    address: '10.0.0.1',
    port: 8080,
    status: 'up',
    weight: 1,
    zone: null,
    tags: [],
    metadata: {},
    ttlSeconds: 30,
    revision: 1,
    createRevision: 1,
  });
  t.match(body.registeredAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  t.equal(Date.parse(body.expiresAt) - Date.parse(body.lastHeartbeatAt), 30_000);

  const replaced = await app.inject({ method: 'PUT', url: `${BASE}/a`, payload: { ...valid, weight: 5, tags: ['v2'] } });
  t.equal(replaced.statusCode, 200);
  t.match(replaced.json(), { weight: 5, tags: ['v2'], revision: 2, createRevision: 1, registeredAt: body.registeredAt });

  // An identical registration renews the lease but is no change: same revision.
  const again = await app.inject({ method: 'PUT', url: `${BASE}/a`, payload: { ...valid, weight: 5, tags: ['v2'] } });
  t.equal(again.statusCode, 200);
  t.equal(again.json().revision, 2);
  t.equal(app.registry.revision, 2);
});

t.test('heartbeat renews without a revision; 404 for unknown', async (t) => {
  const { app } = await buildTestApp(t);
  await app.inject({ method: 'PUT', url: `${BASE}/a`, payload: valid });
  const hb = await app.inject({ method: 'PUT', url: `${BASE}/a/heartbeat` });
  t.equal(hb.statusCode, 200);
  t.equal(hb.json().revision, 1);
  t.equal(app.registry.revision, 1);
  const missing = await app.inject({ method: 'PUT', url: `${BASE}/nope/heartbeat` });
  t.equal(missing.statusCode, 404);
  t.equal(missing.json().error, 'instance_not_found');
  t.match(missing.json().message, /register it again/);
});

t.test('patch, get, delete', async (t) => {
  const { app } = await buildTestApp(t);
  await app.inject({ method: 'PUT', url: `${BASE}/a`, payload: { ...valid, zone: 'z1' } });
  const patched = await app.inject({ method: 'PATCH', url: `${BASE}/a`, payload: { status: 'draining', metadata: { v: '2' } } });
  t.equal(patched.statusCode, 200);
  t.match(patched.json(), { status: 'draining', metadata: { v: '2' }, zone: 'z1', address: '10.0.0.1', revision: 2 });
  const cleared = await app.inject({ method: 'PATCH', url: `${BASE}/a`, payload: { zone: null } });
  t.equal(cleared.json().zone, null);
  const noop = await app.inject({ method: 'PATCH', url: `${BASE}/a`, payload: {} });
  t.equal(noop.json().revision, 3, 'an empty patch changes nothing');
  t.equal((await app.inject({ method: 'PATCH', url: `${BASE}/zz`, payload: { weight: 2 } })).statusCode, 404);
  t.equal((await app.inject({ method: 'PATCH', url: `${BASE}/a`, payload: { address: '10.0.0.2' } })).statusCode, 400, 'address changes by PUT');

  const got = await app.inject({ url: `${BASE}/a` });
  t.equal(got.statusCode, 200);
  t.equal(got.json().status, 'draining');
  t.equal((await app.inject({ url: `${BASE}/zz` })).statusCode, 404);

  const del = await app.inject({ method: 'DELETE', url: `${BASE}/a` });
  t.equal(del.statusCode, 204);
  t.equal(del.body, '');
  t.equal((await app.inject({ method: 'DELETE', url: `${BASE}/a` })).statusCode, 404);
  t.equal((await app.inject({ url: `${BASE}/a` })).statusCode, 404);
});

t.test('list: filters, sorted, unknown service is empty, revision header', async (t) => {
  const { app } = await buildTestApp(t);
  await app.inject({ method: 'PUT', url: `${BASE}/b`, payload: { ...valid, zone: 'z1', tags: ['x'] } });
  await app.inject({ method: 'PUT', url: `${BASE}/a`, payload: { ...valid, status: 'down', zone: 'z2' } });
  await app.inject({ method: 'PUT', url: '/v1/namespaces/default/services/api/instances/c', payload: valid });
  const all = await app.inject({ url: BASE });
  t.equal(all.statusCode, 200);
  t.equal(all.headers['x-rollcall-revision'], '3');
  t.same(all.json().items.map((i: any) => i.id), ['a', 'b']);
  t.equal(all.json().revision, 3);
  t.same((await app.inject({ url: `${BASE}?status=down` })).json().items.map((i: any) => i.id), ['a']);
  t.same((await app.inject({ url: `${BASE}?zone=z1` })).json().items.map((i: any) => i.id), ['b']);
  t.same((await app.inject({ url: `${BASE}?tag=x` })).json().items.map((i: any) => i.id), ['b']);
  t.same((await app.inject({ url: '/v1/namespaces/default/services/nothing/instances' })).json(), { revision: 3, items: [] });
  t.equal((await app.inject({ url: `${BASE}?status=sleeping` })).statusCode, 400);

  const services = (await app.inject({ url: '/v1/namespaces/default/services' })).json();
  t.same(services, {
    revision: 3,
    items: [
      { name: 'api', instances: 1, up: 1 },
      { name: 'web', instances: 2, up: 1 },
    ],
  });
  t.same((await app.inject({ url: '/v1/namespaces/empty/services' })).json(), { revision: 3, items: [] });
  t.same((await app.inject({ url: '/v1/namespaces' })).json(), { revision: 3, items: [{ name: 'default', services: 2, instances: 3 }] });
});

t.test('validation: every rule answers 400 with the offending field named, and stores nothing', async (t) => {
  const { app } = await buildTestApp(t);
  const cases: { name: string; url?: string; body: unknown; field: string }[] = [
    { name: 'namespace uppercase', url: '/v1/namespaces/Default/services/web/instances/a', body: valid, field: 'params.namespace' },
    { name: 'namespace leading dash', url: '/v1/namespaces/-x/services/web/instances/a', body: valid, field: 'params.namespace' },
    { name: 'namespace 64 chars', url: `/v1/namespaces/${'a'.repeat(64)}/services/web/instances/a`, body: valid, field: 'params.namespace' },
    { name: 'service underscore', url: '/v1/namespaces/default/services/my_svc/instances/a', body: valid, field: 'params.service' },
    { name: 'service trailing dash', url: '/v1/namespaces/default/services/web-/instances/a', body: valid, field: 'params.service' },
    { name: 'id bad char', url: `${BASE}/a%20b`, body: valid, field: 'params.id' },
    { name: 'id 129 chars', url: `${BASE}/${'a'.repeat(129)}`, body: valid, field: 'params.id' },
    { name: 'address garbage', body: { ...valid, address: 'not an address!' }, field: 'body.address' },
    { name: 'address missing', body: { port: 80 }, field: 'body.address' },
    { name: 'address bad ipv4-ish host', body: { ...valid, address: 'a..b' }, field: 'body.address' },
    { name: 'port 0', body: { ...valid, port: 0 }, field: 'body.port' },
    { name: 'port 65536', body: { ...valid, port: 65536 }, field: 'body.port' },
    { name: 'port fraction', body: { ...valid, port: 80.5 }, field: 'body.port' },
    { name: 'port string', body: { ...valid, port: '80' }, field: 'body.port' },
    { name: 'status unknown', body: { ...valid, status: 'sleeping' }, field: 'body.status' },
    { name: 'weight 257', body: { ...valid, weight: 257 }, field: 'body.weight' },
    { name: 'weight negative', body: { ...valid, weight: -1 }, field: 'body.weight' },
    { name: 'ttl 0', body: { ...valid, ttlSeconds: 0 }, field: 'body.ttlSeconds' },
    { name: 'ttl 86401', body: { ...valid, ttlSeconds: 86401 }, field: 'body.ttlSeconds' },
    { name: '33 tags', body: { ...valid, tags: Array.from({ length: 33 }, (_, i) => `t${i}`) }, field: 'body.tags' },
    { name: 'empty tag', body: { ...valid, tags: [''] }, field: 'body.tags.0' },
    { name: '65-char tag', body: { ...valid, tags: ['x'.repeat(65)] }, field: 'body.tags.0' },
    { name: '65 metadata keys', body: { ...valid, metadata: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v'])) }, field: 'body.metadata' },
    { name: '129-char metadata key', body: { ...valid, metadata: { ['k'.repeat(129)]: 'v' } }, field: `body.metadata.${'k'.repeat(129)}` },
    { name: 'metadata value not string', body: { ...valid, metadata: { k: 1 } }, field: 'body.metadata.k' },
    { name: '1025-char metadata value', body: { ...valid, metadata: { k: 'v'.repeat(1025) } }, field: 'body.metadata.k' },
    { name: '65-char zone', body: { ...valid, zone: 'z'.repeat(65) }, field: 'body.zone' },
    { name: 'unknown field', body: { ...valid, colour: 'red' }, field: 'body' },
  ];
  for (const c of cases) {
    const res = await app.inject({ method: 'PUT', url: c.url ?? `${BASE}/a`, payload: c.body as object });
    t.equal(res.statusCode, 400, c.name);
    const body = res.json();
    t.equal(body.error, 'validation_failed', `${c.name}: code`);
    t.ok(body.details.some((d: any) => d.path === c.field), `${c.name}: names ${c.field} (got ${JSON.stringify(body.details)})`);
    t.type(body.message, 'string');
  }
  // Good limits are accepted.
  const edge = {
    address: '2001:db8::1',
    port: 65535,
    weight: 0,
    ttlSeconds: 86400,
    tags: Array.from({ length: 32 }, (_, i) => `t${i}`),
    metadata: Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`k${i}`, 'v'.repeat(1024)])),
    zone: 'z'.repeat(64),
  };
  t.equal((await app.inject({ method: 'PUT', url: `${BASE}/${'a'.repeat(128)}`, payload: edge })).statusCode, 201);
  t.equal((await app.inject({ method: 'PUT', url: `${BASE}/host`, payload: { ...valid, address: 'web-1.internal.example.com' } })).statusCode, 201);
  t.equal(
    (await app.inject({ method: 'PUT', url: `/v1/namespaces/${'n'.repeat(63)}/services/a1/instances/x.y_z:1-2`, payload: valid })).statusCode,
    201,
  );
  t.equal(app.registry.revision, 3, 'nothing invalid was stored');
});

t.test('bad bodies: malformed JSON 400, over 1 MiB 413, wrong content type 415, all JSON errors', async (t) => {
  const { app } = await buildTestApp(t);
  await app.inject({ method: 'PUT', url: `${BASE}/a`, payload: valid });
  const malformed = await app.inject({ method: 'PUT', url: `${BASE}/a`, headers: { 'content-type': 'application/json' }, payload: '{"address":' });
  t.equal(malformed.statusCode, 400);
  t.equal(malformed.json().error, 'invalid_json');
  const big = await app.inject({
    method: 'PUT',
    url: `${BASE}/a`,
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify({ ...valid, metadata: { k: 'x'.repeat(1024 * 1024) } }),
  });
  t.equal(big.statusCode, 413);
  t.equal(big.json().error, 'body_too_large');
  const text = await app.inject({ method: 'PUT', url: `${BASE}/a`, headers: { 'content-type': 'application/xml' }, payload: '<a/>' });
  t.equal(text.statusCode, 415);
  t.equal(text.json().error, 'unsupported_media_type');
  const empty = await app.inject({ method: 'PUT', url: `${BASE}/a`, headers: { 'content-type': 'application/json' }, payload: '' });
  t.equal(empty.statusCode, 400);
  t.type(empty.json().error, 'string');
  const notFound = await app.inject({ url: '/v2/nothing' });
  t.equal(notFound.statusCode, 404);
  t.same(notFound.json(), { error: 'not_found', message: 'No route GET /v2/nothing.' });
  const got = await app.inject({ url: `${BASE}/a` });
  t.equal(got.json().revision, 1, 'the stored instance is untouched');
});

t.test('bearer token, when configured, guards /v1 but not ops routes', async (t) => {
  const { app } = await buildTestApp(t, { config: { token: 's3cret' } });
  const denied = await app.inject({ method: 'PUT', url: `${BASE}/a`, payload: valid });
  t.equal(denied.statusCode, 401);
  t.equal(denied.json().error, 'unauthorized');
  const ok = await app.inject({ method: 'PUT', url: `${BASE}/a`, payload: valid, headers: { authorization: 'Bearer s3cret' } });
  t.equal(ok.statusCode, 201);
  t.equal((await app.inject({ url: '/healthz' })).statusCode, 200);
});
