// The client's registration handle against a real registry: leases kept alive, re-registration after
// the registry lost its data, retries while it is down, refusals surfaced, state changes applied.
import t from 'tap';
import { createClient, RollcallClientError, type Instance } from '../src/client/index.js';
import { createManualClock } from '../src/registry/clock.js';
import { api, freePort, startServer, startServerProcess, PATIENCE_MS, waitFor } from './helper.js';

const FAST = { minMs: 50, maxMs: 300 };
const instanceUrl = (url: string, id: string, service = 'web') => `${url}/v1/namespaces/default/services/${service}/instances/${id}`;


t.test('a registration with a 1 s TTL outlives it many times over by heartbeating', async (t) => {
  // The registry's clock moves by hand, half a TTL per heartbeat it received: the lease runs out only if the client
  // stops heartbeating, never because this machine was slow to run it. The sweep still runs for real.
  const clock = createManualClock(Date.now());
  const server = await startServer(t, { clock });
  const client = createClient({ url: server.url, retry: FAST });
  t.teardown(() => client.close());
  const reg = await client.register({ service: 'web', id: 'w1', address: '127.0.0.1', port: 8080, ttlSeconds: 1 });
  t.equal(reg.registered, true);
  t.equal(reg.instance?.ttlSeconds, 1);
  const createRevision = reg.instance!.createRevision;
  const errors: Error[] = [];
  reg.on('error', (e) => errors.push(e));
  const heartbeats = async () => {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    return Number(/rollcall_heartbeats_total\{result="ok"\} (\d+)/.exec(text)?.[1] ?? 0);
  };
  for (let i = 1; i <= 8; i++) {
    const before = await heartbeats();
    await waitFor(async () => (await heartbeats()) > before, PATIENCE_MS, `heartbeat ${i}`);
    clock.advance(500);
    const res = await api(instanceUrl(server.url, 'w1'));
    t.equal(res.status, 200, `still registered after ${i * 500} ms of registry time`);
    // Same registration all along: never expired and re-created.
    t.equal(res.body.createRevision, createRevision);
  }
  t.same(errors, []);
  client.close();
  // After close() the heartbeats stop, so the lease runs out once the registry's clock passes the deadline.
  clock.advance(1000);
  await waitFor(async () => (await api(instanceUrl(server.url, 'w1'))).status === 404, PATIENCE_MS, 'expiry after close');
});

t.test('the client registers again after the registry restarts with an empty data dir', async (t) => {
  const first = await startServerProcess(t);
  const client = createClient({ url: first.url, retry: FAST });
  t.teardown(() => client.close());
  const reg = await client.register({ service: 'web', id: 'w1', address: '127.0.0.1', port: 8080, ttlSeconds: 1, zone: 'a', tags: ['x'] });
  const registered: Instance[] = [];
  reg.on('registered', (i) => registered.push(i));
  reg.on('error', () => {});
  await first.kill('SIGKILL');
  // Same port, fresh data dir: the registry lost everything, so the next heartbeat answers 404.
  const second = await startServerProcess(t, { port: first.port });
  const res = await waitFor(async () => {
    const r = await api(instanceUrl(second.url, 'w1'));
    return r.status === 200 ? r : undefined;
  }, PATIENCE_MS, 're-registration');
  t.match(res.body, { id: 'w1', zone: 'a', tags: ['x'], ttlSeconds: 1, status: 'up' }, 'registered again with the same state');
  // The registry holds it before the client has read the PUT's answer and emitted 'registered'.
  await waitFor(() => registered.length >= 1, PATIENCE_MS, "the 'registered' event");
  t.equal(reg.registered, true);
});

t.test('register resolves while the registry is down and registers once it comes up', async (t) => {
  const port = await freePort();
  const client = createClient({ url: `http://127.0.0.1:${port}`, retry: FAST });
  t.teardown(() => client.close());
  const errors: RollcallClientError[] = [];
  const reg = await client.register({ service: 'web', id: 'late', address: '127.0.0.1', port: 8080 });
  reg.on('error', (e) => errors.push(e as RollcallClientError));
  t.equal(reg.registered, false, 'resolved after the first attempt, not registered');
  const registered = new Promise<Instance>((resolve) => reg.once('registered', resolve));
  // A state change while down is remembered and sent with the registration.
  await reg.setStatus('starting');
  await waitFor(() => errors.length > 0, PATIENCE_MS, 'a background error');
  t.equal(errors[0]!.code, 'unreachable');
  const server = await startServerProcess(t, { port });
  const instance = await registered;
  t.equal(instance.status, 'starting');
  t.equal((await api(instanceUrl(server.url, 'late'))).body.status, 'starting');
});

t.test('register rejects when the registry refuses the registration (4xx)', async (t) => {
  const server = await startServer(t);
  const client = createClient({ url: server.url, retry: FAST });
  t.teardown(() => client.close());
  const err = await client.register({ service: 'Bad_Name', address: '127.0.0.1', port: 8080 }).catch((e: unknown) => e);
  t.type(err, RollcallClientError);
  t.equal((err as RollcallClientError).status, 400);
  t.equal((err as RollcallClientError).code, 'validation_failed');
  const err2 = await client.register({ service: 'web', address: '127.0.0.1', port: 0 }).catch((e: unknown) => e);
  t.equal((err2 as RollcallClientError).status, 400);
});

t.test('setStatus, update and deregister', async (t) => {
  const server = await startServer(t);
  const client = createClient({ url: server.url, retry: FAST });
  t.teardown(() => client.close());
  const reg = await client.register({ service: 'web', address: '127.0.0.1', port: 8080, status: 'starting' });
  t.match(reg.id, /^web-/, 'a default id');
  await reg.setStatus('up');
  t.equal((await api(instanceUrl(server.url, reg.id))).body.status, 'up');
  await reg.update({ weight: 5, metadata: { v: '2' } });
  t.match((await api(instanceUrl(server.url, reg.id))).body, { weight: 5, metadata: { v: '2' }, status: 'up' });
  const bad = await reg.update({ weight: 999 }).catch((e: unknown) => e);
  t.equal((bad as RollcallClientError).status, 400, 'a refused change rejects');
  // The registry forgot us: update registers again with the whole wanted state (the refused weight is not in it).
  t.equal((await api(instanceUrl(server.url, reg.id), 'DELETE')).status, 204);
  await reg.setStatus('draining');
  t.match((await api(instanceUrl(server.url, reg.id))).body, { weight: 5, status: 'draining' });
  await reg.deregister();
  t.equal((await api(instanceUrl(server.url, reg.id))).status, 404);
  t.equal(reg.registered, false);
  // Already gone counts as deregistered.
  await reg.deregister();
  const closed = await reg.setStatus('up').catch((e: unknown) => e);
  t.equal((closed as RollcallClientError).code, 'closed');
});

t.test('REST calls answer coded errors', async (t) => {
  const server = await startServer(t);
  const client = createClient({ url: server.url });
  t.teardown(() => client.close());
  const notFound = (await client.getInstance('default', 'web', 'nope').catch((e: unknown) => e)) as RollcallClientError;
  t.equal(notFound.status, 404);
  t.equal(notFound.code, 'instance_not_found');
  const { created } = await client.putInstance('default', 'web', 'a', { address: '127.0.0.1', port: 1 });
  t.equal(created, true);
  t.equal((await client.putInstance('default', 'web', 'a', { address: '127.0.0.1', port: 2 })).created, false);
  t.match(await client.listInstances('default', 'web'), { items: [{ id: 'a', port: 2 }] });
  t.match(await client.listServices('default'), { items: [{ name: 'web', instances: 1, up: 1 }] });
  t.match(await client.listNamespaces(), { items: [{ name: 'default', services: 1, instances: 1 }] });
  const down = createClient({ url: `http://127.0.0.1:${await freePort()}` });
  const unreachable = (await down.listNamespaces().catch((e: unknown) => e)) as RollcallClientError;
  t.equal(unreachable.code, 'unreachable');
  t.equal(unreachable.status, undefined);
  down.close();
});
