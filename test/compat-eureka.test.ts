// The Eureka-compatible API, proven with the npm eureka-js-client (JSON) and raw XML requests shaped like
// Netflix' Java client and Prometheus' eureka_sd (no Accept header: XML).
import t, { type Test } from 'tap';
import { Eureka } from 'eureka-js-client';
import { XMLParser } from 'fast-xml-parser';
import { api, startServer, waitFor } from './helper.js';

const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const xml = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@', textNodeName: '$', parseTagValue: false, isArray: (name) => name === 'application' || name === 'instance' });
const instanceUrl = (url: string, service: string, id: string) => `${url}/v1/namespaces/default/services/${service}/instances/${id}`;

function client(port: number, instance: Record<string, unknown>, eureka: Record<string, unknown> = {}) {
  return new Eureka({
    logger: quiet,
    instance: {
      hostName: 'localhost',
      ipAddr: '127.0.0.1',
      port: { $: 8080, '@enabled': true },
      dataCenterInfo: { '@class': 'com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo', name: 'MyOwn' },
      ...instance,
    },
    eureka: { host: '127.0.0.1', port, servicePath: '/eureka/apps/', maxRetries: 0, heartbeatInterval: 500, registryFetchInterval: 300, ...eureka },
  } as never);
}

function start(c: Eureka): Promise<void> {
  return new Promise((resolve, reject) => c.start((err?: Error) => (err ? reject(err) : resolve())));
}
function stop(c: Eureka): Promise<void> {
  return new Promise((resolve, reject) => c.stop((err?: Error) => (err ? reject(err) : resolve())));
}

async function expiries(url: string): Promise<number> {
  const text = (await api(`${url}/metrics`)).body as string;
  return Number(/^rollcall_expiries_total (\d+)/m.exec(text)?.[1] ?? 0);
}

t.test('eureka-js-client: register, heartbeats keep a 2 s lease alive, an expired lease re-registers, stop deregisters', async (t: Test) => {
  const { url, port } = await startServer(t);
  const c = client(port, { app: 'jqservice', instanceId: 'jq-1', vipAddress: 'jq.service', leaseInfo: { durationInSecs: 2, renewalIntervalInSecs: 1 }, metadata: { version: '7' } });
  let beats = 0;
  (c as unknown as NodeJS.EventEmitter).on('heartbeat', () => beats++);
  await start(c);
  t.teardown(() => c.stop());

  const got = await api(instanceUrl(url, 'jqservice', 'jq-1'));
  t.equal(got.status, 200, 'registered through Eureka, visible through rollcall');
  t.match(got.body, {
    address: '127.0.0.1',
    port: 8080,
    status: 'up',
    ttlSeconds: 2,
    metadata: { version: '7', 'eureka.hostName': 'localhost', 'eureka.vipAddress': 'jq.service', 'eureka.renewalIntervalInSecs': '1' },
  });
  const firstRevision = got.body.createRevision;

  // Several lease durations (2 s each) pass on heartbeats alone.
  await waitFor(() => beats >= 16, 30_000, '16 heartbeats (8 s at one per 500 ms)');
  const still = await api(instanceUrl(url, 'jqservice', 'jq-1'));
  t.equal(still.body.createRevision, firstRevision, 'the same registration all along');
  t.equal(await expiries(url), 0, 'no lease ended');

  // The registry fetch sees itself.
  await waitFor(() => c.getInstancesByAppId('JQSERVICE').length === 1, 10_000, 'its own app in the client cache');
  t.match(c.getInstancesByAppId('jqservice')[0], { instanceId: 'jq-1', hostName: 'localhost', status: 'UP', port: { $: 8080 }, vipAddress: 'jq.service', metadata: { version: '7' } });

  // Stop heartbeating until the lease really ends, then resume: the 404 makes the client register again.
  clearInterval((c as unknown as { heartbeat: NodeJS.Timeout }).heartbeat);
  await waitFor(async () => (await api(instanceUrl(url, 'jqservice', 'jq-1'))).status === 404, 15_000, 'the lease to expire');
  t.equal(await expiries(url), 1, 'expired by the lease sweep');
  let registered = false;
  (c as unknown as NodeJS.EventEmitter).once('registered', () => (registered = true));
  (c as unknown as { startHeartbeats(): void }).startHeartbeats();
  await waitFor(() => registered, 10_000, 're-registration after a 404 heartbeat');
  t.equal((await api(instanceUrl(url, 'jqservice', 'jq-1'))).body.status, 'up', 'back');

  await stop(c);
  t.equal((await api(instanceUrl(url, 'jqservice', 'jq-1'))).status, 404, 'stop deregistered it');
});

t.test('eureka-js-client: getInstancesByAppId and ByVipAddress see instances registered through rollcall', async (t: Test) => {
  const { url, port } = await startServer(t);
  const c = client(port, {}, { registerWithEureka: false });
  await start(c);
  t.teardown(() => c.stop());
  await api(instanceUrl(url, 'payments', 'pay-1'), 'PUT', { address: '10.0.0.7', port: 9090, metadata: { team: 'core' } });
  await api(instanceUrl(url, 'payments', 'pay-2'), 'PUT', { address: '10.0.0.8', port: 9090, status: 'draining' });
  await waitFor(() => c.getInstancesByAppId('PAYMENTS').length === 1, 10_000, 'the REST-registered instance');
  t.match(c.getInstancesByAppId('PAYMENTS'), [{ instanceId: 'pay-1', app: 'PAYMENTS', ipAddr: '10.0.0.7', hostName: '10.0.0.7', port: { $: 9090 }, status: 'UP', metadata: { team: 'core' } }]);
  t.equal(c.getInstancesByVipAddress('payments').length, 1, 'the vip defaults to the service name; draining (OUT_OF_SERVICE) is filtered by the client');
  await api(instanceUrl(url, 'payments', 'pay-1'), 'DELETE');
  await waitFor(() => c.getInstancesByAppId('PAYMENTS').length === 0, 10_000, 'the deregistration to show');
});

t.test('XML by default (no Accept), JSON on request; register, status override, delta and hashcode', async (t: Test) => {
  const { url } = await startServer(t);
  const body = `<?xml version="1.0" encoding="UTF-8"?>
<instance>
  <instanceId>orders-1</instanceId>
  <hostName>orders-1.internal</hostName>
  <app>ORDERS</app>
  <ipAddr>10.0.0.9</ipAddr>
  <status>UP</status>
  <port enabled="true">8081</port>
  <securePort enabled="false">8443</securePort>
  <dataCenterInfo class="com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo"><name>MyOwn</name></dataCenterInfo>
  <leaseInfo><renewalIntervalInSecs>30</renewalIntervalInSecs><durationInSecs>90</durationInSecs></leaseInfo>
  <metadata><zone>a</zone><version>3</version></metadata>
  <vipAddress>orders</vipAddress>
  <secureVipAddress>orders-secure</secureVipAddress>
  <healthCheckUrl>http://orders-1.internal:8081/health</healthCheckUrl>
</instance>`;
  let res = await fetch(`${url}/eureka/apps/ORDERS`, { method: 'POST', headers: { 'content-type': 'application/xml' }, body });
  t.equal(res.status, 204, 'register answers 204');
  await api(instanceUrl(url, 'orders', 'orders-2'), 'PUT', { address: '10.0.0.10', port: 8081, status: 'down' });

  res = await fetch(`${url}/eureka/apps`);
  t.match(res.headers.get('content-type'), /^application\/xml/);
  const apps = xml.parse(await res.text()).applications;
  t.equal(apps.apps__hashcode, 'DOWN_1_UP_1_', 'Eureka hashcode: STATUS_count_ sorted by status');
  const [orders] = apps.application;
  t.equal(orders.name, 'ORDERS');
  t.match(orders.instance[0], {
    instanceId: 'orders-1',
    hostName: 'orders-1.internal',
    ipAddr: '10.0.0.9',
    status: 'UP',
    port: { $: '8081', '@enabled': 'true' },
    securePort: { $: '8443', '@enabled': 'false' },
    vipAddress: 'orders',
    secureVipAddress: 'orders-secure',
    healthCheckUrl: 'http://orders-1.internal:8081/health',
    leaseInfo: { durationInSecs: '90', renewalIntervalInSecs: '30' },
    metadata: { zone: 'a', version: '3' },
    dataCenterInfo: { '@class': 'com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo', name: 'MyOwn' },
  });
  t.match(orders.instance[1], { instanceId: 'orders-2', status: 'DOWN' });

  res = await fetch(`${url}/eureka/apps/ORDERS/orders-1`, { headers: { accept: 'application/json' } });
  t.match(res.headers.get('content-type'), /^application\/json/);
  t.match(await res.json(), { instance: { instanceId: 'orders-1', port: { $: 8081, '@enabled': 'true' }, app: 'ORDERS' } });

  // Status override: OUT_OF_SERVICE = draining, kept across a re-registration, removed by DELETE.
  res = await fetch(`${url}/eureka/apps/ORDERS/orders-1/status?value=OUT_OF_SERVICE`, { method: 'PUT' });
  t.equal(res.status, 200);
  t.equal((await api(instanceUrl(url, 'orders', 'orders-1'))).body.status, 'draining');
  await fetch(`${url}/eureka/apps/ORDERS`, { method: 'POST', headers: { 'content-type': 'application/xml' }, body });
  t.equal((await api(instanceUrl(url, 'orders', 'orders-1'))).body.status, 'draining', 'the override survives a re-registration');
  res = await fetch(`${url}/eureka/apps/ORDERS/orders-1/status?value=UP`, { method: 'DELETE' });
  t.equal(res.status, 200);
  t.equal((await api(instanceUrl(url, 'orders', 'orders-1'))).body.status, 'up');

  // Delta: the recent changes with their action types, and the whole registry's hashcode.
  await api(instanceUrl(url, 'orders', 'orders-2'), 'DELETE');
  const delta = (await (await fetch(`${url}/eureka/apps/delta`, { headers: { accept: 'application/json' } })).json()) as any;
  t.equal(delta.applications.apps__hashcode, 'UP_1_');
  const actions = Object.fromEntries(delta.applications.application[0].instance.map((i: any) => [i.instanceId, i.actionType]));
  t.same(actions, { 'orders-1': 'MODIFIED', 'orders-2': 'DELETED' });

  // vips, instance by id, renew and cancel (404 when unknown).
  const vip = xml.parse(await (await fetch(`${url}/eureka/vips/orders`)).text()).applications;
  t.equal(vip.application[0].instance.length, 1);
  t.equal((await fetch(`${url}/eureka/instances/orders-1`)).status, 200);
  t.equal((await fetch(`${url}/eureka/apps/ORDERS/orders-1`, { method: 'PUT' })).status, 200, 'renew');
  t.equal((await fetch(`${url}/eureka/apps/ORDERS/nope`, { method: 'PUT' })).status, 404, 'renew of an unknown instance: 404');
  t.equal((await fetch(`${url}/eureka/apps/ORDERS/orders-1`, { method: 'DELETE' })).status, 200, 'cancel');
  t.equal((await fetch(`${url}/eureka/apps/ORDERS/orders-1`, { method: 'DELETE' })).status, 404);
  t.equal((await fetch(`${url}/eureka/apps/ORDERS`)).status, 404, 'no instances left');
});

t.test('bad registrations get a plain-text 400', async (t: Test) => {
  const { url } = await startServer(t);
  const post = (app: string, body: string, type = 'application/json') => fetch(`${url}/eureka/apps/${app}`, { method: 'POST', headers: { 'content-type': type }, body });
  let res = await post('ORDERS', JSON.stringify({ instance: { app: 'ORDERS', ipAddr: '10.0.0.1', port: { $: 80 } } }));
  t.equal(res.status, 400);
  t.match(res.headers.get('content-type'), /^text\/plain/);
  t.match(await res.text(), /instance\.hostName/);
  res = await post('BAD_APP', JSON.stringify({ instance: { hostName: 'h', ipAddr: '10.0.0.1', port: 80 } }));
  t.match(await res.text(), /^Invalid app name "BAD_APP"/);
  res = await post('ORDERS', '<instance><hostName>h', 'application/xml');
  t.equal(res.status, 400);
  res = await post('ORDERS', JSON.stringify({ instance: { hostName: 'h', ipAddr: '10.0.0.1', port: 0 } }));
  t.match(await res.text(), /port must be 1-65535/);
  res = await fetch(`${url}/eureka/apps/ORDERS/x/status?value=SLEEPING`, { method: 'PUT' });
  t.equal(res.status, 404, 'unknown instance first');
});

t.test('--eureka-namespace and --token apply to the Eureka API', async (t: Test) => {
  const { url } = await startServer(t, { config: { eurekaNamespace: 'legacy', token: 'tok' } });
  const auth = { authorization: `Basic ${Buffer.from('eureka:tok').toString('base64')}` };
  t.equal((await fetch(`${url}/eureka/apps`)).status, 401);
  const res = await fetch(`${url}/eureka/apps/LEGACY-APP`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ instance: { hostName: 'h1', ipAddr: '10.0.0.1', port: { $: 80, '@enabled': 'true' } } }),
  });
  t.equal(res.status, 204);
  const got = await api(`${url}/v1/namespaces/legacy/services/legacy-app/instances/h1`, 'GET', undefined, { authorization: 'Bearer tok' });
  t.equal(got.status, 200, 'in the configured namespace; hostName is the id when there is no instanceId');
});
