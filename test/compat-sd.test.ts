// GET /v1/sd/prometheus: the http_sd format, the default (routable only) and its filters, bad queries; the
// compat settings in the config schema; Go durations as Consul reads them.
import t from 'tap';
import { parseGoDuration } from '../src/adapters/consul/duration.js';
import { loadConfig } from '../src/config.js';
import { buildTestApp } from './helper.js';

t.test('target groups with rollcall labels; routable only unless status widens it', async (t) => {
  const { app } = await buildTestApp(t, { dataDir: ':memory:' });
  const put = (ns: string, service: string, id: string, body: object) =>
    app.inject({ method: 'PUT', url: `/v1/namespaces/${ns}/services/${service}/instances/${id}`, payload: body });
  await put('default', 'api', 'a1', { address: '10.0.0.1', port: 80, tags: ['http', 'v2'], zone: 'z1', metadata: { 'app.kubernetes.io/name': 'api', env: 'prod' } });
  await put('default', 'api', 'a2', { address: '::1', port: 81 });
  await put('default', 'api', 'a3', { address: '10.0.0.3', port: 80, status: 'draining' });
  await put('default', 'api', 'a4', { address: '10.0.0.4', port: 80, weight: 0 });
  await put('default', 'web', 'w1', { address: '10.0.0.5', port: 80, tags: ['v2'] });
  await put('other', 'api', 'o1', { address: '10.0.0.6', port: 80 });

  const get = async (qs: string) => {
    const res = await app.inject({ url: `/v1/sd/prometheus${qs}` });
    return { status: res.statusCode, body: res.json() };
  };
  let res = await get('?namespace=default&service=api');
  t.equal(res.status, 200);
  t.same(res.body, [
    {
      targets: ['10.0.0.1:80'],
      labels: {
        __meta_rollcall_namespace: 'default',
        __meta_rollcall_service: 'api',
        __meta_rollcall_instance_id: 'a1',
        __meta_rollcall_address: '10.0.0.1',
        __meta_rollcall_port: '80',
        __meta_rollcall_zone: 'z1',
        __meta_rollcall_status: 'up',
        __meta_rollcall_weight: '1',
        __meta_rollcall_tags: ',http,v2,',
        __meta_rollcall_metadata_app_kubernetes_io_name: 'api',
        __meta_rollcall_metadata_env: 'prod',
      },
    },
    {
      targets: ['[::1]:81'],
      labels: {
        __meta_rollcall_namespace: 'default',
        __meta_rollcall_service: 'api',
        __meta_rollcall_instance_id: 'a2',
        __meta_rollcall_address: '::1',
        __meta_rollcall_port: '81',
        __meta_rollcall_zone: '',
        __meta_rollcall_status: 'up',
        __meta_rollcall_weight: '1',
        __meta_rollcall_tags: '',
      },
    },
  ], 'draining and weight-0 instances are not routable');
  const ids = (body: { labels: Record<string, string> }[]) => body.map((g) => g.labels.__meta_rollcall_instance_id);
  t.same(ids((await get('?namespace=default&service=api&status=up,draining')).body), ['a1', 'a2', 'a3', 'a4'], 'status widens (weight no longer filters)');
  t.same(ids((await get('?namespace=default&status=any')).body), ['a1', 'a2', 'a3', 'a4', 'w1']);
  t.same(ids((await get('?tag=v2')).body), ['a1', 'w1', ], 'every namespace by default; tag filters');
  t.same(ids((await get('')).body), ['a1', 'a2', 'w1', 'o1']);

  for (const bad of ['?service=api', '?status=sleeping', '?namespace=Bad_NS', '?nope=1']) {
    res = await get(bad);
    t.equal(res.status, 400, `${bad} is a 400`);
    t.equal(res.body.error, 'validation_failed');
  }
});

t.test('compat settings: flags and env, bad values named', async (t) => {
  t.equal(loadConfig({}, { ROLLCALL_CONSUL_LISTEN: '127.0.0.1:8500' }).consulListen, '127.0.0.1:8500');
  t.equal(loadConfig({ consulListen: '[::1]:0' }).consulListen, '[::1]:0');
  t.equal(loadConfig({}).consulListen, undefined, 'off unless given');
  t.equal(loadConfig({}).eurekaNamespace, 'default');
  t.throws(() => loadConfig({ consulListen: '8500' }), /consulListen: must be HOST:PORT/);
  t.throws(() => loadConfig({ consulListen: '127.0.0.1:99999' }), /consulListen/);
  t.throws(() => loadConfig({ eurekaNamespace: 'Not A Label' }), /eurekaNamespace/);
});

t.test('Go durations as Consul parses them', async (t) => {
  t.equal(parseGoDuration('10s'), 10_000);
  t.equal(parseGoDuration('1m30s'), 90_000);
  t.equal(parseGoDuration('120000ms'), 120_000);
  t.equal(parseGoDuration('1.5h'), 5_400_000);
  t.equal(parseGoDuration('0'), 0);
  for (const bad of ['', '10', '-5s', 's', '10x', '1m 30s']) t.equal(parseGoDuration(bad), undefined, `"${bad}" is refused`);
});
