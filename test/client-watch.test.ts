// The client's live view against a real registry: follows changes, resumes across a restart without
// losing events, lists again when the registry lost its data, and leaves nothing running after close().
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { createClient, RollcallClientError, type WatchView } from '../src/client/index.js';
import { api, startServer, startServerProcess, PATIENCE_MS, waitFor } from './helper.js';

const FAST = { minMs: 50, maxMs: 300 };
const base = (url: string, ns = 'default', svc = 'web') => `${url}/v1/namespaces/${ns}/services/${svc}/instances`;

function ids(view: WatchView): string[] {
  return view.instances().map((i) => `${i.service}/${i.id}`);
}

t.test('the view follows register, patch and deregister within a second', async (t) => {
  const server = await startServer(t);
  await api(`${base(server.url)}/a`, 'PUT', { ttlSeconds: 3600, address: '10.0.0.1', port: 80 });
  const client = createClient({ url: server.url, retry: FAST });
  t.teardown(() => client.close());
  const view = client.watch({ service: 'web' });
  const changes: number[] = [];
  view.on('change', (e) => changes.push(e.revision));
  await view.ready;
  t.same(ids(view), ['web/a'], 'the snapshot');
  t.equal(view.revision, 1);

  const put = await api(`${base(server.url)}/b`, 'PUT', { ttlSeconds: 3600, address: '10.0.0.2', port: 80, zone: 'z1', tags: ['t'] });
  await waitFor(() => view.instances().length === 2, PATIENCE_MS, 'ADDED');
  t.equal(view.revision, put.body.revision);
  const patched = await api(`${base(server.url)}/b`, 'PATCH', { status: 'draining' });
  await waitFor(() => view.instances({ status: 'draining' }).length === 1, PATIENCE_MS, 'MODIFIED');
  t.equal(view.revision, patched.body.revision);
  t.same(view.instances({ zone: 'z1' }).map((i) => i.id), ['b']);
  t.same(view.instances({ tag: 't' }).map((i) => i.id), ['b']);
  t.same(view.instances({ status: 'up' }).map((i) => i.id), ['a']);
  await api(`${base(server.url)}/a`, 'DELETE');
  await waitFor(() => view.instances().length === 1, PATIENCE_MS, 'DELETED');
  t.same(ids(view), ['web/b']);
  // Another service and another namespace are not in a one-service view.
  await api(`${base(server.url, 'default', 'db')}/x`, 'PUT', { ttlSeconds: 3600, address: '10.0.0.3', port: 5432 });
  await api(`${base(server.url, 'other', 'web')}/y`, 'PUT', { ttlSeconds: 3600, address: '10.0.0.4', port: 80 });
  await api(`${base(server.url)}/c`, 'PUT', { ttlSeconds: 3600, address: '10.0.0.5', port: 80 });
  await waitFor(() => view.instances().length === 2, PATIENCE_MS, 'c');
  t.same(ids(view), ['web/b', 'web/c']);
  await waitFor(() => changes.at(-1) === view.revision, PATIENCE_MS, 'a change event at the latest revision');
  t.ok(changes.every((r, i) => i === 0 || r > changes[i - 1]!), 'change revisions only go up');
});

t.test('a namespace view holds every service of its namespace, sorted by service then id', async (t) => {
  const server = await startServer(t);
  const client = createClient({ url: server.url, retry: FAST });
  t.teardown(() => client.close());
  await api(`${base(server.url, 'default', 'web')}/b`, 'PUT', { ttlSeconds: 3600, address: '10.0.0.1', port: 80 });
  await api(`${base(server.url, 'default', 'db')}/z`, 'PUT', { ttlSeconds: 3600, address: '10.0.0.2', port: 80 });
  await api(`${base(server.url, 'other', 'web')}/q`, 'PUT', { ttlSeconds: 3600, address: '10.0.0.3', port: 80 });
  const view = client.watch();
  await view.ready;
  await api(`${base(server.url, 'default', 'web')}/a`, 'PUT', { ttlSeconds: 3600, address: '10.0.0.4', port: 80 });
  await waitFor(() => view.instances().length === 3, PATIENCE_MS, 'web/a');
  t.same(ids(view), ['db/z', 'web/a', 'web/b']);
});

t.test('the view resumes after a registry restart without losing events', async (t) => {
  const first = await startServerProcess(t);
  const url = first.url;
  await api(`${base(url)}/a`, 'PUT', { ttlSeconds: 3600, address: '10.0.0.1', port: 80 });
  await api(`${base(url)}/b`, 'PUT', { ttlSeconds: 3600, address: '10.0.0.2', port: 80 });
  const client = createClient({ url, retry: FAST });
  t.teardown(() => client.close());
  const view = client.watch({ service: 'web' });
  view.on('error', () => {});
  await view.ready;
  await api(`${base(url)}/c`, 'PUT', { ttlSeconds: 3600, address: '10.0.0.3', port: 80 });
  await waitFor(() => view.instances().length === 3, PATIENCE_MS, 'c before the restart');
  const before = view.revision;

  await first.kill('SIGKILL');
  // Changes made while the view is disconnected must reach it by resuming from its revision.
  const second = await startServerProcess(t, { dataDir: first.dataDir, port: first.port });
  await api(`${base(url)}/a`, 'PATCH', { weight: 7 });
  await api(`${base(url)}/b`, 'DELETE');
  await api(`${base(url)}/d`, 'PUT', { ttlSeconds: 3600, address: '10.0.0.4', port: 80 });
  const list = await api(base(second.url));
  await waitFor(() => view.revision === list.body.revision, PATIENCE_MS, 'the view to catch up');
  t.ok(view.revision > before);
  t.same(ids(view), ['web/a', 'web/c', 'web/d']);
  t.equal(view.instances().find((i) => i.id === 'a')?.weight, 7);
  // Lease times differ (the restart's grace renews leases without an event); everything else matches.
  const strip = ({ expiresAt: _e, lastHeartbeatAt: _h, ...rest }: Record<string, unknown>) => rest;
  t.same(view.instances().map(strip), list.body.items.map(strip), 'identical to what the registry lists');
});

t.test('the view lists again when the registry comes back without its data (revision_ahead)', async (t) => {
  const first = await startServerProcess(t);
  for (const id of ['a', 'b', 'c']) await api(`${base(first.url)}/${id}`, 'PUT', { ttlSeconds: 3600, address: '10.0.0.1', port: 80 });
  const client = createClient({ url: first.url, retry: FAST });
  t.teardown(() => client.close());
  const view = client.watch({ service: 'web' });
  view.on('error', () => {});
  await view.ready;
  t.equal(view.revision, 3);
  await first.kill('SIGKILL');
  const second = await startServerProcess(t, { port: first.port });
  await api(`${base(second.url)}/x`, 'PUT', { ttlSeconds: 3600, address: '10.0.0.9', port: 80 });
  await waitFor(() => ids(view).join() === 'web/x', PATIENCE_MS, 'the fresh snapshot');
  t.equal(view.revision, 1, 'the revision follows the new registry');
  await api(`${base(second.url)}/y`, 'PUT', { ttlSeconds: 3600, address: '10.0.0.9', port: 81 });
  await waitFor(() => view.instances().length === 2, PATIENCE_MS, 'events after the relist');
});

t.test('a view closed as a slow consumer resumes and misses nothing', async (t) => {
  const server = await startServerProcess(t, { env: { ROLLCALL_WATCH_BUFFER_BYTES: String(64 * 1024) } });
  const release = join(t.testdir(), 'release');
  // The view lives in its own process, which blocks its event loop (reads nothing) until `release` exists,
  // then waits until it holds 300 instances and prints its state.
  const clientModule = fileURLToPath(new URL('../src/client/index.js', import.meta.url));
  const script = `
    import { existsSync } from 'node:fs';
    import { createClient } from ${JSON.stringify(clientModule)};
    const client = createClient({ url: ${JSON.stringify(server.url)}, retry: { minMs: 50, maxMs: 300 } });
    const view = client.watch({ service: 'web' });
    view.on('error', () => {});
    await view.ready;
    console.log('ready');
    const deadline = Date.now() + 10 * 60_000; // only so an orphan cannot spin forever; the test kills it first
    while (!existsSync(${JSON.stringify(release)}) && Date.now() < deadline) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
    while (view.instances().length < 300 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    console.log(JSON.stringify({ revision: view.revision, ids: view.instances().map((i) => i.id) }));
    client.close();
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => child.kill('SIGKILL'));
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = once(child, 'exit');
  await waitFor(() => out.startsWith('ready'), PATIENCE_MS, 'the view to be ready');
  // About 20 MB of events (300 instances with ~64 KiB of metadata each): more than the loopback socket
  // buffers hold, so the registry's backlog for the blocked view passes its 64 KiB cap.
  const metadata = Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`k${i}`, 'x'.repeat(1000)]));
  for (let i = 0; i < 300; i++) {
    const res = await api(`${base(server.url)}/i${String(i).padStart(3, '0')}`, 'PUT', { address: '10.0.0.1', port: 80, ttlSeconds: 600, metadata });
    if (res.status !== 201) t.fail(`PUT ${i}: ${res.status}`);
  }
  const metrics = await fetch(`${server.url}/metrics`).then((r) => r.text());
  t.match(metrics, /rollcall_watch_slow_consumer_closes_total [1-9]/, 'the registry closed the blocked view as a slow consumer');
  writeFileSync(release, '');
  const [code] = (await exited) as [number];
  t.equal(code, 0);
  const state = JSON.parse(out.split('\n')[1]!) as { revision: number; ids: string[] };
  t.equal(state.revision, 300);
  t.same(state.ids, Array.from({ length: 300 }, (_, i) => `i${String(i).padStart(3, '0')}`), 'every instance, none lost');
});

t.test('ready rejects when the registry refuses the watch; close() before the first snapshot rejects it too', async (t) => {
  const server = await startServer(t);
  const client = createClient({ url: server.url, retry: FAST });
  t.teardown(() => client.close());
  const bad = client.watch({ namespace: 'Not A Label' });
  const errors: Error[] = [];
  bad.on('error', (e) => errors.push(e));
  const err = (await bad.ready.catch((e: unknown) => e)) as RollcallClientError;
  t.type(err, RollcallClientError);
  t.equal(err.status, 400);
  t.equal(errors.length, 1);

  const down = createClient({ url: 'http://127.0.0.1:9', retry: FAST });
  const view = down.watch({ service: 'web' });
  view.on('error', () => {});
  down.close();
  t.equal(((await view.ready.catch((e: unknown) => e)) as RollcallClientError).code, 'closed');
});

t.test('a process using the client exits on its own after client.close()', async (t) => {
  const server = await startServer(t);
  const clientModule = fileURLToPath(new URL('../src/client/index.js', import.meta.url));
  const script = `
    import { createClient } from ${JSON.stringify(clientModule)};
    const client = createClient({ url: ${JSON.stringify(server.url)} });
    const reg = await client.register({ service: 'web', id: 'p1', address: '127.0.0.1', port: 80, ttlSeconds: 60 });
    const view = client.watch({ service: 'web' });
    await view.ready;
    if (view.instances().length !== 1 || !reg.registered) process.exit(3);
    client.close();
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'inherit' });
  const timer = setTimeout(() => child.kill('SIGKILL'), PATIENCE_MS);
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
  clearTimeout(timer);
  t.equal(signal, null, 'not killed by the watchdog');
  t.equal(code, 0);
});
