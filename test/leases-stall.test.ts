// A stalled process (GC, CPU starvation, SIGSTOP) must not expire healthy instances: time it did not run is
// discounted from every lease, and the sweep after a stall leaves the waiting heartbeats a chance first.
import t from 'tap';
import { createManualClock } from '../src/registry/clock.js';
import { createSweeper } from '../src/registry/lease-keeper.js';
import { createRegistry } from '../src/registry/registry.js';
import { createInstanceStore } from '../src/store/instance-store.js';
import { migrate } from '../src/store/migrate.js';
import { openDatabase } from '../src/store/open.js';
import { createWatchHub } from '../src/watch/hub.js';
import { api, startServerProcess, waitFor } from './helper.js';

function registryOn(clock: ReturnType<typeof createManualClock>) {
  const db = openDatabase(':memory:');
  migrate(db);
  const registry = createRegistry({ store: createInstanceStore(db, { historySize: 1000 }), hub: createWatchHub(), clock });
  return { registry, close: () => db.close() };
}

t.test('a stall of N s pushes every lease deadline back by exactly N s; the tick after it expires nothing', async (t) => {
  const clock = createManualClock();
  const { registry, close } = registryOn(clock);
  t.teardown(close);
  const sweep = createSweeper(registry, clock, { sweepMs: 200, stallToleranceMs: 1000 });
  const t0 = clock.now();
  await registry.register('default', 'web', 'a', { address: '10.0.0.1', port: 80, ttlSeconds: 5 });
  await registry.register('default', 'web', 'b', { address: '10.0.0.2', port: 80, ttlSeconds: 60 });

  clock.advance(200);
  t.same(sweep(), { stalledMs: 0, expired: 0 }, 'an on-time tick is no stall');
  clock.advance(1200);
  t.same(sweep(), { stalledMs: 0, expired: 0 }, 'late by 1000 ms: within the tolerance, nothing discounted');
  t.equal(registry.get('default', 'web', 'a').expiresAt, new Date(t0 + 5000).toISOString());

  clock.advance(200 + 6000); // the process sat still for 6 s, past a's deadline
  t.same(sweep(), { stalledMs: 6000, expired: 0 }, 'the stall is detected and nothing expires on that tick');
  t.equal(registry.get('default', 'web', 'a').expiresAt, new Date(t0 + 11_000).toISOString(), 'a: pushed back by 6 s');
  t.equal(registry.get('default', 'web', 'b').expiresAt, new Date(t0 + 66_000).toISOString(), 'b: pushed back by 6 s');

  clock.set(t0 + 11_000 - 1);
  t.equal(registry.expireDue(), 0, 'a is alive 1 ms before its new deadline');
  clock.advance(1);
  t.equal(registry.expireDue(), 1, 'and expires exactly at it');

  // A renewal after the stall counts from the wall-clock now, as always.
  const renewed = await registry.heartbeat('default', 'web', 'b');
  t.equal(renewed.expiresAt, new Date(clock.now() + 60_000).toISOString());
  t.equal(renewed.lastHeartbeatAt, new Date(clock.now()).toISOString());
  await registry.settled();
});

t.test('a real server stopped with SIGSTOP for longer than the TTL expires nobody who heartbeats', async (t) => {
  const server = await startServerProcess(t);
  const COUNT = 50;
  const url = (id: number) => `${server.url}/v1/namespaces/default/services/web/instances/i${id}`;
  for (let i = 0; i < COUNT; i++) {
    t.equal((await api(url(i), 'PUT', { address: '10.0.0.1', port: 1000 + i, ttlSeconds: 6 })).status, 201);
  }
  // Each instance heartbeats every second, like a client with ttl/3; the requests sent during the stop wait
  // in the server's sockets.
  let running = true;
  const failures: string[] = [];
  const beats = new Array<number>(COUNT).fill(0);
  const loops = Array.from({ length: COUNT }, async (_, i) => {
    while (running) {
      const res = await api(`${url(i)}/heartbeat`, 'PUT');
      if (res.status !== 200) failures.push(`i${i}: ${res.status}`);
      beats[i]! += 1;
      await new Promise((r) => setTimeout(r, 1000));
    }
  });
  await waitFor(() => beats.every((n) => n >= 2), 20_000, 'every instance heartbeating');

  server.child.kill('SIGSTOP');
  // The stimulus itself is a span of time: the server must sit still for longer than the 6 s TTL. (A TTL of 6 s
  // against heartbeats every second leaves a loaded machine 5 s of slack outside the stop.)
  await new Promise((r) => setTimeout(r, 8000));
  const before = [...beats];
  server.child.kill('SIGCONT');
  await waitFor(() => beats.every((n, i) => n >= before[i]! + 3), 30_000, 'three heartbeats answered per instance after the stop');
  running = false;
  await Promise.all(loops);

  t.same(failures, [], 'no heartbeat was refused: nobody expired');
  const list = await api(`${server.url}/v1/namespaces/default/services/web/instances`);
  t.equal(list.body.items.length, COUNT);
  t.ok(list.body.items.every((i: { createRevision: number }) => i.createRevision <= COUNT), 'the original registrations, none re-created');
  const metrics = (await api(`${server.url}/metrics`)).body as string;
  t.match(metrics, /\nrollcall_expiries_total 0\n/);
  const stalled = Number(/\nrollcall_lease_stall_seconds_total (\S+)/.exec(metrics)?.[1]);
  t.ok(stalled >= 7, `the stall was discounted (${stalled} s)`);
});
