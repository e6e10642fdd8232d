// What is specific to etcd: two replicas (two apps on one cluster and prefix) agree, never lose an update or
// hand out one virtual IP twice; a replica that loses etcd answers 503 quickly and recovers by itself.
import t, { type Test } from 'tap';
import { restartMember, startEtcdCluster, requireEtcd } from './etcd-cluster.js';
import { api, startServer, waitFor } from './helper.js';

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

  t.test('a replica that loses etcd answers 503 quickly, turns unready, and recovers', async (t) => {
    const { a } = await replicas(t, 'outage', { etcdTimeout: '1s' });
    const watch = await api(inst(a, 'before'), 'PUT', { address: '127.0.0.1', port: 8080, ttlSeconds: 300 });
    t.equal(watch.status, 201);
    for (const m of cluster.members) await m.kill();
    const write = await api(inst(a, 'during'), 'PUT', { address: '127.0.0.1', port: 8081, ttlSeconds: 300 });
    t.equal(write.status, 503);
    t.equal(write.body.error, 'store_unavailable');
    await waitFor(async () => (await api(`${a}/readyz`)).status === 503, undefined, '/readyz turns 503');
    t.equal((await api(inst(a, 'before'))).status, 200, 'reads are still served from memory');
    await Promise.all(cluster.members.map((m) => restartMember(m)));
    await waitFor(async () => (await api(`${a}/readyz`)).status === 200, undefined, '/readyz back to 200');
    await waitFor(async () => (await api(inst(a, 'during'), 'PUT', { address: '127.0.0.1', port: 8081, ttlSeconds: 300 })).status === 201, undefined, 'writes work again');
  });
}
