// Issue 14: reads served from pre-serialized instances and shared, paged watch snapshots must answer exactly
// what the schema-serialized forms did, stay fresh across heartbeats, and keep "snapshot atomic with subscribe".
import t from 'tap';
import { createManualClock } from '../src/registry/clock.js';
import { instanceList } from '../src/schemas/api.js';
import { instance } from '../src/schemas/instance.js';
import { api, startServer, waitFor } from './helper.js';
import { openWatch, type RecordedWatch } from './watch-client.js';

const SVC = '/v1/namespaces/default/services/web/instances';

// Values that look like the keys the cached JSON is split at, and characters JSON escapes.
const TRICKY = {
  tags: ['","revision":7', ',"lastHeartbeatAt":"x', 'ünï "quoted" \\ back'],
  metadata: { '","expiresAt":"': ',"lastHeartbeatAt":"2020-01-01T00:00:00.000Z","revision":1}', plain: 'v' },
};

t.test('a list is byte for byte the schema-serialized list, and lease times move with heartbeats', async (t) => {
  const clock = createManualClock();
  const server = await startServer(t, { clock });
  await api(`${server.url}${SVC}/a`, 'PUT', { address: '10.0.0.1', port: 80, ...TRICKY });
  await api(`${server.url}${SVC}/b`, 'PUT', { address: 'host.example', port: 81, zone: 'eu-1', ttlSeconds: 60 });
  await api(`${server.url}${SVC}/c`, 'PUT', { address: '::1', port: 82, status: 'draining', weight: 0 });

  const read = async (query = '') => {
    const res = await fetch(`${server.url}${SVC}${query}`);
    t.match(res.headers.get('content-type'), /^application\/json/);
    return { text: await res.text(), revision: res.headers.get('x-rollcall-revision') };
  };
  // What the route answered before: JSON.stringify of the registry's list (the app's serializer).
  const expected = (filter: Record<string, string> = {}) =>
    JSON.stringify(server.registry.list({ namespace: 'default', service: 'web', ...filter }));

  const first = await read();
  t.equal(first.text, expected());
  t.equal(first.revision, String(server.registry.revision));
  // The zod response schema's form is the same text: same keys, same order.
  t.equal(JSON.stringify(instanceList.parse(JSON.parse(first.text))), first.text);
  t.same(JSON.parse(first.text).items[0].tags, TRICKY.tags);
  t.same(JSON.parse(first.text).items[0].metadata, TRICKY.metadata);

  // A heartbeat moves lastHeartbeatAt and expiresAt in place: the next list shows the new times.
  clock.advance(5_000);
  const beat = await api(`${server.url}${SVC}/a/heartbeat`, 'PUT');
  t.equal(beat.status, 200);
  const afterBeat = await read();
  t.equal(afterBeat.text, expected());
  const a = JSON.parse(afterBeat.text).items.find((i: { id: string }) => i.id === 'a');
  t.equal(a.lastHeartbeatAt, new Date(clock.now()).toISOString());
  t.equal(a.expiresAt, new Date(clock.now() + 30_000).toISOString());
  t.equal(a.expiresAt, beat.body.expiresAt);

  // A patch is a new record: its cached form is new too.
  clock.advance(1_000);
  await api(`${server.url}${SVC}/b`, 'PATCH', { tags: ['new'], zone: null });
  const afterPatch = await read();
  t.equal(afterPatch.text, expected());
  t.match(JSON.parse(afterPatch.text).items[1], { id: 'b', tags: ['new'], zone: null, lastHeartbeatAt: new Date(clock.now()).toISOString() });

  // A stall discounted from every lease (pauseLeases) shows in expiresAt without any record changing.
  server.registry.pauseLeases(2_000);
  const afterPause = await read();
  t.equal(afterPause.text, expected());
  t.equal(JSON.parse(afterPause.text).items[0].expiresAt, new Date(Date.parse(a.expiresAt) + 2_000).toISOString());

  // Filters and an empty service answer the same way.
  t.equal((await read('?status=draining')).text, expected({ status: 'draining' }));
  t.equal((await read('?tag=new')).text, expected({ tag: 'new' }));
  const none = await fetch(`${server.url}/v1/namespaces/default/services/nothing/instances`);
  t.equal(await none.text(), `{"revision":${server.registry.revision},"items":[]}`);

  // A blocking query answers with the same bytes once the change came.
  const waiting = fetch(`${server.url}${SVC}?index=${server.registry.revision}&wait=1m`).then((r) => r.text());
  await api(`${server.url}${SVC}/d`, 'PUT', { address: '10.0.0.4', port: 84 });
  t.equal(await waiting, expected());
});

t.test('instances restored at start list the same, and their shared tags and metadata can still change', async (t) => {
  const clock = createManualClock();
  const dataDir = t.testdir();
  const before = await startServer(t, { clock, dataDir });
  for (const id of ['a', 'b', 'c']) await api(`${before.url}${SVC}/${id}`, 'PUT', { address: '10.0.0.1', port: 80, zone: 'z1', ttlSeconds: 3600, ...TRICKY });
  const listed = (await api(`${before.url}${SVC}`)).body;
  await before.close();

  const after = await startServer(t, { clock, dataDir });
  const restored = (await api(`${after.url}${SVC}`)).body;
  const withoutLease = (i: Record<string, unknown>) => ({ ...i, expiresAt: undefined });
  t.same(restored.items.map(withoutLease), listed.items.map(withoutLease));
  t.equal(JSON.stringify(restored), JSON.stringify(after.registry.list({ namespace: 'default', service: 'web' })));
  // Restored rows share one tags array and metadata map (interned); a change makes new ones.
  const patched = await api(`${after.url}${SVC}/b`, 'PATCH', { tags: ['only-b'], metadata: { k: 'v' } });
  t.equal(patched.status, 200);
  const now = (await api(`${after.url}${SVC}`)).body.items;
  t.same(now.map((i: { tags: string[] }) => i.tags), [TRICKY.tags, ['only-b'], TRICKY.tags]);
  t.same(now[2].metadata, TRICKY.metadata);
});

/** Reads one SSE stream until its SNAPSHOT event and returns the event's data text. */
async function sseSnapshot(url: string): Promise<{ id: string; data: string; abort: () => void }> {
  const controller = new AbortController();
  const res = await fetch(`${url}/v1/watch?namespace=default&service=big`, { headers: { accept: 'text/event-stream' }, signal: controller.signal });
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error('SSE stream ended before its snapshot');
    text += decoder.decode(value, { stream: true });
    const end = text.indexOf('\n\n');
    if (end < 0) continue;
    const m = /^id: (\d+)\nevent: SNAPSHOT\ndata: (.*)$/s.exec(text.slice(0, end));
    if (!m) throw new Error(`unexpected SSE start: ${text.slice(0, 80)}`);
    return { id: m[1]!, data: m[2]!, abort: () => controller.abort() };
  }
}

t.test('watchers of one filter share a paged snapshot; each then sees every later event once, with writes during the paging', async (t) => {
  const server = await startServer(t);
  const registry = server.registry;
  // Several pages (500 instances each), so the snapshot is built over several event-loop turns.
  for (let i = 0; i < 2_600; i++) void registry.register('default', 'big', `i-${String(i).padStart(5, '0')}`, { address: '10.0.0.1', port: 1000 + (i % 60000), ttlSeconds: 3600, tags: ['t'] });
  await registry.settled();

  const raw = new Map<RecordedWatch, string>();
  const connect = () =>
    Array.from({ length: 6 }, async () => {
      const w = await openWatch(server.url, { namespace: 'default', service: 'big' });
      w.socket.once('message', (data) => raw.set(w, data.toString()));
      return w;
    });
  // The first six connect while nothing is written: they subscribe at one revision and share its snapshot.
  const shared = await Promise.all(connect());
  await waitFor(async () => (await api(`${server.url}/readyz`)).body.watchers >= 6);
  const sharedRevision = registry.revision;

  // A writer keeps committing (registrations, patches, deregistrations) while their snapshot may still be
  // paged out, and while six more watchers connect.
  let writing = true;
  let n = 0;
  const writer = (async () => {
    while (writing) {
      const id = `i-${String(n % 2_600).padStart(5, '0')}`;
      if (n % 3 === 0) await registry.patch('default', 'big', id, { weight: (n % 7) + 1 });
      else if (n % 3 === 1) await registry.register('default', 'big', `w-${n}`, { address: '10.0.0.2', port: 2000, ttlSeconds: 3600 });
      else await registry.deregister('default', 'big', `w-${n - 1}`);
      n++;
      await new Promise((r) => setImmediate(r));
    }
  })();

  const watchers = [...shared, ...(await Promise.all(connect()))];
  const sse = await sseSnapshot(server.url);
  await waitFor(() => watchers.every((w) => w.messages.length > 0 && raw.has(w)));
  // More writes after every snapshot arrived, then stop.
  const target = n + 30;
  await waitFor(() => n >= target);
  writing = false;
  await writer;
  await registry.settled();
  const finalRevision = registry.revision;
  await waitFor(() => watchers.every((w) => w.messages.at(-1)!.revision === finalRevision));

  const byRevision = new Map<number, string>();
  const expectedItems = JSON.stringify(registry.list({ namespace: 'default', service: 'big' }).items);
  for (const w of watchers) {
    const [snapshot, ...events] = w.messages;
    t.equal(snapshot.type, 'SNAPSHOT');
    // Watchers that got the same revision got the same bytes.
    const text = raw.get(w)!;
    const seen = byRevision.get(snapshot.revision);
    if (seen === undefined) byRevision.set(snapshot.revision, text);
    else t.equal(text, seen, `snapshot at ${snapshot.revision} is the same for every watcher`);
    // Schema form, byte for byte.
    t.equal(JSON.stringify(snapshot.items.map((i: unknown) => instance.parse(i))), JSON.stringify(snapshot.items));
    // Every event after the snapshot once, in order, with no gap: the snapshot plus the events is the final state.
    const revisions = events.map((e: { revision: number }) => e.revision);
    t.ok(revisions.every((r: number, i: number) => r > snapshot.revision && (i === 0 || r > revisions[i - 1]!)), 'strictly after the snapshot, increasing');
    const state = new Map<string, unknown>(snapshot.items.map((i: { id: string }) => [i.id, i]));
    for (const e of events) {
      if (e.type === 'DELETED') t.ok(state.delete(e.instance.id), `DELETED ${e.instance.id} was in the state`);
      else {
        t.equal(state.has(e.instance.id), e.type === 'MODIFIED', `${e.type} ${e.instance.id}`);
        state.set(e.instance.id, e.instance);
      }
    }
    const rebuilt = [...state.values()].sort((a: any, b: any) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    // Lease times are not changes; compare everything else.
    const strip = (items: any[]) => JSON.stringify(items.map((i) => ({ ...i, lastHeartbeatAt: 0, expiresAt: 0 })));
    t.equal(strip(rebuilt), strip(JSON.parse(expectedItems)));
    // Each event once: revisions are unique per watcher and match the event log for this service.
    const log = (await registry.eventsAfter({ namespace: 'default', service: 'big' }, snapshot.revision, finalRevision, 100_000)).map((e) => e.revision);
    t.same(revisions, log);
  }
  t.ok(shared.every((w) => w.messages[0].revision === sharedRevision), 'the first six got the snapshot at one revision');
  // The SSE snapshot carries the same JSON as a WebSocket snapshot of its revision.
  const ws = byRevision.get(Number(sse.id));
  if (ws !== undefined) t.equal(sse.data, ws);
  t.equal(JSON.parse(sse.data).revision, Number(sse.id));
  sse.abort();
  for (const w of watchers) w.close();
});

t.test('a snapshot larger than the watch buffer reaches the watcher whole instead of closing it as slow', async (t) => {
  const server = await startServer(t, { config: { watchBufferBytes: 64 * 1024 } });
  for (let i = 0; i < 1_500; i++) void server.registry.register('default', 'big', `i-${i}`, { address: '10.0.0.1', port: 80, ttlSeconds: 3600, metadata: { pad: 'x'.repeat(200) } });
  await server.registry.settled();
  const w = await openWatch(server.url, { namespace: 'default', service: 'big' });
  const [snapshot] = await w.until((m) => m.length > 0);
  t.equal(snapshot.items.length, 1_500);
  await api(`${server.url}/v1/namespaces/default/services/big/instances/i-0`, 'PATCH', { weight: 3 });
  const messages = await w.until((m) => m.length > 1);
  t.match(messages[1], { type: 'MODIFIED', instance: { id: 'i-0', weight: 3 } });
  t.equal(w.closed, undefined);
  w.close();
});
