// Watching Services beside instances (resources=services,instances): snapshot, live, resume, compaction, filters,
// SSE, and that watchers which did not ask see nothing new.
import t from 'tap';
import WebSocket from 'ws';
import { api, startServer } from './helper.js';
import { changes, openWatch } from './watch-client.js';

const svc = (url: string, ns: string, name: string) => `${url}/v1/namespaces/${ns}/services/${name}`;
const inst = (url: string, ns: string, name: string, id: string) => `${svc(url, ns, name)}/instances/${id}`;
const ports = (port = 80) => ({ ports: [{ port }] });
const body = { address: '10.0.0.1', port: 8080 };
const describe = (e: any) => [e.type, e.revision, e.reason, e.service ? `svc:${e.service.name}` : `inst:${e.instance.service}/${e.instance.id}`];

t.test('snapshot carries services when asked; then both kinds of change in revision order', async (t) => {
  const { url } = await startServer(t);
  await api(svc(url, 'default', 'web'), 'PUT', ports()); // 1
  await api(inst(url, 'default', 'web', 'a'), 'PUT', body); // 2
  await api(svc(url, 'other', 'web'), 'PUT', ports()); // 3
  const both = await openWatch(url, { namespace: 'default', resources: 'services,instances' });
  const svcOnly = await openWatch(url, { namespace: 'default', resources: 'services' });
  const plain = await openWatch(url, { namespace: 'default' });
  await both.until((m) => m.length >= 1);
  await svcOnly.until((m) => m.length >= 1);
  await plain.until((m) => m.length >= 1);
  t.match(both.messages[0], { type: 'SNAPSHOT', revision: 3, items: [{ id: 'a' }], services: [{ name: 'web', virtualIP: '127.77.0.1' }] });
  t.equal(both.messages[0].services.length, 1, 'only the namespace asked for');
  t.match(svcOnly.messages[0], { type: 'SNAPSHOT', revision: 3, items: [], services: [{ name: 'web' }] });
  t.notOk('services' in plain.messages[0], 'a watcher that did not ask gets no services key');

  await api(svc(url, 'default', 'api'), 'PUT', ports()); // 4
  await api(inst(url, 'default', 'api', 'x'), 'PUT', body); // 5
  await api(svc(url, 'default', 'web'), 'PUT', ports(81)); // 6
  await api(svc(url, 'default', 'web'), 'PUT', ports(81)); // identical: nothing
  await api(svc(url, 'default', 'api'), 'DELETE'); // 7
  await api(svc(url, 'other', 'web'), 'DELETE'); // 8, elsewhere
  await api(inst(url, 'default', 'web', 'a'), 'DELETE'); // 9
  t.same(changes(await both.until((m) => changes(m).length >= 5)).map(describe), [
    ['ADDED', 4, 'created', 'svc:api'],
    ['ADDED', 5, 'registered', 'inst:api/x'],
    ['MODIFIED', 6, 'updated', 'svc:web'],
    ['DELETED', 7, 'deleted', 'svc:api'],
    ['DELETED', 9, 'deregistered', 'inst:web/a'],
  ]);
  t.same(changes(await svcOnly.until((m) => changes(m).length >= 3)).map(describe), [
    ['ADDED', 4, 'created', 'svc:api'],
    ['MODIFIED', 6, 'updated', 'svc:web'],
    ['DELETED', 7, 'deleted', 'svc:api'],
  ]);
  t.same(changes(await plain.until((m) => changes(m).length >= 2)).map(describe), [
    ['ADDED', 5, 'registered', 'inst:api/x'],
    ['DELETED', 9, 'deregistered', 'inst:web/a'],
  ]);
  const deleted = changes(both.messages).find((e) => e.type === 'DELETED' && e.service);
  t.match(deleted.service, { namespace: 'default', name: 'api', virtualIP: '127.77.0.3', ports: [{ port: 80 }] }, 'DELETED carries the last state');
  t.notOk('instance' in deleted, 'a Service event has no instance key');
  both.close();
  svcOnly.close();
  plain.close();
});

t.test('filter by service: the Service of that name and its instances, nothing else', async (t) => {
  const { url } = await startServer(t);
  const w = await openWatch(url, { namespace: 'default', service: 'web', resources: 'instances,services' });
  await w.until((m) => m.length >= 1);
  await api(svc(url, 'default', 'api'), 'PUT', ports());
  await api(svc(url, 'default', 'web'), 'PUT', ports());
  await api(inst(url, 'default', 'api', 'a'), 'PUT', body);
  await api(inst(url, 'default', 'web', 'a'), 'PUT', body);
  await api(svc(url, 'other', 'web'), 'PUT', ports());
  await api(svc(url, 'default', 'web'), 'DELETE');
  t.same(changes(await w.until((m) => changes(m).length >= 3)).map(describe), [
    ['ADDED', 2, 'created', 'svc:web'],
    ['ADDED', 4, 'registered', 'inst:web/a'],
    ['DELETED', 6, 'deleted', 'svc:web'],
  ]);
  const registryWide = await openWatch(url, { resources: 'services' });
  await registryWide.until((m) => m.length >= 1);
  t.same(registryWide.messages[0].services.map((s: any) => `${s.namespace}/${s.name}`), ['default/api', 'other/web'], 'every namespace when none is given');
  w.close();
  registryWide.close();
});

t.test('resume from the durable log returns exactly the missed changes of the kinds asked', async (t) => {
  const { url } = await startServer(t);
  const first = await openWatch(url, { namespace: 'default', resources: 'services,instances' });
  await api(svc(url, 'default', 'web'), 'PUT', ports()); // 1
  await first.until((m) => changes(m).length >= 1);
  first.close();
  await api(inst(url, 'default', 'web', 'a'), 'PUT', body); // 2
  await api(svc(url, 'default', 'web'), 'PUT', ports(81)); // 3
  await api(svc(url, 'other', 'x'), 'PUT', ports()); // 4 (elsewhere)
  await api(svc(url, 'default', 'db'), 'PUT', ports(5432)); // 5
  const both = await openWatch(url, { namespace: 'default', resources: 'services,instances', sinceRevision: 1 });
  const svcOnly = await openWatch(url, { namespace: 'default', resources: 'services', sinceRevision: 1 });
  const instOnly = await openWatch(url, { namespace: 'default', sinceRevision: 1 });
  await api(svc(url, 'default', 'db'), 'DELETE'); // 6, live
  t.same(changes(await both.until((m) => changes(m).length >= 4)).map(describe), [
    ['ADDED', 2, 'registered', 'inst:web/a'],
    ['MODIFIED', 3, 'updated', 'svc:web'],
    ['ADDED', 5, 'created', 'svc:db'],
    ['DELETED', 6, 'deleted', 'svc:db'],
  ]);
  t.same(changes(await svcOnly.until((m) => changes(m).length >= 3)).map((e) => e.revision), [3, 5, 6]);
  await api(inst(url, 'default', 'web', 'b'), 'PUT', body); // 7
  t.same(changes(await instOnly.until((m) => changes(m).length >= 2)).map((e) => e.revision), [2, 7], 'instance watchers resume as before');
  t.notOk(both.messages.some((m) => m.type === 'SNAPSHOT'), 'no snapshot on resume');
  both.close();
  svcOnly.close();
  instOnly.close();
});

t.test('compaction: a resume point older than the kept history is refused for Service watchers too; the boundary resumes', async (t) => {
  const { url } = await startServer(t, { config: { historySize: 100 } });
  for (let i = 0; i < 150; i++) await api(svc(url, 'default', 'web'), 'PUT', ports(1000 + i));
  const old = await openWatch(url, { resources: 'services', sinceRevision: 10 });
  await old.waitClosed();
  t.match(old.messages, [{ type: 'ERROR', code: 'revision_compacted' }]);
  const edge = await openWatch(url, { resources: 'services', sinceRevision: 50 });
  await api(svc(url, 'default', 'web'), 'PUT', ports(1));
  const got = changes(await edge.until((m) => changes(m).length >= 101));
  t.equal(got[0].revision, 51, 'the oldest retained revision still resumes');
  t.same(got.map((e) => e.revision), Array.from({ length: 101 }, (_, i) => 51 + i), 'every change once, in order');
  t.ok(got.every((e) => e.service?.name === 'web'));
  edge.close();
});

t.test('Server-Sent Events carry Service events the same way, and resume with Last-Event-ID', async (t) => {
  const { url } = await startServer(t);
  await api(svc(url, 'default', 'web'), 'PUT', ports()); // 1
  const read = async (headers: Record<string, string>, query: string, until: (text: string) => boolean) => {
    const controller = new AbortController();
    const res = await fetch(`${url}/v1/watch?${query}`, { headers: { accept: 'text/event-stream', ...headers }, signal: controller.signal });
    const reader = res.body!.getReader();
    let text = '';
    while (!until(text)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString();
    }
    controller.abort();
    return text;
  };
  const snap = await read({}, 'namespace=default&resources=services', (x) => x.includes('event: SNAPSHOT'));
  t.match(snap, /id: 1\nevent: SNAPSHOT\ndata: \{"type":"SNAPSHOT","revision":1,"items":\[\],"services":\[\{"namespace":"default","name":"web"/);
  await api(svc(url, 'default', 'web'), 'PUT', ports(81)); // 2
  await api(inst(url, 'default', 'web', 'a'), 'PUT', body); // 3
  const resumed = await read({ 'last-event-id': '1' }, 'namespace=default&resources=services', (x) => x.includes('id: 2'));
  t.match(resumed, /id: 2\nevent: MODIFIED\ndata: \{"type":"MODIFIED","revision":2,"reason":"updated","service":\{/);
  t.notMatch(resumed, /id: 3/, 'the instance change is not for a services-only watcher');
});

t.test('a bad resources list is a 400 before the upgrade', async (t) => {
  const { url } = await startServer(t);
  for (const resources of ['', 'pods', 'services,', 'services;instances', 'Services']) {
    const status = await new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(`${url.replace('http', 'ws')}/v1/watch?resources=${encodeURIComponent(resources)}`);
      ws.on('open', () => reject(new Error(`upgraded despite ${resources}`)));
      ws.on('error', () => {});
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    });
    t.equal(status, 400, `resources=${resources}`);
  }
  const dup = await openWatch(url, { resources: 'services,services' });
  await dup.until((m) => m.length >= 1);
  t.same(dup.messages[0].services, [], 'repeats are harmless');
  dup.close();
});
