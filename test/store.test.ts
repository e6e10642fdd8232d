// Migrations and the event log's bounded history.
import t from 'tap';
import { join } from 'node:path';
import { migrate, pendingMigrations, readMigrations } from '../src/store/migrate.js';
import { openDatabase } from '../src/store/open.js';
import { buildTestApp } from './helper.js';

t.test('migrations apply in order on an empty database, record themselves, and are idempotent', async (t) => {
  const db = openDatabase(join(t.testdir(), 'r.db'));
  t.teardown(() => db.close());
  const all = readMigrations().map((m) => m.version);
  t.ok(all.length >= 1);
  t.same(all, [...all].sort((a, b) => a - b));
  t.same(pendingMigrations(db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)')), all);
  t.same(migrate(db), all);
  t.same(migrate(db), [], 'a second run applies nothing');
  t.same(pendingMigrations(db), []);
  const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all();
  t.match(tables, ['counters', 'events', 'instances', 'schema_migrations']);
  t.equal(db.pragma('journal_mode', { simple: true }), 'wal');
  for (const m of readMigrations()) t.match(m.sql, /^-- /, `${m.name} starts with a comment saying why`);
});

t.test('the event log keeps historySize events, trims as it writes, and records the compacted revision', async (t) => {
  const { app } = await buildTestApp(t, { config: { historySize: 100 } });
  for (let i = 0; i < 250; i++) {
    await app.inject({ method: 'PUT', url: `/v1/namespaces/default/services/web/instances/i${i % 10}`, payload: { address: '10.0.0.1', port: 1000 + i } });
  }
  t.equal(app.registry.revision, 250);
  t.equal(app.registry.compactedRevision(), 150);
  const kept = (await app.registry.eventsAfter({}, 150, 250, 1000));
  t.equal(kept.length, 100);
  t.equal(kept[0]!.revision, 151);
  t.same((await app.registry.eventsAfter({}, 0, 150, 1000)), [], 'trimmed events are gone');
});
