// The API's promises, as one suite run against every backend (contract-sqlite.test.ts, contract-etcd.test.ts):
// "works on SQLite" and "works on etcd" mean the same thing. Each test gets a fresh registry from the factory.
import { once } from 'node:events';
import type { Test } from 'tap';
import WebSocket from 'ws';
import { api, waitFor } from './helper.js';
import { changes, openWatch } from './watch-client.js';

export interface ContractServer {
  url: string;
}

/**
 * A fresh, empty registry (its own SQLite file, or its own etcd prefix), closed at t's teardown. historySize: the
 * revisions kept for resuming (the backend's own default when not given).
 */
export type ServerFactory = (t: Test, options?: { historySize?: number }) => Promise<ContractServer>;

const inst = (url: string, id: string, service = 'web', ns = 'default') => `${url}/v1/namespaces/${ns}/services/${service}/instances/${id}`;
const reg = (port: number, extra: Record<string, unknown> = {}) => ({ address: '127.0.0.1', port, ttlSeconds: 300, ...extra });

/** Reads Server-Sent Events from url until `count` change events arrived. */
async function readSse(url: string, count: number): Promise<{ event: string; data: any }[]> {
  const ac = new AbortController();
  const res = await fetch(url, { headers: { accept: 'text/event-stream' }, signal: ac.signal });
  const reader = res.body!.getReader();
  const out: { event: string; data: any }[] = [];
  let text = '';
  try {
    while (out.filter((m) => ['ADDED', 'MODIFIED', 'DELETED'].includes(m.event)).length < count) {
      const { value, done } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString();
      let end;
      while ((end = text.indexOf('\n\n')) >= 0) {
        const block = text.slice(0, end);
        text = text.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event && data) out.push({ event, data: JSON.parse(data) });
      }
    }
  } finally {
    ac.abort();
  }
  return out;
}

export function contractSuite(t: Test, start: ServerFactory) {
  t.test('register, identical PUT, replace, patch, get, list, deregister', async (t) => {
    const { url } = await start(t);
    const ready = await api(`${url}/readyz`);
    t.equal(ready.status, 200, 'ready as soon as it listens');
    t.equal(ready.body.protection.active, false);
    const created = await api(inst(url, 'a'), 'PUT', reg(8080, { tags: ['x'], zone: 'z1' }));
    t.equal(created.status, 201, 'a new registration is created');
    const rev = created.body.revision;
    t.ok(rev > 0);
    t.equal(created.body.createRevision, rev);

    const same = await api(inst(url, 'a'), 'PUT', reg(8080, { tags: ['x'], zone: 'z1' }));
    t.equal(same.status, 200, 'an identical PUT answers 200');
    t.equal(same.body.revision, rev, 'an identical PUT only renews: no new revision');

    const replaced = await api(inst(url, 'a'), 'PUT', reg(8081, { tags: ['x'], zone: 'z1' }));
    t.equal(replaced.status, 200);
    t.ok(replaced.body.revision > rev, 'a replacement raises the revision');
    t.equal(replaced.body.createRevision, rev, 'a replacement keeps its identity');

    const patched = await api(inst(url, 'a'), 'PATCH', { status: 'draining' });
    t.equal(patched.status, 200);
    t.equal(patched.body.status, 'draining');
    t.equal(patched.body.port, 8081, 'PATCH keeps what it does not name');
    t.ok(patched.body.revision > replaced.body.revision);

    t.equal((await api(inst(url, 'b'), 'PUT', reg(9000, { zone: 'z2' }))).status, 201);
    t.equal((await api(inst(url, 'c', 'db'), 'PUT', reg(5432))).status, 201);

    const got = await api(inst(url, 'a'));
    t.equal(got.status, 200);
    t.equal(got.body.status, 'draining');

    const list = await api(`${url}/v1/namespaces/default/services/web/instances`);
    t.same(list.body.items.map((i: any) => i.id), ['a', 'b']);
    t.ok(list.body.revision >= patched.body.revision, 'the list is at least as new as the last write');
    const byStatus = await api(`${url}/v1/namespaces/default/services/web/instances?status=up`);
    t.same(byStatus.body.items.map((i: any) => i.id), ['b'], 'status filter');
    const byZone = await api(`${url}/v1/namespaces/default/services/web/instances?zone=z1`);
    t.same(byZone.body.items.map((i: any) => i.id), ['a'], 'zone filter');
    const byTag = await api(`${url}/v1/namespaces/default/services/web/instances?tag=x`);
    t.same(byTag.body.items.map((i: any) => i.id), ['a'], 'tag filter');

    const services = await api(`${url}/v1/namespaces/default/services`);
    t.same(
      services.body.items.map((s: any) => [s.name, s.instances, s.up]),
      [
        ['db', 1, 1],
        ['web', 2, 1],
      ],
      'services summary counts instances and up',
    );

    t.equal((await api(inst(url, 'a'), 'DELETE')).status, 204);
    t.equal((await api(inst(url, 'a'))).status, 404, 'gone after deregistration');
    t.equal((await api(inst(url, 'a'), 'DELETE')).body.error, 'instance_not_found');
    t.equal((await api(inst(url, 'zz'), 'PATCH', { status: 'up' })).status, 404);
  });

  t.test('bad input is a 4xx with a code', async (t) => {
    const { url } = await start(t);
    const bad = await api(inst(url, 'a'), 'PUT', { address: '127.0.0.1', port: 0 });
    t.equal(bad.status, 400);
    t.equal(bad.body.error, 'validation_failed');
    t.equal((await api(inst(url, 'a'), 'PUT', '{not json')).status, 400);
    t.equal((await api(`${url}/v1/namespaces/Bad_NS/services/web/instances`)).status, 400);
    t.equal((await api(`${url}/v1/namespaces/default/services/web/instances?minRevision=abc`)).status, 400, 'minRevision must be a number');
  });

  t.test('heartbeat renews; unknown is 404', async (t) => {
    const { url } = await start(t);
    const created = await api(inst(url, 'a'), 'PUT', reg(8080));
    const beat = await api(`${inst(url, 'a')}/heartbeat`, 'PUT');
    t.equal(beat.status, 200);
    t.equal(beat.body.revision, created.body.revision, 'a heartbeat raises no revision');
    t.ok(Date.parse(beat.body.expiresAt) >= Date.parse(created.body.expiresAt), 'the lease runs from the heartbeat');
    const unknown = await api(`${inst(url, 'nope')}/heartbeat`, 'PUT');
    t.equal(unknown.status, 404);
    t.equal(unknown.body.error, 'instance_not_found');
  });

  t.test('the lease stream and the batch renewal renew without a revision; unknown says register again', async (t) => {
    const { url } = await start(t);
    const created = await api(inst(url, 'a'), 'PUT', reg(8080));
    const batch = await api(`${url}/v1/leases/renew`, 'POST', { instances: ['default/web/a', 'default/web/nope'] });
    t.equal(batch.status, 200);
    t.match(batch.body.results, [
      { instance: 'default/web/a', ttlSeconds: 300 },
      { instance: 'default/web/nope', error: 'instance_not_found', status: 404 },
    ]);
    t.ok(Date.parse(batch.body.results[0].expiresAt) >= Date.parse(created.body.expiresAt), 'the lease runs from the renewal');

    const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/leases`);
    t.teardown(() => socket.terminate());
    const answers: any[] = [];
    socket.on('message', (data) => answers.push(JSON.parse(data.toString())));
    await once(socket, 'open');
    socket.send(JSON.stringify({ type: 'RENEW', seq: 1, instances: ['default/web/a', 'default/web/nope'] }));
    const answer = await waitFor(() => answers.find((m) => m.seq === 1), undefined, 'RENEWED 1');
    t.match(answer, {
      type: 'RENEWED',
      results: [
        { instance: 'default/web/a', ttlSeconds: 300 },
        { instance: 'default/web/nope', error: 'instance_not_found' },
      ],
    });
    t.equal((await api(inst(url, 'a'))).body.revision, created.body.revision, 'renewals raise no revision');
  });

  t.test('Services get distinct virtual IPs; a taken one is refused', async (t) => {
    const { url } = await start(t);
    const svc = (name: string) => `${url}/v1/namespaces/default/services/${name}`;
    const a = await api(svc('alpha'), 'PUT', { ports: [{ port: 80 }] });
    t.equal(a.status, 201);
    const b = await api(svc('beta'), 'PUT', { ports: [{ port: 80 }] });
    t.equal(b.status, 201);
    t.not(a.body.virtualIP, b.body.virtualIP, 'two Services, two addresses');
    const again = await api(svc('alpha'), 'PUT', { ports: [{ port: 80 }] });
    t.equal(again.status, 200);
    t.equal(again.body.revision, a.body.revision, 'an identical Service PUT changes nothing');
    const taken = await api(svc('gamma'), 'PUT', { ports: [{ port: 80 }], virtualIP: a.body.virtualIP });
    t.equal(taken.status, 409);
    t.equal(taken.body.error, 'virtual_ip_taken');
    const summary = await api(`${url}/v1/namespaces/default/services`);
    t.equal(summary.body.items.find((s: any) => s.name === 'alpha').virtualIP, a.body.virtualIP, 'the summary shows the address');
    t.equal((await api(svc('alpha'), 'DELETE')).status, 204);
    t.equal((await api(svc('alpha'))).status, 404);
  });

  t.test('WebSocket watch: snapshot, then every change once, in order', async (t) => {
    const { url } = await start(t);
    await api(inst(url, 'a'), 'PUT', reg(8080));
    const watch = await openWatch(url, { namespace: 'default' });
    t.teardown(() => watch.socket.close());
    await waitFor(() => watch.messages.length >= 1, undefined, 'snapshot');
    const snapshot = watch.messages[0];
    t.equal(snapshot.type, 'SNAPSHOT');
    t.same(snapshot.items.map((i: any) => i.id), ['a']);
    await api(inst(url, 'b'), 'PUT', reg(8081));
    await api(inst(url, 'a'), 'PATCH', { weight: 5 });
    await api(inst(url, 'b'), 'DELETE');
    await waitFor(() => changes(watch.messages).length >= 3, undefined, 'three changes');
    const seen = changes(watch.messages);
    t.same(
      seen.map((e: any) => [e.type, e.reason, e.instance.id]),
      [
        ['ADDED', 'registered', 'b'],
        ['MODIFIED', 'updated', 'a'],
        ['DELETED', 'deregistered', 'b'],
      ],
    );
    const revisions = seen.map((e: any) => e.revision);
    t.ok(revisions[0] > snapshot.revision && revisions[0] < revisions[1] && revisions[1] < revisions[2], 'revisions increase after the snapshot');
  });

  t.test('a watch of Services and instances sees both kinds, in order', async (t) => {
    const { url } = await start(t);
    const watch = await openWatch(url, { namespace: 'default', resources: 'instances,services' });
    t.teardown(() => watch.socket.close());
    await waitFor(() => watch.messages.length >= 1, undefined, 'snapshot');
    t.same(watch.messages[0].services, [], 'the snapshot has Services when asked');
    const svc = await api(`${url}/v1/namespaces/default/services/web`, 'PUT', { ports: [{ port: 80 }] });
    await api(inst(url, 'a'), 'PUT', reg(8080));
    await api(`${url}/v1/namespaces/default/services/web`, 'DELETE');
    await waitFor(() => changes(watch.messages).length >= 3, undefined, 'three changes');
    t.same(
      changes(watch.messages).map((e: any) => [e.type, e.reason, e.service?.virtualIP ?? e.instance.id]),
      [
        ['ADDED', 'created', svc.body.virtualIP],
        ['ADDED', 'registered', 'a'],
        ['DELETED', 'deleted', svc.body.virtualIP],
      ],
    );
  });

  t.test('SSE watch and resume from sinceRevision', async (t) => {
    const { url } = await start(t);
    const first = await api(inst(url, 'a'), 'PUT', reg(8080));
    await api(inst(url, 'b'), 'PUT', reg(8081));
    await api(inst(url, 'a'), 'DELETE');
    const events = await readSse(`${url}/v1/watch?namespace=default&sinceRevision=${first.body.revision}`, 2);
    t.same(
      events.filter((e) => e.event !== 'BOOKMARK').map((e) => [e.event, e.data.reason, e.data.instance.id]),
      [
        ['ADDED', 'registered', 'b'],
        ['DELETED', 'deregistered', 'a'],
      ],
      'resumed after sinceRevision: exactly the later changes',
    );
    const ws = await openWatch(url, { namespace: 'default', sinceRevision: first.body.revision });
    t.teardown(() => ws.socket.close());
    await waitFor(() => changes(ws.messages).length >= 2, undefined, 'resumed over WebSocket');
    t.same(changes(ws.messages).map((e: any) => e.instance.id), ['b', 'a']);
  });

  t.test('long-poll: index waits for a change after it', async (t) => {
    const { url } = await start(t);
    const first = await api(inst(url, 'a'), 'PUT', reg(8080));
    const list = `${url}/v1/namespaces/default/services/web/instances`;
    const waiting = api(`${list}?index=${first.body.revision}&wait=60s`);
    await api(inst(url, 'b'), 'PUT', reg(8081));
    const answer = await waiting;
    t.equal(answer.status, 200);
    t.same(answer.body.items.map((i: any) => i.id), ['a', 'b'], 'answered with the change');
    const reached = await api(`${list}?minRevision=${answer.body.revision}`);
    t.equal(reached.status, 200, 'minRevision already reached answers at once');
  });

  t.test('expiry is DELETED/expired, deregistration DELETED/deregistered', async (t) => {
    const { url } = await start(t);
    const watch = await openWatch(url, { namespace: 'default' });
    t.teardown(() => watch.socket.close());
    await waitFor(() => watch.messages.length >= 1, undefined, 'snapshot');
    // Short TTL: expiry is the point. etcd raises it to its minimum; the answer says the TTL in force.
    const short = await api(inst(url, 'short'), 'PUT', reg(8080, { ttlSeconds: 1 }));
    t.equal(short.status, 201);
    t.ok(short.body.ttlSeconds >= 1);
    await api(inst(url, 'gone'), 'PUT', reg(8081));
    await api(inst(url, 'gone'), 'DELETE');
    await waitFor(() => changes(watch.messages).some((e: any) => e.type === 'DELETED' && e.instance.id === 'short'), undefined, 'expiry');
    const deletes = changes(watch.messages).filter((e: any) => e.type === 'DELETED');
    t.same(
      deletes.map((e: any) => [e.instance.id, e.reason]),
      [
        ['gone', 'deregistered'],
        ['short', 'expired'],
      ],
    );
    t.equal((await api(inst(url, 'short'))).status, 404);
  });

  t.test('a resume older than the kept history is revision_compacted', async (t) => {
    const { url } = await start(t, { historySize: 100 });
    const first = await api(inst(url, 'a'), 'PUT', reg(8080));
    for (let i = 0; i < 120; i++) t.equal((await api(inst(url, 'a'), 'PATCH', { weight: i + 2 })).status, 200);
    await waitFor(async () => (await api(`${url}/readyz`)).body.compactedRevision > first.body.revision, undefined, 'history compacted');
    const watch = await openWatch(url, { namespace: 'default', sinceRevision: first.body.revision });
    t.teardown(() => watch.socket.close());
    await waitFor(() => watch.messages.some((m: any) => m.type === 'ERROR'), undefined, 'an error');
    t.equal(watch.messages.find((m: any) => m.type === 'ERROR').code, 'revision_compacted');
    t.same(changes(watch.messages), [], 'no partial replay');
  });
}
