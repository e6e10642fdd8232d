// view.pick(): smooth weighted round-robin over routable instances, preferring a zone, against a real registry.
import t from 'tap';
import { createClient, createPicker, type Instance } from '../src/client/index.js';
import { api, startServer, PATIENCE_MS, waitFor } from './helper.js';

const base = (url: string) => `${url}/v1/namespaces/default/services/web/instances`;

function count(pick: () => Instance | undefined, n: number): Record<string, number> {
  const seen: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const id = pick()?.id ?? 'none';
    seen[id] = (seen[id] ?? 0) + 1;
  }
  return seen;
}

t.test('pick skips draining, starting, down and zero-weight instances and respects weights', async (t) => {
  const server = await startServer(t);
  const put = (id: string, body: Record<string, unknown>) => api(`${base(server.url)}/${id}`, 'PUT', { ttlSeconds: 3600, address: '10.0.0.1', port: 80, ...body });
  await put('w1', { weight: 1 });
  await put('w3', { weight: 3 });
  await put('drain', { status: 'draining', weight: 100 });
  await put('start', { status: 'starting' });
  await put('down', { status: 'down' });
  await put('zero', { weight: 0 });
  const client = createClient({ url: server.url });
  t.teardown(() => client.close());
  const view = client.watch({ service: 'web' });
  await view.ready;
  t.equal(view.instances().length, 6);
  // Smooth WRR is exact over every window of sum(weights) picks.
  t.same(count(() => view.pick(), 400), { w1: 100, w3: 300 });
  // ... and interleaved rather than in runs: w1 never comes twice in a row with weights 1:3.
  const seq = Array.from({ length: 8 }, () => view.pick()!.id);
  t.notOk(seq.some((id, i) => id === 'w1' && seq[i + 1] === 'w1'), `interleaved: ${seq.join(',')}`);

  // Draining the heavy one moves all traffic to the other; nothing routable → undefined.
  await api(`${base(server.url)}/w3`, 'PATCH', { status: 'draining' });
  await waitFor(() => view.instances({ status: 'draining' }).length === 2, PATIENCE_MS, 'w3 draining');
  t.same(count(() => view.pick(), 20), { w1: 20 });
  await api(`${base(server.url)}/w1`, 'PATCH', { weight: 0 });
  await waitFor(() => view.instances().find((i) => i.id === 'w1')?.weight === 0, PATIENCE_MS, 'w1 weight 0');
  t.equal(view.pick(), undefined);
});

t.test('pick prefers the given zone and falls back to the others when it has none', async (t) => {
  const server = await startServer(t);
  const put = (id: string, body: Record<string, unknown>) => api(`${base(server.url)}/${id}`, 'PUT', { ttlSeconds: 3600, address: '10.0.0.1', port: 80, ...body });
  await put('a1', { zone: 'a', weight: 2 });
  await put('a2', { zone: 'a', weight: 1 });
  await put('b1', { zone: 'b', weight: 5 });
  await put('c1', { zone: 'c', status: 'draining' });
  const client = createClient({ url: server.url });
  t.teardown(() => client.close());
  const view = client.watch({ service: 'web' });
  await view.ready;
  t.same(count(() => view.pick({ zone: 'a' }), 300), { a1: 200, a2: 100 }, 'zone a only, by weight');
  t.same(count(() => view.pick({ zone: 'b' }), 10), { b1: 10 });
  // Zone c has only a draining instance, zone x has none: every routable instance, by weight.
  t.same(count(() => view.pick({ zone: 'c' }), 80), { a1: 20, a2: 10, b1: 50 });
  t.same(count(() => view.pick({ zone: 'x' }), 80), { a1: 20, a2: 10, b1: 50 });
  t.same(count(() => view.pick(), 80), { a1: 20, a2: 10, b1: 50 });
  // Zone a loses its instances: falls back at once.
  await api(`${base(server.url)}/a1`, 'DELETE');
  await api(`${base(server.url)}/a2`, 'PATCH', { status: 'down' });
  await waitFor(() => view.instances({ zone: 'a' }).every((i) => i.status === 'down'), PATIENCE_MS, 'zone a empty');
  t.same(count(() => view.pick({ zone: 'a' }), 5), { b1: 5 });
});

t.test('the picker drops departed instances so a newcomer starts fresh', async (t) => {
  const mk = (id: string, weight: number): Instance => ({
    namespace: 'default', service: 'web', id, address: '10.0.0.1', port: 80, status: 'up', weight, zone: null, tags: [], metadata: {},
    ttlSeconds: 30, registeredAt: '', lastHeartbeatAt: '', expiresAt: '', revision: 1, createRevision: 1,
  });
  const picker = createPicker();
  const pool = [mk('a', 1), mk('b', 1)];
  t.same(count(() => picker.pick(pool), 10), { a: 5, b: 5 });
  t.same(count(() => picker.pick([mk('a', 1), mk('c', 1)]), 10), { a: 5, c: 5 });
  t.equal(picker.pick([]), undefined);
});
