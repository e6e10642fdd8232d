// High availability, proven with the real thing: a 3-member etcd cluster on loopback, rollcall replicas as child
// processes on --store etcd, and clients that fail over across them (url: [a, b, c]). Each test has its own key
// prefix and its own replicas; the test that kills etcd members runs last, so the others have a whole cluster.
import t, { type Test } from 'tap';
import { createClient, type RegistryEvent, type ServiceEvent } from '../src/client/index.js';
import { requireEtcd, restartMember, startEtcdCluster, type EtcdCluster, type EtcdMember } from './etcd-cluster.js';
import { api, PATIENCE_MS, startServerProcess, waitFor, type ServerProcess } from './helper.js';

const FAST = { minMs: 50, maxMs: 500 };
const inst = (url: string, service: string, id: string) => `${url}/v1/namespaces/default/services/${service}/instances/${id}`;
const list = (url: string, service: string, minRevision: number) => `${url}/v1/namespaces/default/services/${service}/instances?minRevision=${minRevision}`;
const body = (i: number) => ({ address: `10.1.${Math.floor(i / 250)}.${i % 250}`, port: 8000, ttlSeconds: 3600 });

interface Replicas {
  list: ServerProcess[];
  args: string[];
  urls(): string[];
  /** Stops replica i (SIGTERM: a rolling restart; SIGKILL: a crash) and starts it again on the same port. */
  restart(i: number, signal: NodeJS.Signals): Promise<void>;
}

async function startReplicas(t: Test, cluster: EtcdCluster, name: string, extra: string[] = []): Promise<Replicas> {
  const args = ['--store', 'etcd', '--etcd-endpoints', cluster.endpoints.join(','), '--etcd-prefix', cluster.prefix(name), ...extra];
  const started = await Promise.all([0, 1, 2].map(() => startServerProcess(t, { args })));
  const replicas: Replicas = {
    list: started,
    args,
    urls: () => replicas.list.map((r) => r.url),
    async restart(i, signal) {
      const old = replicas.list[i]!;
      await old.kill(signal);
      replicas.list[i] = await startServerProcess(t, { port: old.port, args });
      await waitFor(async () => (await api(`${old.url}/readyz`)).status === 200, PATIENCE_MS, `replica ${i} ready again`);
    },
  };
  return replicas;
}

/** The ids a replica lists once it has applied revision `minRevision` (reads its own and others' acknowledged writes). */
async function idsOn(url: string, service: string, minRevision: number): Promise<Set<string>> {
  const res = await api(list(url, service, minRevision));
  if (res.status !== 200) throw new Error(`${url} answered ${res.status}: ${JSON.stringify(res.body)}`);
  return new Set((res.body.items as { id: string }[]).map((i) => i.id));
}

/** The member that leads the cluster now (the hardest one to lose: a new election happens under load). */
async function leader(cluster: EtcdCluster): Promise<EtcdMember> {
  for (const m of cluster.members) {
    const res = await fetch(`${m.clientUrl}/v3/maintenance/status`, { method: 'POST', body: '{}' });
    const status = (await res.json()) as { header: { member_id: string }; leader: string };
    if (status.header.member_id === status.leader) return m;
  }
  throw new Error('no member says it leads');
}

const strictlyIncreasing = (xs: number[]) => xs.every((x, i) => i === 0 || x > xs[i - 1]!);
const ascending = (xs: number[]) => [...xs].sort((a, b) => a - b);

if (requireEtcd(t)) {
  const cluster = await startEtcdCluster(t);

  t.test('kill -9 of one replica during 1,000 concurrent registrations: every acknowledged one is on both survivors', async (t) => {
    const replicas = await startReplicas(t, cluster, 'kill-replica');
    const urls = replicas.urls();
    const acked: { id: string; revision: number; on: number }[] = [];
    let refused = 0;
    let killed: Promise<void> | undefined;
    // All at once, spread over the three replicas; those in flight to the killed replica fail and are not acknowledged.
    const all = Array.from({ length: 1000 }, async (_, i) => {
      const on = i % 3;
      try {
        const res = await api(inst(urls[on]!, 'reg', `i${i}`), 'PUT', body(i));
        if (res.status === 201) acked.push({ id: `i${i}`, revision: res.body.revision as number, on });
        else refused++;
      } catch {
        refused++;
      }
      // At the 200th answer, right away (not at the next poll): most of the 1,000 are still in flight.
      if (acked.length + refused === 200) killed = replicas.list[0]!.kill('SIGKILL');
    });
    await Promise.all(all);
    await killed;
    t.ok(refused > 0, 'registrations in flight to the killed replica failed');
    t.comment(`${acked.length} acknowledged (${acked.filter((a) => a.on === 0).length} by the killed replica), ${refused} failed`);
    t.ok(acked.some((a) => a.on !== 0 && a.revision > Math.min(...acked.map((x) => x.revision))), 'the survivors kept acknowledging');
    const latest = Math.max(...acked.map((a) => a.revision));
    for (const survivor of [1, 2]) {
      const ids = await idsOn(urls[survivor]!, 'reg', latest);
      const missing = acked.filter((a) => !ids.has(a.id));
      t.same(missing, [], `replica ${survivor} lists every acknowledged registration (${acked.length})`);
    }
    t.same([...(await idsOn(urls[1]!, 'reg', latest))].sort(), [...(await idsOn(urls[2]!, 'reg', latest))].sort(), 'both survivors hold the same registrations');
  });

  t.test('a watcher whose replica is killed resumes on another and sees every revision exactly once, in order', async (t) => {
    const replicas = await startReplicas(t, cluster, 'watch-resume');
    const urls = replicas.urls();
    const client = createClient({ url: urls, retry: FAST });
    t.teardown(() => client.close());
    const view = client.watch({ service: 'web' });
    view.on('error', () => {});
    const seen: number[] = [];
    view.on('event', (e) => seen.push(e.revision));
    await view.ready;
    t.equal(client.url, urls[0], 'the view follows the first replica');

    // Writes through the two other replicas, one after another, before, during and after the kill.
    const acked: number[] = [];
    const writes = (async () => {
      for (let i = 0; i < 60; i++) {
        const res = await api(inst(urls[1 + (i % 2)]!, 'web', `w${i}`), 'PUT', body(i));
        if (res.status !== 201) throw new Error(`write ${i} answered ${res.status}`);
        acked.push(res.body.revision as number);
      }
    })();
    await waitFor(() => seen.length >= 15, PATIENCE_MS, 'events through the first replica');
    await replicas.list[0]!.kill('SIGKILL');
    await writes;
    const last = Math.max(...acked);
    await waitFor(() => view.revision >= last, PATIENCE_MS, 'the view reaches the last write');
    t.ok(seen.length < 60 || strictlyIncreasing(seen), 'sanity');
    t.same(seen, ascending(acked), 'every acknowledged revision, once each, in order: nothing missed, nothing repeated');
    t.ok(strictlyIncreasing(seen));
    t.same(view.instances().map((i) => i.id).sort(), Array.from({ length: 60 }, (_, i) => `w${i}`).sort());
  });

  t.test('concurrent PATCHes of one instance through different replicas: no lost update, every write\'s event seen', async (t) => {
    const replicas = await startReplicas(t, cluster, 'patch-race');
    const urls = replicas.urls();
    const created = await api(inst(urls[0]!, 'web', 'x'), 'PUT', { address: '10.0.0.1', port: 80, ttlSeconds: 3600 });
    t.equal(created.status, 201);
    const client = createClient({ url: urls, retry: FAST });
    t.teardown(() => client.close());
    const view = client.watch({ service: 'web' });
    view.on('error', () => {});
    const events: (RegistryEvent | ServiceEvent)[] = [];
    view.on('event', (e) => events.push(e));
    await view.ready;

    // Each PATCH changes one field to a value no other write uses, so each one is a change with its own revision.
    type Write = { revision: number; field: 'weight' | 'zone' | 'tags'; patch: Record<string, unknown> };
    const fields = ['weight', 'zone', 'tags'] as const;
    const acked: Write[] = [];
    let refused = 0;
    await Promise.all(
      Array.from({ length: 30 }, async (_, k) => {
        const field = fields[k % 3]!;
        const patch = field === 'weight' ? { weight: k + 2 } : field === 'zone' ? { zone: `z${k}` } : { tags: [`t${k}`] };
        const res = await api(inst(urls[Math.floor(k / 3) % 3]!, 'web', 'x'), 'PATCH', patch);
        if (res.status === 200) acked.push({ revision: res.body.revision as number, field, patch });
        else refused++;
      }),
    );
    t.comment(`${acked.length} PATCHes acknowledged, ${refused} refused (store_unavailable after losing too many races)`);
    t.ok(acked.length >= 15, 'most writes get through');
    const last = Math.max(...acked.map((w) => w.revision));
    await waitFor(() => view.revision >= last, PATIENCE_MS, 'the view reaches the last PATCH');

    const modified = events.filter((e): e is RegistryEvent => 'instance' in e && e.instance.id === 'x');
    t.same(modified.map((e) => e.revision), ascending(acked.map((w) => w.revision)), 'one event per acknowledged PATCH, in order');
    // No lost update: each event differs from the one before in exactly the field its PATCH set.
    let before = created.body as Record<string, unknown>;
    for (const e of modified) {
      const write = acked.find((w) => w.revision === e.revision)!;
      const expected = { ...before, ...write.patch };
      for (const f of fields) t.same((e.instance as Record<string, unknown>)[f], expected[f], `revision ${e.revision}: ${f}`);
      before = e.instance as Record<string, unknown>;
    }
    const final = (await api(`${inst(urls[2]!, 'web', 'x')}`)).body as Record<string, unknown>;
    for (const f of fields) {
      const lastOfField = acked.filter((w) => w.field === f).sort((a, b) => b.revision - a.revision)[0];
      if (lastOfField) t.same(final[f], lastOfField.patch[f], `the final ${f} is the last acknowledged write of it`);
    }
  });

  t.test('a rolling restart of every replica while 500 instances heartbeat: none evicted, no watcher misses an event', async (t) => {
    const replicas = await startReplicas(t, cluster, 'rolling');
    const urls = replicas.urls();
    // TTL 10 s: long enough for a loaded machine, short enough that heartbeats must keep flowing through the restart.
    const owner = createClient({ url: urls, retry: FAST });
    t.teardown(() => owner.close());
    const setup = Date.now();
    const regs = await Promise.all(Array.from({ length: 500 }, (_, i) => owner.register({ service: 'hb', id: `h${i}`, ...body(i), ttlSeconds: 10 })));
    for (const r of regs) r.on('error', () => {});
    t.ok(regs.every((r) => r.registered), '500 registered');
    t.comment(`500 registered in ${Date.now() - setup} ms`);

    const watcher = createClient({ url: [...urls].reverse(), retry: FAST });
    t.teardown(() => watcher.close());
    const view = watcher.watch();
    view.on('error', () => {});
    const seen: (RegistryEvent | ServiceEvent)[] = [];
    view.on('event', (e) => seen.push(e));
    await view.ready;
    t.equal(view.instances({}).filter((i) => i.service === 'hb').length, 500);

    const writer = createClient({ url: urls, retry: FAST });
    t.teardown(() => writer.close());
    const acked: number[] = [];
    let writing = true;
    const writes = (async () => {
      for (let i = 0; writing; i++) {
        try {
          acked.push((await writer.putInstance('default', 'writes', `w${i}`, body(i))).instance.revision);
        } catch {
          // every replica was down at that moment: not acknowledged, not expected
        }
        // Paced (about 100 writes/s at most) so the load does not starve the restarting replicas of the 2 cores.
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })();
    for (const i of [0, 1, 2]) {
      const started = Date.now();
      await replicas.restart(i, 'SIGTERM');
      t.comment(`replica ${i} restarted in ${Date.now() - started} ms`);
    }
    writing = false;
    await writes;
    const last = Math.max(...acked);
    await waitFor(() => view.revision >= last, PATIENCE_MS, 'the watcher reaches the last write');

    const evicted = seen.filter((e) => e.type === 'DELETED');
    t.same(evicted, [], 'nothing was deleted or expired');
    const writeEvents = seen.filter((e) => 'instance' in e && e.instance.service === 'writes').map((e) => e.revision);
    t.same(writeEvents, ascending(acked), `every acknowledged write (${acked.length}) seen once, in order`);
    t.ok(strictlyIncreasing(seen.map((e) => e.revision)), 'no revision seen twice');
    for (const [i, url] of replicas.urls().entries()) {
      const ids = await idsOn(url, 'hb', last);
      t.equal(ids.size, 500, `replica ${i} still lists all 500 heartbeating instances`);
    }
  });

  t.test('the etcd leader killed under write load loses no acknowledged write; two stopped: 503 quickly, then recovery by itself', async (t) => {
    const replicas = await startReplicas(t, cluster, 'members', ['--etcd-timeout', '2s']);
    const urls = replicas.urls();
    const client = createClient({ url: urls, retry: FAST, timeoutMs: 10_000 });
    t.teardown(() => client.close());
    const acked: { id: string; revision: number }[] = [];
    let writing = true;
    let failed = 0;
    const writes = (async () => {
      for (let i = 0; writing; i++) {
        try {
          acked.push({ id: `m${i}`, revision: (await client.putInstance('default', 'load', `m${i}`, body(i))).instance.revision });
        } catch {
          failed++;
        }
      }
    })();
    await waitFor(() => acked.length >= 20, PATIENCE_MS, 'writes before the kill');
    const m0 = await leader(cluster);
    const m1 = cluster.members.find((m) => m !== m0)!;
    await m0.kill('SIGKILL');
    const atKill = acked.length;
    await waitFor(() => acked.length >= atKill + 30, PATIENCE_MS, 'writes continue with two members');
    writing = false;
    await writes;
    t.comment(`${acked.length} acknowledged, ${failed} failed around the member's death`);
    const latest = Math.max(...acked.map((a) => a.revision));
    for (const [i, url] of urls.entries()) {
      const ids = await idsOn(url, 'load', latest);
      t.same(acked.filter((a) => !ids.has(a.id)), [], `replica ${i} holds every acknowledged write`);
    }

    // A second member down: no quorum. Writes on every replica must answer (503) after --etcd-timeout, not hang.
    await m1.kill('SIGKILL');
    for (const [i, url] of urls.entries()) {
      const started = Date.now();
      const refused = await api(inst(url, 'load', `no-quorum-${i}`), 'PUT', body(i));
      t.comment(`replica ${i} without quorum: ${refused.status} after ${Date.now() - started} ms (--etcd-timeout 2s)`);
      t.equal(refused.status, 503, `replica ${i} refuses the write, does not acknowledge it`);
      t.equal((refused.body as { error?: string }).error, 'store_unavailable');
    }
    await waitFor(async () => (await Promise.all(urls.map(async (u) => (await api(`${u}/readyz`)).status))).every((s) => s === 503), PATIENCE_MS, 'every replica not ready');
    // (A refused write's fate is unknown to the client, as with any timeout: etcd may still commit it once it has a
    // quorum again. What the registry promises is that nothing it acknowledged is lost, not that a 503 was a no-op.)

    await restartMember(m0);
    // Nobody restarts the replicas: each one's writes work again once etcd has a quorum.
    for (const [i, url] of urls.entries()) {
      await waitFor(async () => (await api(inst(url, 'load', `after-${i}`), 'PUT', body(i))).status === 201, PATIENCE_MS, `replica ${i} writes again`);
      await waitFor(async () => (await api(`${url}/readyz`)).status === 200, PATIENCE_MS, `replica ${i} ready again`);
    }
    await restartMember(m1);
  });
}
