// GET /v1/namespaces/:namespace/render/{nginx,haproxy}: text/plain configs from the live registry, 400s for bad input.
import t from 'tap';
import { renderHaproxy } from '../src/generators/haproxy.js';
import { renderNginx } from '../src/generators/nginx.js';
import { parseGeneratorOptions } from '../src/generators/options.js';
import { buildTestApp } from './helper.js';

t.test('render routes', async (t) => {
  const { app } = await buildTestApp(t);
  const put = (service: string, id: string, body: Record<string, unknown>) =>
    app.inject({ method: 'PUT', url: `/v1/namespaces/shop/services/${service}/instances/${id}`, payload: { address: '10.0.0.1', port: 8080, ...body } });
  t.equal((await put('api', 'api-1', { address: '10.0.0.1', weight: 2, metadata: { evil: '}; include /etc/passwd;' }, tags: ['#x;'] })).statusCode, 201);
  t.equal((await put('api', 'api-2', { address: '10.0.0.2', status: 'draining' })).statusCode, 201);
  t.equal((await put('web', 'web-1', { address: '10.0.1.1', status: 'starting' })).statusCode, 201);
  t.equal((await app.inject({ method: 'PUT', url: '/v1/namespaces/other/services/api/instances/x', payload: { address: '10.9.9.9', port: 1 } })).statusCode, 201);
  const items = app.registry.list({ namespace: 'shop' }).items;

  for (const [proxy, render] of [['nginx', renderNginx], ['haproxy', renderHaproxy]] as const) {
    const res = await app.inject({ url: `/v1/namespaces/shop/render/${proxy}?listen=127.0.0.1:8080&balance=least_conn` });
    t.equal(res.statusCode, 200, `${proxy}: 200`);
    t.match(res.headers['content-type'], /^text\/plain/, `${proxy}: text/plain`);
    t.ok(Number(res.headers['x-rollcall-revision']) >= 4, `${proxy}: carries the revision`);
    t.equal(res.body, render({ namespace: 'shop', instances: items }, parseGeneratorOptions({ listen: '127.0.0.1:8080', balance: 'least_conn' })), `${proxy}: the pure generator's output`);
    t.notOk(res.body.includes('/etc/passwd') || res.body.includes('10.9.9.9'), `${proxy}: no metadata, no other namespace`);
    const again = await app.inject({ url: `/v1/namespaces/shop/render/${proxy}?listen=127.0.0.1:8080&balance=least_conn` });
    t.equal(again.body, res.body, `${proxy}: byte-identical for the same state`);

    const only = await app.inject({ url: `/v1/namespaces/shop/render/${proxy}?service=web,ghost` });
    t.equal(only.statusCode, 200);
    t.notOk(only.body.includes('rc_shop_api'), `${proxy}: service filter leaves api out`);
    t.ok(only.body.includes('ghost.shop'), `${proxy}: a requested service without instances is still routed (503)`);
    t.match(only.body, proxy === 'nginx' ? /listen 80 default_server;/ : /bind :80\n/, `${proxy}: listen defaults to 80`);

    for (const [query, field] of [
      ['balance=first', 'querystring.balance'],
      ['listen=abc', 'querystring.listen'],
      ['listen=70000', 'querystring.listen'],
      ['service=Bad_Name', 'querystring.service'],
      ['color=red', 'querystring'],
    ] as const) {
      const bad = await app.inject({ url: `/v1/namespaces/shop/render/${proxy}?${query}` });
      t.equal(bad.statusCode, 400, `${proxy} ?${query}: 400`);
      t.match(bad.json(), { error: 'validation_failed', details: [{ path: field }] }, `${proxy} ?${query}: names the field`);
    }
    const badNs = await app.inject({ url: `/v1/namespaces/Not_A_Label/render/${proxy}` });
    t.equal(badNs.statusCode, 400);
  }
});

t.test('render routes are in the OpenAPI spec with their query and 400', async (t) => {
  const { app } = await buildTestApp(t);
  const spec = app.swagger() as { paths: Record<string, { get?: { parameters?: { name: string }[]; responses?: Record<string, { content?: Record<string, unknown> }> } }> };
  for (const proxy of ['nginx', 'haproxy']) {
    const op = spec.paths[`/v1/namespaces/{namespace}/render/${proxy}`]?.get;
    t.ok(op, `${proxy} documented`);
    t.same(op?.parameters?.map((p) => p.name).sort(), ['balance', 'listen', 'namespace', 'service']);
    t.ok(op?.responses?.['200']?.content?.['text/plain'], 'text/plain 200');
    t.ok(op?.responses?.['400'], '400 documented');
  }
});
