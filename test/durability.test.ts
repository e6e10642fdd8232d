// kill -9 of a real server process: every answered write survives, the revision never goes back, watchers resume.
import t from 'tap';
import { CHILD_ENV, CLI, api, startServerProcess } from './helper.js';
import { changes, openWatch } from './watch-client.js';

const inst = (url: string, id: string) => `${url}/v1/namespaces/default/services/web/instances/${id}`;

t.test('writes answered 2xx survive kill -9; the revision continues; a watcher resumes across it', async (t) => {
  const first = await startServerProcess(t);
  const watch = await openWatch(first.url, { namespace: 'default', service: 'web' });
  // 200 concurrent registrations; kill -9 the moment the last one is answered.
  const answers = await Promise.all(
    Array.from({ length: 200 }, (_, i) => api(inst(first.url, `i${i}`), 'PUT', { ttlSeconds: 3600, address: '10.0.0.1', port: 1000 + i })),
  );
  t.ok(answers.every((a) => a.status === 201), 'all registered');
  await api(inst(first.url, 'i0'), 'PATCH', { status: 'draining' });
  await api(inst(first.url, 'i1'), 'DELETE');
  await watch.until((m) => changes(m).length >= 100);
  const seen = changes(watch.messages);
  const lastSeen = seen.at(-1).revision;
  await first.kill('SIGKILL');
  await watch.waitClosed();

  const second = await startServerProcess(t, { dataDir: first.dataDir, port: first.port });
  const list = await api(`${second.url}/v1/namespaces/default/services/web/instances`);
  t.equal(list.body.items.length, 199, 'every answered registration is there, the deregistered one is not');
  t.equal(list.body.revision, 202, 'revision is where it was');
  t.equal(list.body.items.find((i: any) => i.id === 'i0').status, 'draining');

  const resumed = await openWatch(second.url, { namespace: 'default', service: 'web', sinceRevision: lastSeen });
  const next = await api(inst(second.url, 'after'), 'PUT', { ttlSeconds: 3600, address: '10.0.0.1', port: 1 });
  t.equal(next.body.revision, 203, 'the revision never goes back');
  const got = changes(await resumed.until((m) => changes(m).some((e) => e.revision === 203)));
  const all = [...seen, ...got].map((e) => e.revision);
  t.same(all, Array.from({ length: 203 }, (_, i) => i + 1), 'every change exactly once, in order, across kill -9');
  resumed.close();
});

t.test('SIGTERM shuts down gracefully with exit code 0', async (t) => {
  const server = await startServerProcess(t);
  await api(inst(server.url, 'a'), 'PUT', { ttlSeconds: 3600, address: '10.0.0.1', port: 1 });
  const watch = await openWatch(server.url);
  const exit = new Promise<number | null>((resolve) => server.child.once('exit', (code) => resolve(code)));
  server.child.kill('SIGTERM');
  t.equal(await exit, 0);
  await watch.waitClosed();
});

t.test('bad serve flags: one line, non-zero exit', async (t) => {
  const { spawnSync } = await import('node:child_process');
  const res = spawnSync(process.execPath, [CLI, 'serve', '--port', 'abc'], { encoding: 'utf8', env: CHILD_ENV });
  t.not(res.status, 0);
  t.match(res.stderr, /^rollcall: Invalid configuration: port/);
  t.equal(res.stderr.trim().split('\n').length, 1);
});

t.test('Services answered 2xx survive kill -9 with their virtual IPs; no address is handed out twice after it', async (t) => {
  const svc = (url: string, name: string) => `${url}/v1/namespaces/default/services/${name}`;
  const first = await startServerProcess(t);
  const watch = await openWatch(first.url, { namespace: 'default', resources: 'services' });
  const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => api(svc(first.url, `s${i}`), 'PUT', { ports: [{ port: 80 + i }] })));
  t.ok(answers.every((a) => a.status === 201), 'all created');
  await api(svc(first.url, 's0'), 'DELETE');
  const before = new Map(answers.slice(1).map((a) => [a.body.name as string, a.body.virtualIP as string]));
  t.equal(new Set(before.values()).size, 49, 'distinct addresses');
  await watch.until((m) => changes(m).length >= 10);
  const seen = changes(watch.messages);
  const lastSeen = seen.at(-1).revision;
  await first.kill('SIGKILL');

  const second = await startServerProcess(t, { dataDir: first.dataDir, port: first.port });
  const list = await api(`${second.url}/v1/namespaces/default/services`);
  t.same(new Map(list.body.items.map((i: any) => [i.name, i.virtualIP])), before, 'every Service with the same address');
  t.equal(list.body.revision, 51);
  const resumed = await openWatch(second.url, { namespace: 'default', resources: 'services', sinceRevision: lastSeen });
  const fresh = await api(svc(second.url, 'new'), 'PUT', { ports: [{ port: 1 }] });
  t.notOk([...before.values()].includes(fresh.body.virtualIP), `a new Service gets a free address (${fresh.body.virtualIP})`);
  const got = changes(await resumed.until((m) => changes(m).some((e) => e.revision === 52), 10_000));
  t.same([...seen, ...got].map((e) => e.revision), Array.from({ length: 52 }, (_, i) => i + 1), 'every Service change once, in order');
  t.equal(got.at(-1).service.name, 'new');
  resumed.close();
});
