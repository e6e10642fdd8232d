// The client library's Services against a real registry: client.services.put/get/delete/list, and a watch view
// that follows Services beside instances (snapshot, live, change flags, resume across kill -9, relist).
import t from 'tap';
import { createClient, RollcallClientError, type ViewChange } from '../src/client/index.js';
import { api, startServer, startServerProcess, waitFor } from './helper.js';

const FAST = { minMs: 50, maxMs: 300 };
const svc = (url: string, ns: string, name: string) => `${url}/v1/namespaces/${ns}/services/${name}`;
const inst = (url: string, ns: string, name: string, id: string) => `${svc(url, ns, name)}/instances/${id}`;

t.test('client.services: put (created / replaced), get, list, delete, and coded errors', async (t) => {
  const server = await startServer(t);
  const client = createClient({ url: server.url });
  t.teardown(() => client.close());
  const first = await client.services.put('default', 'web', { ports: [{ name: 'http', port: 80, targetPort: 8080 }] });
  t.equal(first.created, true);
  t.match(first.service, { namespace: 'default', name: 'web', virtualIP: '127.77.0.1', ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'tcp' }] });
  const again = await client.services.put('default', 'web', { ports: [{ name: 'http', port: 80, targetPort: 8080 }] });
  t.equal(again.created, false);
  t.equal(again.service.revision, first.service.revision, 'identical: no new revision');
  t.same(await client.services.get('default', 'web'), first.service);
  await api(inst(server.url, 'default', 'web', 'a'), 'PUT', { address: '10.0.0.1', port: 8080 });
  const list = await client.services.list('default');
  t.same(list.items, [{ name: 'web', instances: 1, up: 1, virtualIP: '127.77.0.1', ports: first.service.ports }]);

  const taken = (await client.services.put('default', 'api', { ports: [{ port: 80 }], virtualIP: '127.77.0.1' }).catch((e: unknown) => e)) as RollcallClientError;
  t.type(taken, RollcallClientError);
  t.equal(taken.code, 'virtual_ip_taken');
  t.equal(taken.status, 409);
  const bad = (await client.services.put('default', 'api', { ports: [] }).catch((e: unknown) => e)) as RollcallClientError;
  t.equal(bad.code, 'validation_failed');

  await client.services.delete('default', 'web');
  const missing = (await client.services.get('default', 'web').catch((e: unknown) => e)) as RollcallClientError;
  t.equal(missing.code, 'service_not_found');
  t.equal(missing.status, 404);
  t.equal(((await client.services.delete('default', 'web').catch((e: unknown) => e)) as RollcallClientError).status, 404);
});

t.test('a view with resources services+instances: snapshot, live changes, change flags, per-service pick', async (t) => {
  const server = await startServer(t);
  const { url } = server;
  await api(svc(url, 'default', 'web'), 'PUT', { ports: [{ port: 80, targetPort: 8080 }] });
  await api(inst(url, 'default', 'web', 'a'), 'PUT', { address: '10.0.0.1', port: 8080 });
  await api(inst(url, 'default', 'api', 'x'), 'PUT', { address: '10.0.0.2', port: 9000 });
  const client = createClient({ url, retry: FAST });
  t.teardown(() => client.close());
  const view = client.watch({ resources: ['services', 'instances'] });
  const seen: ViewChange[] = [];
  view.on('change', (c) => seen.push(c));
  await view.ready;
  t.same(view.resources, ['services', 'instances']);
  t.same(view.services().map((s) => [s.name, s.virtualIP]), [['web', '127.77.0.1']]);
  t.equal(view.service('default', 'web')?.ports[0]?.targetPort, 8080);
  t.equal(view.service('default', 'api'), undefined, 'instances without a Service have none');
  t.equal(view.instances().length, 2);
  await waitFor(() => seen.length === 1, 1000, 'the snapshot change');
  t.match(seen[0], { revision: 3, instances: true, services: true });

  await api(svc(url, 'default', 'api'), 'PUT', { ports: [{ name: 'grpc', port: 9000 }, { name: 'admin', port: 9001 }] });
  await waitFor(() => view.service('default', 'api') !== undefined, 1000, 'the new Service');
  await waitFor(() => seen.length === 2, 1000, 'a change');
  t.match(seen[1], { revision: 4, instances: false, services: true }, 'only Services changed');
  await api(inst(url, 'default', 'api', 'y'), 'PUT', { address: '10.0.0.3', port: 9000 });
  await waitFor(() => seen.length === 3, 1000, 'a change');
  t.match(seen[2], { revision: 5, instances: true, services: false }, 'only instances changed');
  await api(svc(url, 'default', 'web'), 'DELETE');
  await waitFor(() => view.service('default', 'web') === undefined, 1000, 'the deleted Service');
  t.same(view.services('default').map((s) => s.name), ['api']);
  t.same(view.services('other'), []);

  // pick({ service }) keeps one round-robin per service in a namespace-wide view.
  const picks = Array.from({ length: 4 }, () => view.pick({ service: 'api' })?.id);
  t.same(picks.sort(), ['x', 'x', 'y', 'y']);
  t.equal(view.pick({ service: 'web' })?.id, 'a');
  t.equal(view.pick({ service: 'nope' }), undefined);
});

t.test('a services-only view across every namespace', async (t) => {
  const server = await startServer(t);
  const client = createClient({ url: server.url, retry: FAST });
  t.teardown(() => client.close());
  await api(svc(server.url, 'team-a', 'web'), 'PUT', { ports: [{ port: 80 }] });
  await api(inst(server.url, 'team-a', 'web', 'a'), 'PUT', { address: '10.0.0.1', port: 80 });
  const view = client.watch({ allNamespaces: true, resources: ['services'] });
  await view.ready;
  t.equal(view.namespace, undefined);
  await api(svc(server.url, 'team-b', 'db'), 'PUT', { ports: [{ port: 5432 }] });
  await waitFor(() => view.services().length === 2, 1000, 'team-b/db');
  t.same(view.services().map((s) => `${s.namespace}/${s.name}`), ['team-a/web', 'team-b/db']);
  t.same(view.instances(), [], 'instances were not asked for');
  t.throws(() => client.watch({ allNamespaces: true, namespace: 'x' }), TypeError);
  t.throws(() => client.watch({ resources: ['pods' as 'services'] }), TypeError);
});

t.test('the view resumes Services across a registry kill -9, and lists again when the registry lost its data', async (t) => {
  const first = await startServerProcess(t);
  const url = first.url;
  await api(svc(url, 'default', 'web'), 'PUT', { ports: [{ port: 80 }] });
  const client = createClient({ url, retry: FAST });
  t.teardown(() => client.close());
  const view = client.watch({ resources: ['services', 'instances'] });
  view.on('error', () => {});
  await view.ready;
  await api(svc(url, 'default', 'db'), 'PUT', { ports: [{ port: 5432 }] });
  await waitFor(() => view.services().length === 2, 1000, 'db before the restart');

  await first.kill('SIGKILL');
  const second = await startServerProcess(t, { dataDir: first.dataDir, port: first.port });
  await api(svc(url, 'default', 'web'), 'PUT', { ports: [{ port: 8080 }] });
  await api(svc(url, 'default', 'db'), 'DELETE');
  await api(inst(url, 'default', 'web', 'a'), 'PUT', { address: '10.0.0.1', port: 80 });
  const catalog = await api(`${second.url}/v1/namespaces/default/services`);
  await waitFor(() => view.revision === catalog.body.revision, 8000, 'the view to catch up');
  t.same(view.services().map((s) => [s.name, s.virtualIP, s.ports[0]?.port]), [['web', '127.77.0.1', 8080]]);
  t.same(view.instances().map((i) => i.id), ['a']);

  // A registry that comes back empty: the view lists again (revision_ahead) rather than keep ghosts.
  await second.kill('SIGKILL');
  const third = await startServerProcess(t, { port: first.port });
  await api(svc(third.url, 'default', 'fresh'), 'PUT', { ports: [{ port: 1 }] });
  await waitFor(() => view.services().map((s) => s.name).join() === 'fresh', 8000, 'the fresh snapshot');
  t.same(view.instances(), []);
  t.equal(view.revision, 1);
});
