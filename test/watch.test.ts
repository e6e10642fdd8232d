// Watch streams over WebSocket: snapshot, live, resume, compaction, bookmarks, backpressure, bad input.
import t from 'tap';
import WebSocket from 'ws';
import { createManualClock } from '../src/registry/clock.js';
import { api, startServer, PATIENCE_MS, waitFor } from './helper.js';
import { changes, openWatch } from './watch-client.js';

const inst = (url: string, ns: string, svc: string, id: string) => `${url}/v1/namespaces/${ns}/services/${svc}/instances/${id}`;
const body = (port = 80, extra: object = {}) => ({ address: '10.0.0.1', port, ttlSeconds: 3600, ...extra });

t.test('snapshot first, then every change to the filter exactly once, in revision order', async (t) => {
  const { url } = await startServer(t);
  await api(inst(url, 'default', 'web', 'a'), 'PUT', body());
  await api(inst(url, 'default', 'web', 'b'), 'PUT', body());
  await api(inst(url, 'default', 'api', 'x'), 'PUT', body());
  const w = await openWatch(url, { namespace: 'default', service: 'web' });
  await w.until((m) => m.length >= 1);
  t.match(w.messages[0], { type: 'SNAPSHOT', revision: 3 });
  t.same(w.messages[0].items.map((i: any) => i.id), ['a', 'b']);

  await api(inst(url, 'default', 'web', 'c'), 'PUT', body());
  await api(inst(url, 'default', 'api', 'y'), 'PUT', body()); // another service: not delivered
  await api(inst(url, 'default', 'web', 'a'), 'PATCH', { status: 'draining' });
  await api(inst(url, 'default', 'web', 'b'), 'DELETE');
  const got = changes(await w.until((m) => changes(m).length >= 3));
  t.same(
    got.map((e) => [e.type, e.revision, e.reason, e.instance.id]),
    [
      ['ADDED', 4, 'registered', 'c'],
      ['MODIFIED', 6, 'updated', 'a'],
      ['DELETED', 7, 'deregistered', 'b'],
    ],
  );
  t.equal(got[2].instance.status, 'up', 'DELETED carries the last state');
  await api(inst(url, 'default', 'web', 'c'), 'PUT', body(81));
  await w.until((m) => changes(m).length >= 4);
  t.equal(changes(w.messages).length, 4, 'no duplicates');
  w.close();
});

t.test('namespace-wide and registry-wide watches', async (t) => {
  const { url } = await startServer(t);
  const ns = await openWatch(url, { namespace: 'team-a' });
  const all = await openWatch(url);
  await api(inst(url, 'team-a', 'web', 'a'), 'PUT', body());
  await api(inst(url, 'team-b', 'web', 'a'), 'PUT', body());
  await api(inst(url, 'team-a', 'api', 'a'), 'PUT', body());
  const nsEvents = changes(await ns.until((m) => changes(m).length >= 2));
  t.same(nsEvents.map((e) => e.revision), [1, 3]);
  const allEvents = changes(await all.until((m) => changes(m).length >= 3));
  t.same(allEvents.map((e) => e.revision), [1, 2, 3]);
  ns.close();
  all.close();
});

t.test('resume with sinceRevision: exactly the missed events, then live; across reconnects', async (t) => {
  const { url } = await startServer(t);
  const first = await openWatch(url, { namespace: 'default', service: 'web' });
  await first.until((m) => m.length >= 1);
  for (let i = 0; i < 5; i++) await api(inst(url, 'default', 'web', `i${i}`), 'PUT', body());
  await first.until((m) => changes(m).length >= 5);
  const last = changes(first.messages).at(-1).revision;
  first.close();
  // Changes while disconnected, some in another service.
  for (let i = 5; i < 10; i++) {
    await api(inst(url, 'default', 'web', `i${i}`), 'PUT', body());
    await api(inst(url, 'default', 'other', `i${i}`), 'PUT', body());
  }
  const second = await openWatch(url, { namespace: 'default', service: 'web', sinceRevision: last });
  await api(inst(url, 'default', 'web', 'live'), 'PUT', body());
  const resumed = changes(await second.until((m) => changes(m).length >= 6));
  t.notOk(second.messages.some((m) => m.type === 'SNAPSHOT'), 'no snapshot on resume');
  t.same(resumed.map((e) => e.instance.id), ['i5', 'i6', 'i7', 'i8', 'i9', 'live']);
  const revisions = resumed.map((e) => e.revision);
  t.same(revisions, [...revisions].sort((a, b) => a - b), 'in revision order');
  t.ok(revisions[0] > last);
  second.close();
});

t.test('resume from an old revision while the registry writes: nothing lost between log replay and live', async (t) => {
  const { url } = await startServer(t);
  for (let i = 0; i < 700; i++) await api(inst(url, 'default', 'web', `i${i % 50}`), 'PUT', body(1000 + i));
  const w = await openWatch(url, { sinceRevision: 0 });
  const writes = (async () => {
    for (let i = 0; i < 100; i++) await api(inst(url, 'default', 'web', `live${i}`), 'PUT', body());
  })();
  await writes;
  const got = changes(await w.until((m) => changes(m).length >= 800));
  t.same(got.map((e) => e.revision), Array.from({ length: 800 }, (_, i) => i + 1), 'every revision once, in order');
  w.close();
});

t.test('revision_compacted and revision_ahead: an ERROR message, then close', async (t) => {
  const { url } = await startServer(t, { config: { historySize: 100 } });
  for (let i = 0; i < 150; i++) await api(inst(url, 'default', 'web', 'a'), 'PUT', body(1000 + i));
  const old = await openWatch(url, { sinceRevision: 10 });
  await old.waitClosed();
  t.match(old.messages, [{ type: 'ERROR', code: 'revision_compacted' }]);
  const ahead = await openWatch(url, { sinceRevision: 999 });
  await ahead.waitClosed();
  t.match(ahead.messages, [{ type: 'ERROR', code: 'revision_ahead' }]);
  t.match(ahead.messages[0].message, /list again/i);
  const edge = await openWatch(url, { sinceRevision: 50 });
  await api(inst(url, 'default', 'web', 'a'), 'PUT', body(1));
  const got = changes(await edge.until((m) => changes(m).length >= 101));
  t.equal(got[0].revision, 51, 'the oldest retained revision still resumes');
  edge.close();
});

t.test('bad query parameters get an HTTP 400 JSON error before the upgrade', async (t) => {
  const { url } = await startServer(t);
  const bad = [
    { service: 'web' },
    { namespace: 'Bad_NS' },
    { sinceRevision: 'abc' },
    { sinceRevision: -1 },
    { bookmarkSeconds: 0 },
    { bookmarkSeconds: 301 },
    { colour: 'red' },
  ];
  for (const query of bad) {
    const qs = new URLSearchParams(Object.entries(query).map(([k, v]) => [k, String(v)])).toString();
    const result = await new Promise<{ status: number; body: any }>((resolve, reject) => {
      const ws = new WebSocket(`${url.replace('http', 'ws')}/v1/watch?${qs}`);
      ws.on('open', () => reject(new Error(`upgraded despite ${qs}`)));
      ws.on('error', () => {});
      ws.on('unexpected-response', (_req, res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      });
    });
    t.equal(result.status, 400, qs);
    t.equal(result.body.error, 'validation_failed', qs);
  }
  const plain = await api(`${url}/v1/watch`);
  t.equal(plain.status, 426);
  t.equal(plain.body.error, 'upgrade_required');
});

t.test('an idle watcher gets BOOKMARKs with the current revision', async (t) => {
  const { url } = await startServer(t);
  await api(inst(url, 'default', 'web', 'a'), 'PUT', body());
  await api(inst(url, 'default', 'other', 'a'), 'PUT', body());
  const w = await openWatch(url, { namespace: 'default', service: 'web', bookmarkSeconds: 1 });
  const got = await w.until((m) => m.some((x) => x.type === 'BOOKMARK'));
  t.match(got.find((x) => x.type === 'BOOKMARK'), { type: 'BOOKMARK', revision: 2 });
  w.close();
});

t.test('a watcher that stops reading is closed as a slow consumer; memory stays bounded', async (t) => {
  const server = await startServer(t, { config: { watchBufferBytes: 65536 } });
  const { url } = server;
  const w = await openWatch(url, { namespace: 'default' });
  await w.until((m) => m.length >= 1);
  w.socket.pause(); // never reads again
  const metadata = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`k${i}`, 'x'.repeat(1000)]));
  let closedAt = -1;
  for (let i = 0; i < 400 && closedAt < 0; i++) {
    await api(inst(url, 'default', 'web', `i${i}`), 'PUT', body(80, { metadata }));
    const metrics = await (await fetch(`${url}/metrics`)).text();
    if (/rollcall_watch_slow_consumer_closes_total 1/.test(metrics)) closedAt = i;
  }
  t.ok(closedAt >= 0, `closed after ${closedAt + 1} writes of ~60 KB events`);
  w.socket.resume();
  const closed = await w.waitClosed();
  t.equal(closed.code, 4008);
  t.match(closed.reason, /^slow_consumer/);
  await waitFor(async () => /rollcall_watchers\{kind="websocket"\} 0/.test(await (await fetch(`${url}/metrics`)).text()), PATIENCE_MS, 'watcher gauge 0');
});

t.test('a peer that stops answering pings is disconnected with a close code and reason, not a bare cut (1006)', async (t) => {
  // The healthy peer must answer each ping within one interval, on a loaded machine: 2 s, not 100 ms.
  const { url } = await startServer(t, { config: { watchPingMs: 2000 } });
  const healthy = await openWatch(url);
  const dead = new WebSocket(`${url.replace('http', 'ws')}/v1/watch`, { autoPong: false });
  let closed: { code: number; reason: string } | undefined;
  dead.on('close', (code, reason) => (closed = { code, reason: reason.toString() }));
  await new Promise((resolve) => dead.once('open', resolve));
  const got = await waitFor(() => closed, PATIENCE_MS, 'the dead peer to be cut');
  t.equal(got.code, 4009);
  t.match(got.reason, /^ping_timeout/);
  t.equal(healthy.closed, undefined, 'a peer that answers pings stays');

  // A watcher that reads nothing at all (its socket paused): once it reads again, the close frame is there.
  const stalled = new WebSocket(`${url.replace('http', 'ws')}/v1/watch`);
  let stalledClose: { code: number; reason: string } | undefined;
  stalled.on('close', (code, reason) => (stalledClose = { code, reason: reason.toString() }));
  await new Promise((resolve) => stalled.once('open', resolve));
  const raw = (stalled as unknown as { _socket: import('node:net').Socket })._socket;
  raw.pause();
  await waitFor(async () => /rollcall_watchers\{kind="websocket"\} 1\b/.test(await (await fetch(`${url}/metrics`)).text()), PATIENCE_MS, 'the server to cut it');
  raw.resume();
  const cut = await waitFor(() => stalledClose, PATIENCE_MS, 'the close to reach the client');
  t.not(cut.code, 1006, 'a close frame, not a bare cut');
  t.match(cut.reason, /^(ping_timeout|slow_consumer)/);
  healthy.close();
});

t.test('on a running server the lease sweep expires an unrenewed instance at its deadline, and watchers see it', async (t) => {
  // The registry's clock moves by hand; the sweep runs on its real timer. How soon after a deadline it runs is a
  // speed, measured in bench/, not asserted here; that it expires what is due and nothing else is asserted here.
  const clock = createManualClock(Date.now());
  const { url } = await startServer(t, { clock });
  const w = await openWatch(url, { namespace: 'default', service: 'web' });
  await api(inst(url, 'default', 'web', 'short'), 'PUT', body(80, { ttlSeconds: 1 }));
  await api(inst(url, 'default', 'web', 'long'), 'PUT', body(81, { ttlSeconds: 2 }));
  clock.advance(1000);
  await w.until((m) => changes(m).some((e) => e.type === 'DELETED'));
  t.same(
    changes(w.messages).filter((e) => e.type === 'DELETED').map((e) => [e.instance.id, e.reason]),
    [['short', 'expired']],
    'the sweep that expired "short" (deadline reached) left "long" (1 s to go)',
  );
  t.equal((await api(inst(url, 'default', 'web', 'long'))).status, 200);
  clock.advance(1000);
  await w.until((m) => changes(m).filter((e) => e.type === 'DELETED').length === 2);
  t.match(changes(w.messages).at(-1), { type: 'DELETED', reason: 'expired', instance: { id: 'long' } });
  t.equal((await api(inst(url, 'default', 'web', 'short'))).status, 404);
  w.close();
});
