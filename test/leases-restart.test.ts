// Restart grace: restored instances get their fresh TTL when the server accepts connections, not when the
// database was loaded (defect 3: at 100k instances the load alone used up most of a short TTL).
import Database from 'better-sqlite3';
import { join } from 'node:path';
import t from 'tap';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { createManualClock } from '../src/registry/clock.js';
import { api, buildTestApp, startServerProcess } from './helper.js';

const BASE = '/v1/namespaces/default/services/web/instances';

t.test('the grace runs from listen: a start that took 5 s evicts nobody within the first TTL', async (t) => {
  const clock = createManualClock();
  const dataDir = t.testdir();
  const first = await buildTestApp(t, { clock, dataDir });
  await first.app.inject({ method: 'PUT', url: `${BASE}/a`, payload: { address: '10.0.0.1', port: 80, ttlSeconds: 2 } });
  await first.app.close();

  const app = await buildApp({ config: loadConfig({ dataDir }), clock });
  t.teardown(() => app.close());
  await app.ready();
  clock.advance(5000); // loading and building took 5 s (no sweep runs before the server listens)
  await app.listen({ host: '127.0.0.1', port: 0 });
  const listenedAt = clock.now();
  const a = (await app.inject({ url: `${BASE}/a` })).json();
  t.equal(a.expiresAt, new Date(listenedAt + 2000).toISOString(), 'a full TTL from the moment the server listens');
  clock.advance(1999);
  t.equal(app.registry.expireDue(), 0, 'still there 1 ms before the end of the grace');
  clock.advance(1);
  t.equal(app.registry.expireDue(), 1, 'gone at its end');
});

t.test('a real server restored with 20,000 ttl-2 instances grants them their TTL from when it is ready', async (t) => {
  const COUNT = 20_000;
  const first = await startServerProcess(t);
  t.equal((await api(`${first.url}${BASE}/seed`, 'PUT', { address: '10.0.0.1', port: 80, ttlSeconds: 2 })).status, 201);
  await first.kill('SIGTERM');
  // Seed the rest straight into the file: quicker than 20k durable writes through the API.
  const db = new Database(join(first.dataDir, 'rollcall.db'));
  const insert = db.prepare(`INSERT INTO instances (namespace, service, id, address, port, status, weight, zone, tags, metadata,
    ttl_seconds, registered_at, last_heartbeat_at, revision, create_revision) VALUES ('default', 'web', ?, '10.0.0.1', 80, 'up', 1, NULL, '[]', '{}', 2, 0, 0, 1, 1)`);
  db.transaction(() => {
    for (let i = 1; i < COUNT; i++) insert.run(`i${i}`);
  })();
  db.close();

  const spawnedAt = Date.now();
  // Restoring 20k instances on a loaded machine may take longer than the helper's usual 10 s.
  const second = await startServerProcess(t, { dataDir: first.dataDir, startTimeoutMs: 60_000 });
  t.comment(`restored ${COUNT} instances and listened in ${Date.now() - spawnedAt} ms`);
  const readySeen = Date.now(); // the server listened a moment before this
  const [a, b] = await Promise.all([api(`${second.url}${BASE}/seed`), api(`${second.url}${BASE}/i${COUNT - 1}`)]);
  t.equal(a.status, 200, 'the first restored instance is there');
  t.equal(b.status, 200, 'the last restored instance is there');
  for (const { body } of [a, b]) {
    // The grace is 2 s from listen; only the pipe carrying the "listening" line separates listen from readySeen.
    const left = Date.parse(body.expiresAt) - readySeen;
    t.ok(left > 1500, `${body.id}: ${left} ms of its 2 s TTL left after ready`);
  }
  const summary = await api(`${second.url}/v1/namespaces/default/services`);
  t.equal(summary.body.items[0].instances, COUNT, 'nobody was evicted at start');
});
