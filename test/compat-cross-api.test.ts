// One registry behind four APIs: an instance registered through rollcall's REST API, one through the Consul
// API and one through the Eureka API are each listed by the other APIs and streamed by /v1/watch; a blocking
// query on one API wakes on a change made through another.
import t from 'tap';
import { XMLParser } from 'fast-xml-parser';
import { api, startServer, waitFor } from './helper.js';
import { changes, openWatch } from './watch-client.js';

const xml = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@', textNodeName: '$', parseTagValue: false, isArray: (name) => name === 'application' || name === 'instance' });

t.test('each API lists what the others registered, and /v1/watch streams all of it', async (t) => {
  const { url, app } = await startServer(t, { config: { consulListen: '127.0.0.1:0' } });
  const consulUrl = app.consulUrl!;
  const watch = await openWatch(url, { namespace: 'default' });
  t.teardown(() => watch.close());

  // Through rollcall's REST API.
  t.equal((await api(`${url}/v1/namespaces/default/services/shop/instances/rest-1`, 'PUT', { address: '10.0.0.1', port: 8001, ttlSeconds: 600 })).status, 201);
  // Through the Consul API.
  let res = await fetch(`${consulUrl}/v1/agent/service/register`, {
    method: 'PUT',
    body: JSON.stringify({ Name: 'shop', ID: 'consul-1', Address: '10.0.0.2', Port: 8002, Check: { TTL: '600s', Status: 'passing' } }),
  });
  t.equal(res.status, 200);
  // Through the Eureka API.
  res = await fetch(`${url}/eureka/apps/SHOP`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ instance: { instanceId: 'eureka-1', hostName: '10.0.0.3', ipAddr: '10.0.0.3', port: { $: 8003, '@enabled': 'true' }, leaseInfo: { durationInSecs: 600 } } }),
  });
  t.equal(res.status, 204);
  const all = ['consul-1', 'eureka-1', 'rest-1'];

  const rest = await api(`${url}/v1/namespaces/default/services/shop/instances`);
  t.same(rest.body.items.map((i: { id: string }) => i.id), all, 'rollcall REST lists all three');
  const consul = (await (await fetch(`${consulUrl}/v1/health/service/shop?passing`)).json()) as { Service: { ID: string; Port: number } }[];
  t.same(consul.map((e) => [e.Service.ID, e.Service.Port]), [['consul-1', 8002], ['eureka-1', 8003], ['rest-1', 8001]], 'Consul lists all three as passing');
  const [eureka] = xml.parse(await (await fetch(`${url}/eureka/apps/SHOP`)).text()).application;
  t.same(eureka.instance.map((i: { instanceId: string }) => i.instanceId), all, 'Eureka lists all three');
  const sd = (await api(`${url}/v1/sd/prometheus?namespace=default&service=shop`)).body as { targets: string[] }[];
  t.same(sd.map((g) => g.targets[0]), ['10.0.0.2:8002', '10.0.0.3:8003', '10.0.0.1:8001'], 'Prometheus SD lists all three');
  const streamed = await watch.until((m) => changes(m).length >= 3);
  t.same(changes(streamed).map((m) => [m.type, m.instance.id]), [['ADDED', 'rest-1'], ['ADDED', 'consul-1'], ['ADDED', 'eureka-1']], '/v1/watch streamed each registration');

  // A Consul blocking query wakes on an Eureka change; Eureka's delta shows a Consul change.
  const before = await fetch(`${consulUrl}/v1/health/service/shop`);
  const index = before.headers.get('x-consul-index');
  const blocked = fetch(`${consulUrl}/v1/health/service/shop?index=${index}&wait=60s`);
  await waitFor(async () => ((await api(`${url}/metrics`)).body as string).includes('rollcall_long_polls_waiting 1'), 10_000, 'the Consul query to block');
  t.equal((await fetch(`${url}/eureka/apps/SHOP/eureka-1/status?value=OUT_OF_SERVICE`, { method: 'PUT' })).status, 200);
  const woke = (await (await blocked).json()) as { Service: { ID: string }; Checks: { CheckID: string }[] }[];
  t.ok(woke.find((e) => e.Service.ID === 'eureka-1')!.Checks.some((c) => c.CheckID === '_service_maintenance:eureka-1'), 'the Consul watcher saw Eureka\'s OUT_OF_SERVICE as maintenance');

  t.equal((await fetch(`${consulUrl}/v1/agent/service/deregister/rest-1`, { method: 'PUT' })).status, 200, 'Consul deregisters a REST registration');
  const delta = (await (await fetch(`${url}/eureka/apps/delta`, { headers: { accept: 'application/json' } })).json()) as { applications: { application: { instance: { instanceId: string; actionType: string }[] }[] } };
  const actions = Object.fromEntries(delta.applications.application[0]!.instance.map((i) => [i.instanceId, i.actionType]));
  t.equal(actions['rest-1'], 'DELETED', 'Eureka delta carries the Consul deregistration');
  await watch.until((m) => changes(m).some((c) => c.type === 'DELETED' && c.instance.id === 'rest-1'));
});
