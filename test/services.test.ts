// Explicit Services over HTTP: create/replace/get/delete, virtual IP allocation and its errors, the catalog,
// blocking queries, restarts.
import t from 'tap';
import { api, buildTestApp, startServer } from './helper.js';

const svc = (url: string, ns: string, name: string) => `${url}/v1/namespaces/${ns}/services/${name}`;
const inst = (url: string, ns: string, name: string, id: string) => `${svc(url, ns, name)}/instances/${id}`;

t.test('create, identical PUT, replace, get, delete: statuses, answers and revisions', async (t) => {
  const { url } = await startServer(t);
  const created = await api(svc(url, 'default', 'web'), 'PUT', { ports: [{ port: 80, targetPort: 8080 }] });
  t.equal(created.status, 201);
  t.match(created.body, {
    namespace: 'default',
    name: 'web',
    virtualIP: '127.77.0.1',
    ports: [{ name: null, port: 80, targetPort: 8080, protocol: 'tcp' }],
    revision: 1,
    createRevision: 1,
  });
  t.ok(Number.isFinite(Date.parse(created.body.createdAt)), 'createdAt is a date');

  const same = await api(svc(url, 'default', 'web'), 'PUT', { ports: [{ port: 80, targetPort: 8080, protocol: 'tcp' }] });
  t.equal(same.status, 200, 'an identical PUT is 200');
  t.same(same.body, created.body, 'and changes nothing: no new revision');

  const replaced = await api(svc(url, 'default', 'web'), 'PUT', {
    ports: [
      { name: 'http', port: 80 },
      { name: 'metrics', port: 9100, targetPort: 9100 },
    ],
  });
  t.equal(replaced.status, 200);
  t.match(replaced.body, { virtualIP: '127.77.0.1', revision: 2, createRevision: 1, createdAt: created.body.createdAt });
  t.same(replaced.body.ports, [
    { name: 'http', port: 80, targetPort: null, protocol: 'tcp' },
    { name: 'metrics', port: 9100, targetPort: 9100, protocol: 'tcp' },
  ]);

  const got = await api(svc(url, 'default', 'web'));
  t.equal(got.status, 200);
  t.same(got.body, replaced.body);
  t.equal(got.headers.get('x-rollcall-revision'), '2');

  t.equal((await api(svc(url, 'default', 'web'), 'DELETE')).status, 204);
  const gone = await api(svc(url, 'default', 'web'));
  t.equal(gone.status, 404);
  t.equal(gone.body.error, 'service_not_found');
  t.match(gone.body.message, /"web".*"default"/);
  t.equal((await api(svc(url, 'default', 'web'), 'DELETE')).body.error, 'service_not_found');
  t.equal((await api(`${url}/v1/namespaces/default/services/nope`)).status, 404);
});

t.test('virtual IPs: allocated in order, never twice, requested ones honoured, released ones not reused at once', async (t) => {
  const { url } = await startServer(t);
  const a = await api(svc(url, 'default', 'a'), 'PUT', { ports: [{ port: 80 }] });
  const b = await api(svc(url, 'team-b', 'b'), 'PUT', { ports: [{ port: 80 }] });
  t.equal(a.body.virtualIP, '127.77.0.1');
  t.equal(b.body.virtualIP, '127.77.0.2', 'one range for every namespace');
  const asked = await api(svc(url, 'default', 'c'), 'PUT', { ports: [{ port: 80 }], virtualIP: '127.77.0.3' });
  t.equal(asked.status, 201);
  t.equal(asked.body.virtualIP, '127.77.0.3');
  const next = await api(svc(url, 'default', 'd'), 'PUT', { ports: [{ port: 80 }] });
  t.equal(next.body.virtualIP, '127.77.0.4', 'allocation skips an address taken by request');

  const taken = await api(svc(url, 'default', 'e'), 'PUT', { ports: [{ port: 80 }], virtualIP: '127.77.0.1' });
  t.equal(taken.status, 409);
  t.equal(taken.body.error, 'virtual_ip_taken');
  t.equal((await api(svc(url, 'default', 'e'))).status, 404, 'nothing created by a refused PUT');

  for (const [ip, why] of [
    ['10.0.0.1', 'outside the range'],
    ['127.77.0.0', 'the network address'],
    ['127.77.255.255', 'the broadcast address'],
    ['::1', 'another family'],
  ] as const) {
    const res = await api(svc(url, 'default', 'e'), 'PUT', { ports: [{ port: 80 }], virtualIP: ip });
    t.equal(res.status, 422, why);
    t.equal(res.body.error, 'virtual_ip_out_of_range', why);
    t.match(res.body.message, /127\.77\.0\.0\/16/, why);
  }

  const moved = await api(svc(url, 'default', 'a'), 'PUT', { ports: [{ port: 80 }], virtualIP: '127.77.0.9' });
  t.equal(moved.status, 409);
  t.equal(moved.body.error, 'virtual_ip_immutable');
  const keep = await api(svc(url, 'default', 'a'), 'PUT', { ports: [{ port: 81 }], virtualIP: '127.77.0.1' });
  t.equal(keep.status, 200, 'asking for the address it has is fine');
  const keepImplicit = await api(svc(url, 'default', 'a'), 'PUT', { ports: [{ port: 82 }] });
  t.equal(keepImplicit.body.virtualIP, '127.77.0.1', 'a PUT without virtualIP keeps the address');

  await api(svc(url, 'default', 'd'), 'DELETE');
  const after = await api(svc(url, 'default', 'f'), 'PUT', { ports: [{ port: 80 }] });
  t.equal(after.body.virtualIP, '127.77.0.5', 'a released address is not handed out again at once');
  const reuse = await api(svc(url, 'default', 'g'), 'PUT', { ports: [{ port: 80 }], virtualIP: '127.77.0.4' });
  t.equal(reuse.status, 201, 'but can be asked for');
});

t.test('a full range answers 409 service_cidr_full; a delete frees room', async (t) => {
  const { url } = await startServer(t, { config: { serviceCidr: '127.78.0.0/30' } });
  t.equal((await api(svc(url, 'default', 'a'), 'PUT', { ports: [{ port: 80 }] })).body.virtualIP, '127.78.0.1');
  t.equal((await api(svc(url, 'default', 'b'), 'PUT', { ports: [{ port: 80 }] })).body.virtualIP, '127.78.0.2');
  const full = await api(svc(url, 'default', 'c'), 'PUT', { ports: [{ port: 80 }] });
  t.equal(full.status, 409);
  t.equal(full.body.error, 'service_cidr_full');
  t.match(full.body.message, /127\.78\.0\.0\/30/);
  const metrics = await (await fetch(`${url}/metrics`)).text();
  t.match(metrics, /rollcall_virtual_ips_used 2\n/);
  t.match(metrics, /rollcall_virtual_ips_capacity 2\n/);
  await api(svc(url, 'default', 'a'), 'DELETE');
  t.equal((await api(svc(url, 'default', 'c'), 'PUT', { ports: [{ port: 80 }] })).body.virtualIP, '127.78.0.1');
});

t.test('an IPv6 service range works the same', async (t) => {
  const { url } = await startServer(t, { config: { serviceCidr: 'fd00:77::/112' } });
  const a = await api(svc(url, 'default', 'a'), 'PUT', { ports: [{ port: 80 }] });
  t.equal(a.body.virtualIP, 'fd00:77::1');
  const asked = await api(svc(url, 'default', 'b'), 'PUT', { ports: [{ port: 80 }], virtualIP: 'FD00:77:0:0:0:0:0:ff' });
  t.equal(asked.body.virtualIP, 'fd00:77::ff', 'stored in canonical form');
  const dup = await api(svc(url, 'default', 'c'), 'PUT', { ports: [{ port: 80 }], virtualIP: 'fd00:0077::00ff' });
  t.equal(dup.body.error, 'virtual_ip_taken', 'another spelling of a taken address is still taken');
});

t.test('bad bodies get 400 validation_failed naming the field', async (t) => {
  const { app } = await buildTestApp(t, { dataDir: ':memory:' });
  const cases: Array<[unknown, string]> = [
    [{}, 'ports'],
    [{ ports: [] }, 'ports'],
    [{ ports: [{ port: 0 }] }, 'ports.0.port'],
    [{ ports: [{ port: 80, targetPort: 70000 }] }, 'ports.0.targetPort'],
    [{ ports: [{ port: 80, protocol: 'udp' }] }, 'ports.0.protocol'],
    [{ ports: [{ port: 80, name: 'Bad_Name' }] }, 'ports.0.name'],
    [{ ports: [{ port: 80 }, { port: 81, name: 'b' }] }, 'ports.0.name'],
    [{ ports: [{ port: 80, name: 'a' }, { port: 81, name: 'a' }] }, 'ports.1.name'],
    [{ ports: [{ port: 80, name: 'a' }, { port: 80, name: 'b' }] }, 'ports.1.port'],
    [{ ports: [{ port: 80 }], virtualIP: 'not-an-ip' }, 'virtualIP'],
    [{ ports: [{ port: 80 }], colour: 'red' }, ''],
    [{ ports: Array.from({ length: 65 }, (_, i) => ({ port: i + 1, name: `p${i}` })) }, 'ports'],
  ];
  for (const [body, path] of cases) {
    const res = await app.inject({ method: 'PUT', url: '/v1/namespaces/default/services/web', payload: body as object });
    t.equal(res.statusCode, 400, JSON.stringify(body).slice(0, 80));
    t.equal(res.json().error, 'validation_failed');
    if (path) t.ok(res.json().details.some((d: { path: string }) => d.path.endsWith(path)), `${path} named`);
  }
  const badName = await app.inject({ method: 'PUT', url: '/v1/namespaces/default/services/Web_1', payload: { ports: [{ port: 80 }] } });
  t.equal(badName.statusCode, 400);
});

t.test('the catalog lists explicit Services with their address, and Services without instances with 0 counts', async (t) => {
  const { url } = await startServer(t);
  await api(inst(url, 'default', 'web', 'a'), 'PUT', { address: '10.0.0.1', port: 8080 });
  await api(inst(url, 'default', 'plain', 'a'), 'PUT', { address: '10.0.0.1', port: 8080 });
  await api(svc(url, 'default', 'web'), 'PUT', { ports: [{ port: 80 }] });
  await api(svc(url, 'default', 'db'), 'PUT', { ports: [{ port: 5432 }] });
  await api(svc(url, 'other', 'cache'), 'PUT', { ports: [{ port: 6379 }] });
  const list = await api(`${url}/v1/namespaces/default/services`);
  t.same(list.body.items, [
    { name: 'db', instances: 0, up: 0, virtualIP: '127.77.0.2', ports: [{ name: null, port: 5432, targetPort: null, protocol: 'tcp' }] },
    { name: 'plain', instances: 1, up: 1 },
    { name: 'web', instances: 1, up: 1, virtualIP: '127.77.0.1', ports: [{ name: null, port: 80, targetPort: null, protocol: 'tcp' }] },
  ]);
  const namespaces = await api(`${url}/v1/namespaces`);
  t.same(namespaces.body.items, [
    { name: 'default', services: 3, instances: 2 },
    { name: 'other', services: 1, instances: 0 },
  ]);

  // Deleting the Service keeps its instances; deleting the last instance keeps the Service.
  await api(svc(url, 'default', 'web'), 'DELETE');
  t.equal((await api(`${url}/v1/namespaces/default/services/web/instances`)).body.items.length, 1, 'instances stay');
  await api(inst(url, 'default', 'db', 'x'), 'PUT', { address: '10.0.0.2', port: 5432 });
  await api(inst(url, 'default', 'db', 'x'), 'DELETE');
  t.equal((await api(svc(url, 'default', 'db'))).status, 200, 'the Service outlives its instances');
});

t.test('blocking queries: GET of a Service and the catalog wake on Service changes', async (t) => {
  const { url } = await startServer(t);
  const first = await api(svc(url, 'default', 'web'), 'PUT', { ports: [{ port: 80 }] });
  const rev = first.body.revision;
  const single = api(`${svc(url, 'default', 'web')}?index=${rev}&wait=30s`);
  const catalog = api(`${url}/v1/namespaces/default/services?index=${rev}&wait=30s`);
  let settled = false;
  void single.then(() => (settled = true));
  // A change elsewhere (an instance of the same name, another Service) does not wake the single GET.
  await api(inst(url, 'default', 'web', 'a'), 'PUT', { address: '10.0.0.1', port: 80 });
  await api(svc(url, 'default', 'other'), 'PUT', { ports: [{ port: 80 }] });
  const woken = await catalog;
  t.equal(woken.status, 200, 'the catalog wakes on an instance or Service change');
  t.equal(settled, false, 'the single GET still waits');
  await api(svc(url, 'default', 'web'), 'PUT', { ports: [{ port: 81 }] });
  const changed = await single;
  t.equal(changed.body.ports[0].port, 81);
  t.equal(changed.headers.get('x-rollcall-revision'), String(changed.body.revision));
  const timedOut = await api(`${svc(url, 'default', 'web')}?index=${changed.body.revision}&wait=50ms`);
  t.equal(timedOut.status, 200, 'answers after wait with the current state');
  const bad = await api(`${svc(url, 'default', 'web')}?index=-1`);
  t.equal(bad.status, 400);
});

t.test('Services and their addresses survive a restart; allocation continues without collisions', async (t) => {
  const dataDir = t.testdir();
  const first = await startServer(t, { dataDir });
  await api(svc(first.url, 'default', 'a'), 'PUT', { ports: [{ port: 80 }] });
  await api(svc(first.url, 'default', 'b'), 'PUT', { ports: [{ name: 'http', port: 80 }, { name: 'grpc', port: 9090 }] });
  await api(svc(first.url, 'default', 'a'), 'DELETE');
  const before = await api(svc(first.url, 'default', 'b'));
  await first.close();
  const second = await startServer(t, { dataDir });
  t.same((await api(svc(second.url, 'default', 'b'))).body, before.body);
  const c = await api(svc(second.url, 'default', 'c'), 'PUT', { ports: [{ port: 80 }] });
  t.equal(c.body.virtualIP, '127.77.0.3', 'continues after the highest address in use');
  t.equal(c.body.revision, 4, 'the revision continues');
  t.equal((await api(svc(second.url, 'default', 'd'), 'PUT', { ports: [{ port: 80 }], virtualIP: '127.77.0.2' })).body.error, 'virtual_ip_taken');
});

t.test('a bad --service-cidr is refused at start with a sentence', async (t) => {
  const { loadConfig } = await import('../src/config.js');
  for (const [cidr, pattern] of [
    ['127.77.0.0', /prefix is missing/],
    ['127.77.0.1/16', /host bits set; did you mean 127\.77\.0\.0\/16/],
    ['127.77.0.0/31', /prefix .* \/8 to \/30/],
    ['banana/16', /not an IPv4 or IPv6 address/],
  ] as const) {
    t.throws(() => loadConfig({ serviceCidr: cidr }), { code: 'bad_request', message: pattern }, cidr);
  }
  t.equal(loadConfig({}, { ROLLCALL_SERVICE_CIDR: '10.96.0.0/16' }).serviceCidr, '10.96.0.0/16', 'read from the environment');
});
