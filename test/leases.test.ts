// Leases with an injected clock: exact expiry, renewal, restart grace, bounded sweeps, and the event log.
import t from 'tap';
import { createManualClock } from '../src/registry/clock.js';
import type { ChangeEvent } from '../src/registry/types.js';
import { buildTestApp } from './helper.js';

const BASE = '/v1/namespaces/default/services/web/instances';
const reg = (id: string, ttlSeconds = 10) => ({ method: 'PUT' as const, url: `${BASE}/${id}`, payload: { address: '10.0.0.1', port: 80, ttlSeconds } });

t.test('an instance expires exactly at its deadline, not before; a heartbeat moves the deadline', async (t) => {
  const clock = createManualClock();
  const { app } = await buildTestApp(t, { clock });
  await app.inject(reg('a'));
  await app.inject(reg('b'));
  clock.advance(5000);
  t.equal((await app.inject({ method: 'PUT', url: `${BASE}/b/heartbeat` })).statusCode, 200);
  clock.advance(4999);
  t.equal(app.registry.expireDue(), 0, 'a is still alive 1 ms before its deadline');
  clock.advance(1);
  t.equal(app.registry.expireDue(), 1, 'a expires at 10 s');
  t.equal((await app.inject({ url: `${BASE}/a` })).statusCode, 404);
  t.equal((await app.inject({ method: 'PUT', url: `${BASE}/a/heartbeat` })).statusCode, 404, 'an expired instance must register again');
  clock.advance(4999);
  t.equal(app.registry.expireDue(), 0, 'b was renewed at 5 s');
  clock.advance(1);
  t.equal(app.registry.expireDue(), 1, 'b expires at 15 s');
});

t.test('patch renews and a ttl change moves the deadline', async (t) => {
  const clock = createManualClock();
  const { app } = await buildTestApp(t, { clock });
  await app.inject(reg('a', 10));
  clock.advance(8000);
  await app.inject({ method: 'PATCH', url: `${BASE}/a`, payload: { ttlSeconds: 2 } });
  clock.advance(1999);
  t.equal(app.registry.expireDue(), 0);
  clock.advance(1);
  t.equal(app.registry.expireDue(), 1);
});

t.test('the exact event sequence: register, patch, expire, register, deregister', async (t) => {
  const clock = createManualClock();
  const { app } = await buildTestApp(t, { clock });
  await app.inject(reg('a', 1));
  await app.inject({ method: 'PATCH', url: `${BASE}/a`, payload: { status: 'draining' } });
  await app.inject({ method: 'PUT', url: `${BASE}/a/heartbeat` });
  clock.advance(1000);
  app.registry.expireDue();
  await app.inject(reg('a', 1));
  await app.inject({ method: 'DELETE', url: `${BASE}/a` });
  const events = (await app.registry.eventsAfter({}, 0, 100, 100)) as ChangeEvent[];
  t.same(
    events.map((e) => [e.revision, e.type, e.reason, e.instance.status]),
    [
      [1, 'ADDED', 'registered', 'up'],
      [2, 'MODIFIED', 'updated', 'draining'],
      [3, 'DELETED', 'expired', 'draining'],
      [4, 'ADDED', 'registered', 'up'],
      [5, 'DELETED', 'deregistered', 'up'],
    ],
  );
  t.equal(events[2]!.instance.revision, 2, 'DELETED carries the last state');
  t.equal(events[3]!.instance.createRevision, 4, 'a new registration after expiry is a new instance');
});

t.test('expiries per sweep are bounded; the rest follow in later sweeps', async (t) => {
  const clock = createManualClock();
  // Every instance lapses at once: self-preservation would keep them (test/protection.test.ts); off here.
  const { app } = await buildTestApp(t, { clock, config: { maxExpiriesPerSweep: 3, protectThreshold: 100 } });
  for (let i = 0; i < 10; i++) await app.inject(reg(`i${i}`, 1));
  clock.advance(1000);
  t.same([app.registry.expireDue(), app.registry.expireDue(), app.registry.expireDue(), app.registry.expireDue()], [3, 3, 3, 1]);
  t.equal(app.registry.list({ namespace: 'default' }).items.length, 0);
});

t.test('a restart grants every restored instance a fresh full TTL; revision and heartbeats persist', async (t) => {
  const clock = createManualClock();
  const dataDir = t.testdir();
  const first = await buildTestApp(t, { clock, dataDir });
  await first.app.inject(reg('a', 10));
  await first.app.inject(reg('b', 10));
  clock.advance(3000);
  await first.app.inject({ method: 'PUT', url: `${BASE}/b/heartbeat` });
  const heartbeatAt = new Date(clock.now()).toISOString();
  await first.app.close(); // flushes heartbeats
  clock.advance(60_000); // down for a minute: every lease would have ended
  const second = await buildTestApp(t, { clock, dataDir });
  t.equal(second.app.registry.revision, 2, 'revision survives the restart');
  const b = (await second.app.inject({ url: `${BASE}/b` })).json();
  t.equal(b.lastHeartbeatAt, heartbeatAt, 'heartbeat time was persisted lazily');
  t.equal(b.expiresAt, new Date(clock.now() + 10_000).toISOString());
  t.equal(second.app.registry.expireDue(), 0, 'nobody is evicted at startup');
  clock.advance(10_000);
  t.equal(second.app.registry.expireDue(), 2, 'without heartbeats they expire one TTL after the restart');
  const next = await second.app.inject(reg('c'));
  t.equal(next.json().revision, 5, 'the revision continues, never goes back');
});
