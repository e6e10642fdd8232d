// The Consul-compatible API, proven with the npm `consul` client and with the exact requests Prometheus'
// consul_sd makes (discovery/consul/consul.go: agent/self, then blocking catalog/services and health/service).
import t, { type Test } from 'tap';
import Consul from 'consul';
import { api, startServer, waitFor } from './helper.js';

async function start(t: Test, config: Record<string, unknown> = {}) {
  const server = await startServer(t, { config: { consulListen: '127.0.0.1:0', ...config } });
  const consulUrl = server.app.consulUrl!;
  const consul = new Consul({ host: '127.0.0.1', port: Number(new URL(consulUrl).port) });
  t.teardown(() => consul.destroy());
  return { ...server, consulUrl, consul };
}

const instanceUrl = (url: string, service: string, id: string) => `${url}/v1/namespaces/default/services/${service}/instances/${id}`;

t.test('npm consul: register with a TTL check, pass it, read catalog and health, deregister', async (t) => {
  const { url, consul } = await start(t);
  await consul.agent.service.register({
    name: 'web',
    id: 'web-1',
    address: '127.0.0.1',
    port: 8080,
    tags: ['v1', 'http'],
    meta: { version: '1.2.3' },
    check: { name: 'web alive', ttl: '30s', timeout: '1s', deregistercriticalserviceafter: '1m' },
  });
  let got = await api(instanceUrl(url, 'web', 'web-1'));
  t.equal(got.status, 200, 'visible through rollcall');
  t.match(got.body, { status: 'starting', weight: 1, ttlSeconds: 30, tags: ['v1', 'http'], metadata: { version: '1.2.3', 'consul-check': 'critical' } });

  const [critical] = await consul.health.service({ service: 'web' });
  t.equal(critical.Checks.find((c: any) => c.CheckID === 'service:web-1').Status, 'critical', 'a TTL check starts critical');
  t.same(await consul.health.service({ service: 'web', passing: true }), [], 'not passing until the first pass');

  await consul.agent.check.pass('service:web-1');
  got = await api(instanceUrl(url, 'web', 'web-1'));
  t.equal(got.body.status, 'up', 'pass = up');
  t.same(got.body.metadata, { version: '1.2.3' }, 'the check marker is gone');

  const catalog = await consul.catalog.service.nodes('web');
  t.match(catalog, [{ Node: 'rollcall', ServiceID: 'web-1', ServiceName: 'web', ServiceAddress: '127.0.0.1', ServicePort: 8080, ServiceTags: ['v1', 'http'], ServiceMeta: { version: '1.2.3' }, ServiceWeights: { Passing: 1 } }]);
  t.same(await consul.catalog.service.list(), { web: ['http', 'v1'] });
  const healthy = await consul.health.service({ service: 'web', passing: true });
  t.equal(healthy.length, 1);
  t.match(healthy[0], { Node: { Node: 'rollcall', Datacenter: 'dc1' }, Service: { ID: 'web-1', Service: 'web', Port: 8080 } });
  t.same(
    healthy[0].Checks.map((c: any) => [c.CheckID, c.Status]),
    [
      ['serfHealth', 'passing'],
      ['service:web-1', 'passing'],
    ],
  );
  const services = await consul.agent.service.list();
  t.match(services['web-1'], { ID: 'web-1', Service: 'web', Port: 8080 });

  await consul.agent.service.deregister('web-1');
  t.equal((await api(instanceUrl(url, 'web', 'web-1'))).status, 404, 'deregistered everywhere');
  t.same(await consul.catalog.service.nodes('web'), []);
});

t.test('npm consul: warn, fail, update and maintenance map onto rollcall statuses', async (t) => {
  const { url, consul, consulUrl } = await start(t);
  await consul.agent.service.register({ name: 'api', id: 'api-1', address: '127.0.0.1', port: 9000, check: { name: 'api alive', ttl: '60s', timeout: '1s', status: 'passing' } });
  t.equal((await api(instanceUrl(url, 'api', 'api-1'))).body.status, 'up', 'Status passing registers up');

  await consul.agent.check.warn({ id: 'service:api-1', note: 'slow' });
  const got = await api(instanceUrl(url, 'api', 'api-1'));
  t.match(got.body, { status: 'up', metadata: { 'consul-check': 'warning' } }, 'warning = up with a marker');
  t.same(await consul.health.service({ service: 'api', passing: true }), [], 'passing excludes warning, as Consul does');

  await consul.agent.check.fail('service:api-1');
  t.equal((await api(instanceUrl(url, 'api', 'api-1'))).body.status, 'down', 'critical = down');

  await consul.agent.service.maintenance({ id: 'api-1', enable: true, reason: 'deploy' });
  t.equal((await api(instanceUrl(url, 'api', 'api-1'))).body.status, 'draining', 'maintenance = draining');
  const [entry] = await consul.health.service('api');
  t.ok(entry.Checks.some((c: any) => c.CheckID === '_service_maintenance:api-1' && c.Status === 'critical'), 'maintenance check shown');

  const elsewhere = await fetch(`${(await start(t)).consulUrl}/v1/agent/check/update/service:api-1`, { method: 'PUT', body: '{"Status":"passing"}' });
  t.equal(elsewhere.status, 404, 'another registry does not know the check');

  await consul.agent.check.pass('service:api-1');
  t.equal((await api(instanceUrl(url, 'api', 'api-1'))).body.status, 'draining', 'a pass during maintenance stays draining');
  const here = (await api(`${url}/v1/namespaces/default/services/api/instances/api-1`)).body;
  t.equal(here.metadata['consul-check'], undefined);
  await consul.agent.service.maintenance({ id: 'api-1', enable: false });
  t.equal((await api(instanceUrl(url, 'api', 'api-1'))).body.status, 'up', 'leaving maintenance returns to what the check said');

  // The npm client has no check update; this is Consul's PUT /v1/agent/check/update/:check_id.
  const update = (body: object) => fetch(`${consulUrl}/v1/agent/check/update/service:api-1`, { method: 'PUT', body: JSON.stringify(body) });
  t.equal((await update({ Status: 'critical', Output: 'disk full' })).status, 200);
  t.equal((await api(instanceUrl(url, 'api', 'api-1'))).body.status, 'down', 'update Status critical = down');
  t.equal((await update({ Status: 'passing' })).status, 200);
  t.equal((await update({ Status: 'bogus' })).status, 400);
  t.equal((await api(instanceUrl(url, 'api', 'api-1'))).body.status, 'up', 'update Status passing = up');
});

t.test('a blocking watch fires on a change made through rollcall’s own REST API', async (t) => {
  const { url, consul } = await start(t);
  await consul.agent.service.register({ name: 'pay', id: 'pay-1', address: '127.0.0.1', port: 7000 });
  const watch = consul.watch({ method: consul.health.service, options: { service: 'pay', wait: '30s' } });
  t.teardown(() => watch.end());
  const seen: string[][] = [];
  watch.on('change', (data: any[]) => seen.push(data.map((e) => e.Service.ID)));
  watch.on('error', (err: Error) => t.fail(`watch error: ${err.message}`));
  await waitFor(() => seen.length >= 1, 10_000, 'the first answer');
  t.same(seen[0], ['pay-1']);
  const put = await api(instanceUrl(url, 'pay', 'pay-2'), 'PUT', { address: '127.0.0.2', port: 7000 });
  t.equal(put.status, 201);
  await waitFor(() => seen.length >= 2, 10_000, 'the watch to fire');
  t.same(seen[1], ['pay-1', 'pay-2']);
});

t.test('the requests Prometheus consul_sd makes, and the labels it derives from the answers', async (t) => {
  const { url, consulUrl } = await start(t);
  await api(instanceUrl(url, 'node-exporter', 'ne-1'), 'PUT', { address: '10.1.2.3', port: 9100, tags: ['prod', 'linux'], metadata: { 'rack.id': 'r7' } });
  const get = async (path: string) => {
    const res = await fetch(`${consulUrl}${path}`, { headers: { 'user-agent': 'Prometheus/2.42.0' } });
    return { res, body: (await res.json()) as any };
  };
  // 1. getDatacenter(): Agent().Self(), reads Config.Datacenter.
  const self = await get('/v1/agent/self');
  t.equal(self.body.Config.Datacenter, 'dc1');
  // 2. watchServices(): Catalog().Services with WaitIndex 0 (no index param), WaitTime 2m, AllowStale.
  const services = await get('/v1/catalog/services?stale=&wait=120000ms');
  t.same(services.body, { 'node-exporter': ['linux', 'prod'] });
  const lastIndex = Number(services.res.headers.get('x-consul-index'));
  t.ok(lastIndex > 0, 'X-Consul-Index is set and never 0');
  t.equal(services.res.headers.get('x-consul-knownleader'), 'true');
  t.equal(services.res.headers.get('x-consul-lastcontact'), '0');
  // 3. watchService(): Health().ServiceMultipleTags(name, tags, passingOnly=false) with the same options.
  const health = await get('/v1/health/service/node-exporter?stale=&wait=120000ms');
  const derived = health.body.map((sn: any) => {
    const labels: Record<string, string> = {
      __address__: `${sn.Service.Address || sn.Node.Address}:${sn.Service.Port}`,
      __meta_consul_address: sn.Node.Address,
      __meta_consul_node: sn.Node.Node,
      __meta_consul_tags: `,${sn.Service.Tags.join(',')},`,
      __meta_consul_service_address: sn.Service.Address,
      __meta_consul_service_port: String(sn.Service.Port),
      __meta_consul_service_id: sn.Service.ID,
      __meta_consul_health: sn.Checks.some((c: any) => c.Status === 'critical') ? 'critical' : sn.Checks.some((c: any) => c.Status === 'warning') ? 'warning' : 'passing',
    };
    for (const [k, v] of Object.entries(sn.Service.Meta as Record<string, string>)) labels[`__meta_consul_service_metadata_${k.replace(/[^a-zA-Z0-9_]/g, '_')}`] = v;
    return labels;
  });
  t.same(derived, [
    {
      __address__: '10.1.2.3:9100',
      __meta_consul_address: '127.0.0.1',
      __meta_consul_node: 'rollcall',
      __meta_consul_tags: ',prod,linux,',
      __meta_consul_service_address: '10.1.2.3',
      __meta_consul_service_port: '9100',
      __meta_consul_service_id: 'ne-1',
      __meta_consul_health: 'passing',
      __meta_consul_service_metadata_rack_id: 'r7',
    },
  ]);
  // 4. The next round blocks on the index it got and wakes on a change.
  const serviceIndex = Number(health.res.headers.get('x-consul-index'));
  const t0 = Date.now();
  const blocked = get(`/v1/health/service/node-exporter?index=${serviceIndex}&stale=&wait=120000ms`);
  let answered = false;
  void blocked.then(() => (answered = true));
  await waitFor(async () => (await api(`${url}/metrics`)).body.includes('rollcall_long_polls_waiting 1'), 10_000, 'the query to block');
  t.notOk(answered, 'still blocked before the change');
  await api(instanceUrl(url, 'node-exporter', 'ne-1'), 'PATCH', { status: 'down' });
  const woke = await blocked;
  t.ok(Date.now() - t0 < 60_000, 'answered by the change, not the wait');
  t.ok(Number(woke.res.headers.get('x-consul-index')) > serviceIndex, 'the index moved');
  t.equal(woke.body[0].Checks.find((c: any) => c.CheckID === 'service:ne-1').Status, 'critical');
  // 5. An index ahead of the registry (its data was reset) answers at once with a lower index: the client resets.
  const ahead = await get(`/v1/catalog/services?index=${lastIndex + 1000}&wait=120000ms`);
  t.ok(Number(ahead.res.headers.get('x-consul-index')) < lastIndex + 1000);
});

t.test('checks rollcall cannot run are refused; errors are plain text as Consul sends them', async (t) => {
  const { consulUrl, consul } = await start(t);
  const refused = await consul.agent.service
    .register({ name: 'web', port: 80, check: { name: 'http', http: 'http://127.0.0.1/health', interval: '10s', timeout: '1s' } })
    .then(
      () => undefined,
      (err: { response?: { statusCode: number; body: unknown } }) => err.response,
    );
  t.equal(refused?.statusCode, 400, 'the client sees a 400');
  t.match(String(refused?.body), /^rollcall cannot run HTTP checks: register a TTL check/);
  const put = (path: string, body?: string) => fetch(`${consulUrl}${path}`, { method: 'PUT', ...(body === undefined ? {} : { body }) });
  let res = await put('/v1/agent/service/register', '{"Name":"Bad_Name","Port":80}');
  t.equal(res.status, 400);
  t.match(res.headers.get('content-type'), /^text\/plain/);
  t.match(await res.text(), /^Invalid service name "Bad_Name"/);
  res = await put('/v1/agent/service/register', '{"Port":80}');
  t.equal(await res.text(), 'Missing service name');
  res = await put('/v1/agent/service/register', '{not json');
  t.equal(res.status, 400);
  t.match(await res.text(), /^Request decode failed/);
  res = await put('/v1/agent/check/pass/service:nope');
  t.equal(res.status, 404);
  t.equal(await res.text(), 'Unknown check ID "service:nope". Ensure that the check ID is passed, not the check name.');
  res = await put('/v1/agent/service/deregister/nope');
  t.equal(res.status, 404);
  res = await fetch(`${consulUrl}/v1/health/service/web?filter=${encodeURIComponent('Service.Port == 80 or Service.Port == 81')}`);
  t.equal(res.status, 400, 'a filter outside the supported subset is refused, not misread');
  t.match(await res.text(), /cannot read "Service.Port == 80 or Service.Port == 81"/);
  res = await fetch(`${consulUrl}/v1/health/service/web?dc=eu`);
  t.match(await res.text(), /^No path to datacenter/);
  res = await fetch(`${consulUrl}/v1/health/service/web?index=abc`);
  t.equal(await res.text(), 'Invalid index: abc');
  res = await fetch(`${consulUrl}/v1/catalog/services?ns=Not_A_Label`);
  t.equal(res.status, 400);
});

t.test('?ns= maps to a rollcall namespace; upper-case names are lower-cased', async (t) => {
  const { url, consulUrl } = await start(t);
  const res = await fetch(`${consulUrl}/v1/agent/service/register?ns=team-a`, { method: 'PUT', body: JSON.stringify({ Name: 'Billing', ID: 'b1', Address: '127.0.0.1', Port: 81, Weights: { Passing: 5, Warning: 1 } }) });
  t.equal(res.status, 200);
  t.equal((await api(`${url}/v1/namespaces/team-a/services/billing/instances/b1`)).body.weight, 5, 'Weights.Passing = weight');
  t.same(await (await fetch(`${consulUrl}/v1/catalog/services`)).json(), {}, 'not in the default namespace');
  t.same(Object.keys((await (await fetch(`${consulUrl}/v1/catalog/services?ns=team-a`)).json()) as object), ['billing']);
});

t.test('with --token, the Consul API wants it in X-Consul-Token', async (t) => {
  const { consulUrl } = await start(t, { token: 's3cret' });
  t.equal((await fetch(`${consulUrl}/v1/catalog/services`)).status, 403);
  t.equal((await fetch(`${consulUrl}/v1/catalog/services`, { headers: { 'x-consul-token': 's3cret' } })).status, 200);
});

t.test('?filter= (the supported subset) on health, catalog and agent reads', async (t) => {
  const { url, consulUrl } = await start(t);
  const put = (id: string, body: object) => api(instanceUrl(url, 'db', id), 'PUT', { address: '10.0.0.1', ...body });
  await put('db-1', { port: 5432, tags: ['primary'], metadata: { version: '15' } });
  await put('db-2', { port: 5433, tags: ['replica'], metadata: { version: '14' } });
  await put('db-3', { port: 5434, tags: ['replica'], status: 'down' });
  const ids = async (path: string, filter: string) => {
    const res = await fetch(`${consulUrl}${path}${path.includes('?') ? '&' : '?'}filter=${encodeURIComponent(filter)}`);
    t.equal(res.status, 200, filter);
    const body = (await res.json()) as any;
    return Array.isArray(body) ? body.map((e: any) => e.Service?.ID ?? e.ServiceID) : Object.keys(body);
  };
  t.same(await ids('/v1/health/service/db', '"replica" in Service.Tags'), ['db-2', 'db-3']);
  t.same(await ids('/v1/health/service/db', '"replica" in Service.Tags and Service.Port != 5434'), ['db-2']);
  t.same(await ids('/v1/health/service/db', 'Service.Meta.version == "15"'), ['db-1']);
  t.same(await ids('/v1/health/service/db', 'Service.Meta is empty'), ['db-3']);
  t.same(await ids('/v1/catalog/service/db', 'ServiceTags contains primary'), ['db-1']);
  t.same(await ids('/v1/agent/services', '"version" in Meta and Port == 5433'), ['db-2']);
  t.same(await ids('/v1/catalog/services', 'ServiceTags contains "nope"'), [], 'catalog/services filters the catalog entries');
});

t.test('a custom CheckID answers pass/fail; two checks are refused (one lease per instance)', async (t) => {
  const { url, consulUrl } = await start(t);
  const put = (path: string, body?: object) => fetch(`${consulUrl}${path}`, { method: 'PUT', ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  let res = await put('/v1/agent/service/register', { Name: 'cache', ID: 'cache-1', Address: '127.0.0.1', Port: 6379, Checks: [{ CheckID: 'cache-alive', TTL: '30s' }] });
  t.equal(res.status, 200);
  t.equal((await api(instanceUrl(url, 'cache', 'cache-1'))).body.status, 'starting');
  t.equal((await put('/v1/agent/check/pass/cache-alive')).status, 200);
  t.equal((await api(instanceUrl(url, 'cache', 'cache-1'))).body.status, 'up', 'passed through its own check id');
  const checks = (await (await fetch(`${consulUrl}/v1/agent/checks`)).json()) as Record<string, { Status: string; ServiceID: string }>;
  t.match(checks['cache-alive'], { Status: 'passing', ServiceID: 'cache-1' });
  t.equal((await put('/v1/agent/check/pass/service:cache-1')).status, 404, 'the default id is not its id');
  res = await put('/v1/agent/service/register', { Name: 'cache', ID: 'cache-2', Port: 6380, Checks: [{ TTL: '10s' }, { TTL: '20s' }] });
  t.equal(res.status, 400);
  t.match(await res.text(), /at most one TTL check/);
  res = await put('/v1/agent/service/register', { Name: 'other', ID: 'cache-1', Port: 1 });
  t.equal(res.status, 400, 'an ID already used by another service');
});

t.test('node views: catalog/node, health/node and health/state', async (t) => {
  const { url, consulUrl } = await start(t);
  await api(instanceUrl(url, 'web', 'w1'), 'PUT', { address: '10.0.0.1', port: 80 });
  await api(instanceUrl(url, 'web', 'w2'), 'PUT', { address: '10.0.0.2', port: 80, status: 'down' });
  const get = async (path: string) => {
    const res = await fetch(`${consulUrl}${path}`);
    return { status: res.status, body: (await res.json()) as any };
  };
  const nodeView = await get('/v1/catalog/node/rollcall');
  t.same(Object.keys(nodeView.body.Services), ['w1', 'w2']);
  t.equal(nodeView.body.Node.Node, 'rollcall');
  t.equal((await get('/v1/catalog/node/elsewhere')).body, null, 'an unknown node is null, as Consul answers');
  t.same((await get('/v1/health/node/rollcall')).body.map((c: any) => c.CheckID), ['serfHealth', 'service:w1', 'service:w2']);
  t.same((await get('/v1/health/state/critical')).body.map((c: any) => c.CheckID), ['service:w2']);
  t.equal((await get('/v1/health/state/any')).body.length, 3);
  t.equal((await fetch(`${consulUrl}/v1/health/state/sleepy`)).status, 400);
});
