// Blocking queries and the Server-Sent Events form of the watch.
import t from 'tap';
import { api, startServer } from './helper.js';

const inst = (url: string, svc: string, id: string) => `${url}/v1/namespaces/default/services/${svc}/instances/${id}`;
const body = { address: '10.0.0.1', port: 80, ttlSeconds: 3600 };

t.test('a blocking list answers when its service changes, not when another does', async (t) => {
  const { url } = await startServer(t);
  await api(inst(url, 'web', 'a'), 'PUT', body);
  const first = await api(`${url}/v1/namespaces/default/services/web/instances`);
  t.equal(first.headers.get('x-rollcall-revision'), '1');

  // Already changed after index 0: answers at once.
  const immediate = await api(`${url}/v1/namespaces/default/services/web/instances?index=0&wait=10s`);
  t.equal(immediate.body.items.length, 1);

  const started = Date.now();
  const blocked = api(`${url}/v1/namespaces/default/services/web/instances?index=1&wait=5m`);
  let settled = false;
  void blocked.then(() => (settled = true));
  await api(inst(url, 'other', 'x'), 'PUT', body); // revision 2 elsewhere
  // The unrelated change must not wake it; the wanted change must, long before the 5 minutes are up.
  const probe = await api(`${url}/v1/namespaces/default/services/other/instances?index=1&wait=5s`);
  t.equal(probe.body.revision, 2, 'the other service answered its own blocking query');
  t.notOk(settled, 'web is still waiting after a change to another service');
  await api(inst(url, 'web', 'b'), 'PUT', body);
  const answered = await blocked;
  t.ok(Date.now() - started < 4 * 60_000, 'woken by the change, not the timeout');
  t.equal(answered.body.revision, 3);
  t.same(answered.body.items.map((i: any) => i.id), ['a', 'b']);
  t.equal(answered.headers.get('x-rollcall-revision'), '3');
});

t.test('a blocking query times out with the current revision; bad index/wait are 400', async (t) => {
  const { url } = await startServer(t);
  await api(inst(url, 'web', 'a'), 'PUT', body);
  const started = Date.now();
  const res = await api(`${url}/v1/namespaces/default/services/web/instances?index=1&wait=300ms`);
  const elapsed = Date.now() - started;
  t.ok(elapsed >= 280, `waited ${elapsed} ms`);
  t.equal(res.status, 200);
  t.equal(res.body.revision, 1);
  for (const q of ['index=-1', 'index=abc', 'index=1&wait=10', 'index=1&wait=6m', 'index=1&wait=1h', 'wait=fast']) {
    const bad = await api(`${url}/v1/namespaces/default/services/web/instances?${q}`);
    t.equal(bad.status, 400, q);
    t.equal(bad.body.error, 'validation_failed', q);
  }
  const ahead = await api(`${url}/v1/namespaces/default/services/web/instances?index=99&wait=30s`);
  t.equal(ahead.body.revision, 1, 'an index ahead of the registry answers at once');
});

t.test('a blocking services list wakes on any change in its namespace', async (t) => {
  const { url } = await startServer(t);
  const blocked = api(`${url}/v1/namespaces/default/services?index=0&wait=20s`);
  await api(`${url}/v1/namespaces/elsewhere/services/web/instances/a`, 'PUT', body);
  await api(inst(url, 'web', 'a'), 'PUT', body);
  const res = await blocked;
  t.same(res.body, { revision: 2, items: [{ name: 'web', instances: 1, up: 1 }] });
});

async function readSse(url: string, headers: Record<string, string>, count: number, controller: AbortController) {
  const res = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: controller.signal });
  const events: { id?: string; event?: string; data: any }[] = [];
  const decoder = new TextDecoder();
  let buffer = '';
  const reader = res.body!.getReader();
  while (events.length < count) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const fields = Object.fromEntries(frame.split('\n').map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 2)]));
      events.push({ id: fields.id, event: fields.event, data: JSON.parse(fields.data ?? 'null') });
    }
  }
  return { status: res.status, type: res.headers.get('content-type'), events };
}

t.test('Server-Sent Events: snapshot and live events; Last-Event-ID resumes', async (t) => {
  const { url } = await startServer(t);
  await api(inst(url, 'web', 'a'), 'PUT', body);
  const controller = new AbortController();
  const reading = readSse(`${url}/v1/watch?namespace=default&service=web`, {}, 3, controller);
  await api(inst(url, 'web', 'b'), 'PUT', body);
  await api(inst(url, 'web', 'a'), 'DELETE');
  const first = await reading;
  controller.abort();
  t.equal(first.status, 200);
  t.match(first.type, /^text\/event-stream/);
  t.same(first.events.map((e) => [e.event, e.id]), [['SNAPSHOT', '1'], ['ADDED', '2'], ['DELETED', '3']]);
  t.equal(first.events[2]!.data.reason, 'deregistered');

  await api(inst(url, 'web', 'c'), 'PUT', body);
  const again = new AbortController();
  const resumed = await readSse(`${url}/v1/watch?namespace=default&service=web`, { 'last-event-id': '2' }, 2, again);
  again.abort();
  t.same(resumed.events.map((e) => [e.event, e.id, e.data.instance.id]), [['DELETED', '3', 'a'], ['ADDED', '4', 'c']]);

  const bad = await api(`${url}/v1/watch`, 'GET', undefined, { accept: 'text/event-stream', 'last-event-id': 'x' });
  t.equal(bad.status, 400);
  t.equal(bad.body.error, 'validation_failed');
});
