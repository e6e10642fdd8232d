// What is specific to etcd: two replicas (two apps on one cluster and prefix) agree, never lose an update or
// hand out one virtual IP twice; a replica that loses etcd answers 503 quickly and recovers by itself.
import { Etcd3 } from 'etcd3';
import t, { type Test } from 'tap';
import { restartMember, startEtcdCluster, requireEtcd } from './etcd-cluster.js';
import { api, startServer, startServerProcess, waitFor } from './helper.js';
import { changes, openWatch } from './watch-client.js';

if (requireEtcd(t)) {
  const cluster = await startEtcdCluster(t);
  const replicas = async (t: Test, name: string, extra: Record<string, unknown> = {}) => {
    const config = { store: 'etcd' as const, etcdEndpoints: cluster.endpoints.join(','), etcdPrefix: cluster.prefix(name), ...extra };
    const a = await startServer(t, { config });
    const b = await startServer(t, { config });
    return { a: a.url, b: b.url };
  };
  const inst = (url: string, id: string) => `${url}/v1/namespaces/default/services/web/instances/${id}`;

  t.test('a write on A is read on B with minRevision', async (t) => {
    const { a, b } = await replicas(t, 'ryw');
    const put = await api(inst(a, 'x'), 'PUT', { address: '127.0.0.1', port: 8080, ttlSeconds: 300 });
    t.equal(put.status, 201);
    const list = await api(`${b}/v1/namespaces/default/services/web/instances?minRevision=${put.body.revision}`);
    t.equal(list.status, 200);
    t.same(list.body.items.map((i: any) => [i.id, i.revision]), [['x', put.body.revision]], 'B serves A\'s write at its revision');
    const beat = await api(`${inst(b, 'x')}/heartbeat`, 'PUT');
    t.equal(beat.status, 200, 'a heartbeat on the other replica renews the same lease');
    const ahead = await api(`${b}/v1/namespaces/default/services/web/instances?minRevision=${put.body.revision + 1_000_000}&wait=200ms`);
    t.equal(ahead.status, 504, 'a revision this replica never reaches answers 504 after the wait');
    t.equal(ahead.body.error, 'revision_not_reached');
  });

  t.test('concurrent PATCHes through both replicas lose no update', async (t) => {
    const { a, b } = await replicas(t, 'patch');
    await api(inst(a, 'x'), 'PUT', { address: '127.0.0.1', port: 8080, ttlSeconds: 300, metadata: {} });
    const writes = 20;
    const results = await Promise.all(
      Array.from({ length: writes }, (_, i) => api(inst(i % 2 === 0 ? a : b, 'x'), 'PATCH', { weight: i + 1 })),
    );
    t.same(results.map((r) => r.status), Array(writes).fill(200), 'every PATCH succeeded');
    const revisions = results.map((r) => r.body.revision);
    t.equal(new Set(revisions).size, writes, 'each PATCH is its own revision: none overwrote another unseen');
    const last = results.reduce((x, y) => (y.body.revision > x.body.revision ? y : x));
    for (const url of [a, b]) {
      const got = await api(`${url}/v1/namespaces/default/services/web/instances?minRevision=${last.body.revision}`);
      t.equal(got.body.items[0].weight, last.body.weight, 'the final state is the last committed write, on both replicas');
    }
  });

  t.test('two replicas allocating virtual IPs at once never collide', async (t) => {
    const { a, b } = await replicas(t, 'vips');
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) => api(`${i % 2 === 0 ? a : b}/v1/namespaces/default/services/s${i}`, 'PUT', { ports: [{ port: 80 }] })),
    );
    t.same(results.map((r) => r.status), Array(30).fill(201));
    const ips = results.map((r) => r.body.virtualIP);
    t.equal(new Set(ips).size, 30, 'thirty Services, thirty addresses');
  });

  t.test('rollcall serve --store etcd as a process; a replica started later resumes a watcher from etcd history', async (t) => {
    const prefix = cluster.prefix('cli');
    const a = await startServerProcess(t, { args: ['--store', 'etcd', '--etcd-endpoints', cluster.endpoints.join(','), '--etcd-prefix', prefix] });
    const first = await api(inst(a.url, 'x'), 'PUT', { address: '127.0.0.1', port: 8080, ttlSeconds: 300 });
    t.equal(first.status, 201);
    await api(inst(a.url, 'y'), 'PUT', { address: '127.0.0.1', port: 8081, ttlSeconds: 300 });
    await api(inst(a.url, 'x'), 'DELETE');
    // A write outside the prefix: the revision B loads at is then no revision of this registry.
    const other = new Etcd3({ hosts: cluster.endpoints });
    await other.put(`${prefix}-unrelated`).value('x');
    other.close();
    // B starts after those writes: resuming from before its start reads etcd's history, not its memory.
    const b = await startServer(t, { config: { store: 'etcd', etcdEndpoints: cluster.endpoints, etcdPrefix: prefix } });
    const watch = await openWatch(b.url, { namespace: 'default', sinceRevision: first.body.revision });
    t.teardown(() => watch.socket.close());
    // Nothing is written meanwhile: the history read must end by itself at the revision B started from.
    await waitFor(() => changes(watch.messages).length >= 2, undefined, 'history');
    await api(inst(b.url, 'z'), 'PUT', { address: '127.0.0.1', port: 8082, ttlSeconds: 300 });
    await waitFor(() => changes(watch.messages).length >= 3, undefined, 'history then live');
    t.same(
      changes(watch.messages).map((e: any) => [e.type, e.reason, e.instance.id]),
      [
        ['ADDED', 'registered', 'y'],
        ['DELETED', 'deregistered', 'x'],
        ['ADDED', 'registered', 'z'],
      ],
      'every change after sinceRevision once, in order, across history and live',
    );
  });

  t.test('restarting every replica evicts nobody: the leases live in etcd', async (t) => {
    const config = { store: 'etcd' as const, etcdEndpoints: cluster.endpoints, etcdPrefix: cluster.prefix('restart') };
    const first = await startServer(t, { config });
    const put = await api(inst(first.url, 'x'), 'PUT', { address: '127.0.0.1', port: 8080, ttlSeconds: 300 });
    await first.close();
    const second = await startServer(t, { config });
    const got = await api(inst(second.url, 'x'));
    t.equal(got.status, 200, 'still registered after the only replica restarted');
    t.equal(got.body.revision, put.body.revision, 'unchanged: the restart wrote nothing');
    t.equal((await api(`${inst(second.url, 'x')}/heartbeat`, 'PUT')).status, 200, 'and its lease renews through the new replica');
  });

  t.test('a replica that loses etcd answers 503 quickly, turns unready, and recovers', async (t) => {
    const { a } = await replicas(t, 'outage', { etcdTimeout: '1s' });
    const watch = await openWatch(a, { namespace: 'default' });
    t.teardown(() => watch.socket.close());
    const before = await api(inst(a, 'before'), 'PUT', { address: '127.0.0.1', port: 8080, ttlSeconds: 300 });
    t.equal(before.status, 201);
    for (const m of cluster.members) await m.kill();
    const write = await api(inst(a, 'during'), 'PUT', { address: '127.0.0.1', port: 8081, ttlSeconds: 300 });
    t.equal(write.status, 503);
    t.equal(write.body.error, 'store_unavailable');
    await waitFor(async () => (await api(`${a}/readyz`)).status === 503, undefined, '/readyz turns 503');
    t.equal((await api(inst(a, 'before'))).status, 200, 'reads are still served from memory');
    await Promise.all(cluster.members.map((m) => restartMember(m)));
    await waitFor(async () => (await api(`${a}/readyz`)).status === 200, undefined, '/readyz back to 200');
    await waitFor(async () => (await api(inst(a, 'during'), 'PUT', { address: '127.0.0.1', port: 8081, ttlSeconds: 300 })).status === 201, undefined, 'writes work again');
    await waitFor(() => changes(watch.messages).length >= 2, undefined, 'the open watch continues');
    t.same(
      changes(watch.messages).map((e: any) => [e.type, e.instance.id]),
      [
        ['ADDED', 'before'],
        ['ADDED', 'during'],
      ],
      'the watch stayed open across the outage and missed nothing',
    );
    t.notOk(watch.closed, 'never closed');
  });

  t.test('two of three members gone: no quorum, so 503 and unready; back when one returns', async (t) => {
    // Connected to the member that stays only: its watch stays open, only the quorum is gone.
    const { a } = await replicas(t, 'quorum', { etcdTimeout: '1s', etcdEndpoints: cluster.members[0]!.clientUrl });
    t.equal((await api(inst(a, 'before'), 'PUT', { address: '127.0.0.1', port: 8080, ttlSeconds: 300 })).status, 201);
    const [, second, third] = cluster.members;
    await second!.kill();
    await third!.kill();
    await waitFor(async () => (await api(`${a}/readyz`)).status === 503, undefined, '/readyz 503 without a quorum');
    const write = await api(inst(a, 'during'), 'PUT', { address: '127.0.0.1', port: 8081, ttlSeconds: 300 });
    t.equal(write.status, 503);
    t.equal(write.body.error, 'store_unavailable');
    await restartMember(second!);
    await waitFor(async () => (await api(`${a}/readyz`)).status === 200, undefined, 'ready again with two of three');
    await waitFor(async () => (await api(inst(a, 'during'), 'PUT', { address: '127.0.0.1', port: 8081, ttlSeconds: 300 })).status === 201, undefined, 'writes again');
    await restartMember(third!);
  });
}
