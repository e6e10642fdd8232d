// Self-preservation that ends by itself: exact with an injected clock, and the PROTECTION watch message from a
// real server over WebSocket and Server-Sent Events.
import t from 'tap';
import { createManualClock } from '../src/registry/clock.js';
import { buildTestApp, startServer, waitFor, api } from './helper.js';
import { openWatch } from './watch-client.js';

type App = Awaited<ReturnType<typeof buildTestApp>>['app'];
const ids = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => `i${from + i}`);
const register = (app: App, list: string[], ttlSeconds = 10) =>
  Promise.all(list.map((id) => app.registry.register('default', 'web', id, { address: '10.0.0.1', port: 80, ttlSeconds })));
const beat = (app: App, list: string[]) => Promise.all(list.map((id) => app.registry.heartbeat('default', 'web', id)));
const listed = (app: App) => app.registry.list({ namespace: 'default' }).items;

/** 100 ttl-10 instances; at 5 s the first 60 heartbeat, so at 10 s the other 40 lapse at once. */
async function fortyLapse(app: App, clock: ReturnType<typeof createManualClock>) {
  await register(app, ids(0, 100));
  clock.advance(5000);
  await beat(app, ids(0, 60));
  clock.advance(5000);
  const expired = app.registry.expireDue();
  await app.registry.settled();
  return expired;
}

t.test('40 of 100 stop heartbeating at once: protection, nobody evicted, the lapsed are flagged', async (t) => {
  const clock = createManualClock();
  const { app } = await buildTestApp(t, { clock });
  t.equal(await fortyLapse(app, clock), 0, 'nobody is evicted');
  const before = 100; // the registrations
  await app.registry.settled();
  t.same(app.registry.protection(), { active: true, since: new Date(clock.now()).toISOString(), lapsed: 40 });

  const items = listed(app);
  t.equal(items.length, 100, 'all 100 are still listed');
  const flagged = items.filter((i) => i.lapsed === true);
  t.same(flagged.map((i) => i.id).sort(), ids(60, 100).sort(), 'the 40 silent ones are flagged lapsed');
  t.ok(flagged.every((i) => i.lapsedAt === new Date(clock.now()).toISOString()), 'with the time they lapsed');
  t.ok(items.filter((i) => !ids(60, 100).includes(i.id)).every((i) => !('lapsed' in i)), 'the others look as before');

  const events = (await app.registry.eventsAfter({}, before, app.registry.revision, 1000));
  t.equal(events.length, 40, 'flagging is a change: one MODIFIED per lapsed instance');
  t.ok(events.every((e) => e.type === 'MODIFIED' && e.reason === 'lapsed' && e.instance.lapsed === true));

  const ready = (await app.inject({ url: '/readyz' })).json();
  t.equal(ready.status, 'ready', 'protection does not make the registry unready');
  t.same(ready.protection, { active: true, since: new Date(clock.now()).toISOString(), lapsed: 40 });
  t.match((await app.inject({ url: '/metrics' })).body, /\nrollcall_protection_active 1\n[^]*\nrollcall_lapsed_instances 40\n/);

  // Protected for a while: the 60 keep heartbeating, the 40 stay.
  for (let i = 0; i < 10; i++) {
    clock.advance(5000);
    await beat(app, ids(0, 60));
    t.equal(app.registry.expireDue(), 0);
  }
  t.equal(listed(app).length, 100);

  // Deregistrations take effect at once, protected or not.
  await app.registry.deregister('default', 'web', 'i99');
  t.equal(listed(app).length, 99);
  t.equal(app.registry.protection().lapsed, 39);
});

t.test('the 40 resume: they are back to normal, protection ends, nobody was evicted', async (t) => {
  const clock = createManualClock();
  const { app } = await buildTestApp(t, { clock });
  await fortyLapse(app, clock);
  clock.advance(20_000);
  await beat(app, ids(0, 60));
  const before = app.registry.revision;
  const renewed = await beat(app, ids(60, 100));
  t.ok(renewed.every((i) => !('lapsed' in i) && i.expiresAt === new Date(clock.now() + 10_000).toISOString()), 'renewed, unflagged');
  await app.registry.settled();
  const events = (await app.registry.eventsAfter({}, before, app.registry.revision, 1000));
  t.same([events.length, new Set(events.map((e) => `${e.type}/${e.reason}`))], [40, new Set(['MODIFIED/recovered'])]);
  t.equal(app.registry.expireDue(), 0);
  t.equal(app.registry.protection().active, false, 'protection ended as renewals recovered');
  t.equal(listed(app).length, 100, 'nobody was evicted');
  t.ok(listed(app).every((i) => !('lapsed' in i)));
  t.equal((await app.registry.eventsAfter({}, 0, app.registry.revision, 1000)).filter((e) => e.type === 'DELETED').length, 0);

  // And the leases of the 40 run normally again: silent for a TTL, a few of them expire without protection.
  clock.advance(5000);
  await beat(app, ids(0, 98));
  clock.advance(5000);
  t.equal(app.registry.expireDue(), 2, 'two silent instances simply expire');
  t.equal(app.registry.protection().active, false);
});

t.test('the 40 never resume: they expire after the maximum, a bounded few per sweep', async (t) => {
  const clock = createManualClock();
  const { app } = await buildTestApp(t, { clock, config: { protectMax: '2m' } });
  await fortyLapse(app, clock);
  const since = clock.now();
  while (clock.now() + 5000 < since + 120_000) {
    clock.advance(5000);
    await beat(app, ids(0, 60));
    t.equal(app.registry.expireDue(), 0, 'kept while protected');
  }
  clock.set(since + 120_000 - 1);
  await beat(app, ids(0, 60));
  t.equal(app.registry.expireDue(), 0, '1 ms before the maximum: still protected');
  t.equal(app.registry.protection().active, true);
  clock.advance(1);
  const sweeps: number[] = [];
  for (let n = app.registry.expireDue(); n > 0; n = app.registry.expireDue()) sweeps.push(n);
  t.equal(app.registry.protection().active, false, 'protection ended at the maximum');
  t.same(sweeps, [4, 4, 4, 4, 4, 4, 4, 4, 4, 4], 'the 40 expire gradually: a tenth per sweep, never all at once');
  await app.registry.settled();
  const items = listed(app);
  t.equal(items.length, 60);
  t.ok(items.every((i) => !('lapsed' in i)));
  const expired = (await app.registry.eventsAfter({}, 0, app.registry.revision, 1000)).filter((e) => e.type === 'DELETED');
  t.ok(expired.length === 40 && expired.every((e) => e.reason === 'expired'), 'each one DELETED, reason expired');

  // Protection can begin again for a later mass lapse (it did not get stuck off either).
  clock.advance(5000);
  await beat(app, ids(0, 30));
  clock.advance(5000);
  t.equal(app.registry.expireDue(), 0);
  t.equal(app.registry.protection().active, true, '30 of 60 lapsing starts protection again');
});

t.test('normal expiry of a few never triggers protection', async (t) => {
  const clock = createManualClock();
  const { app } = await buildTestApp(t, { clock });
  await register(app, ids(0, 100));
  // Every 10 s, 5 more stop: 14 in the 60 s window at the end, just under 15 %.
  let silent = 0;
  for (let round = 0; round < 3; round++) {
    clock.advance(5000);
    silent += round === 2 ? 4 : 5;
    await beat(app, ids(silent, 100));
    clock.advance(5000);
    t.equal(app.registry.expireDue(), round === 2 ? 4 : 5, `round ${round}: the silent ones expire`);
    await beat(app, ids(silent, 100));
    t.equal(app.registry.protection().active, false);
  }
  t.equal(listed(app).length, 86);
  t.equal((await app.inject({ url: '/readyz' })).json().protection.active, false);
  t.match((await app.inject({ url: '/metrics' })).body, /\nrollcall_protection_active 0\n/);
});

t.test('every watcher hears PROTECTION on and off (WebSocket and SSE), in order with the changes', async (t) => {
  const server = await startServer(t, { config: { protectMax: '1500ms', protectWindow: '10s' } });
  const inst = (id: string) => `${server.url}/v1/namespaces/default/services/web/instances/${id}`;
  for (let i = 0; i < 10; i++) await api(inst(`i${i}`), 'PUT', { address: '10.0.0.1', port: 80, ttlSeconds: 1 });
  const ws = await openWatch(server.url, { namespace: 'other' }); // a filter matching none of them
  const sse: any[] = [];
  const controller = new AbortController();
  t.teardown(() => controller.abort());
  const res = await fetch(`${server.url}/v1/watch?namespace=default&service=web`, { headers: { accept: 'text/event-stream' }, signal: controller.signal });
  void (async () => {
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of res.body!) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true });
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const fields = Object.fromEntries(frame.split('\n').map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 2)]));
          sse.push({ event: fields.event, id: fields.id, data: JSON.parse(fields.data ?? 'null') });
        }
      }
    } catch {
      // aborted at teardown
    }
  })();

  // Nobody heartbeats: all 10 lapse at once, protection keeps them for 1.5 s, then they drain.
  const onOff = (messages: any[]) => messages.filter((m) => m.type === 'PROTECTION');
  await ws.until((m) => onOff(m).length >= 2, 15_000);
  await waitFor(() => sse.filter((e) => e.data?.type === 'PROTECTION').length >= 2, 15_000, 'PROTECTION over SSE');
  const [on, off] = onOff(ws.messages);
  t.same(on, { type: 'PROTECTION', active: true, revision: on.revision }, 'exactly the documented shape');
  t.same(off, { type: 'PROTECTION', active: false, revision: off.revision });
  t.ok(on.revision > 10, 'the watcher of another namespace hears it too');

  // Over SSE, in order with the changes: its revision is that of the last change before it, which was a lapse.
  const onAt = sse.findIndex((e) => e.event === 'PROTECTION' && e.data.active === true);
  const offAt = sse.findIndex((e) => e.event === 'PROTECTION' && e.data.active === false);
  t.ok(onAt > 0 && offAt > onAt, 'on, then off');
  t.same(sse[onAt].data, on, 'both transports carry the same message');
  t.same(sse[offAt].data, off);
  t.equal(sse[onAt].id, undefined, 'no SSE id: resuming is by change revision only');
  const lastBefore = sse.slice(0, onAt).reverse().find((e) => e.event !== 'SNAPSHOT');
  t.same([lastBefore.event, lastBefore.data.reason, Number(lastBefore.id)], ['MODIFIED', 'lapsed', on.revision]);
  t.ok(
    sse.slice(onAt + 1, offAt).every((e) => e.event === 'MODIFIED' && e.data.reason === 'lapsed'),
    'while protected nothing expires',
  );
  await waitFor(async () => (await api(`${server.url}/v1/namespaces/default/services/web/instances`)).body.items.length === 0, 15_000, 'drain');
  ws.close();
});

t.test('generators keep routing to lapsed instances (the ones alive behind a partition keep their traffic)', async (t) => {
  const clock = createManualClock();
  const { app } = await buildTestApp(t, { clock });
  await Promise.all(Array.from({ length: 10 }, (_, i) => app.registry.register('default', 'web', `i${i}`, { address: '10.0.0.1', port: 1000 + i, ttlSeconds: 10 })));
  clock.advance(5000);
  await beat(app, ids(0, 6));
  clock.advance(5000);
  t.equal(app.registry.expireDue(), 0);
  await app.registry.settled();
  t.equal(app.registry.protection().lapsed, 4);
  const nginx = (await app.inject({ url: '/v1/namespaces/default/render/nginx' })).body;
  for (let i = 0; i < 10; i++) t.match(nginx, `10.0.0.1:${1000 + i}`, `i${i} is in the nginx upstream${i >= 6 ? ' (lapsed)' : ''}`);
});
