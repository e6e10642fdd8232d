// A commit refused for lack of space is undone in memory too, exactly: no trace, no revision, no event.
// SQLITE_FULL is produced for real by capping the database's size (PRAGMA max_page_count), no root needed.
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { createManualClock } from '../src/registry/clock.js';
import { createRegistry } from '../src/registry/registry.js';
import type { ChangeEvent } from '../src/registry/types.js';
import { createInstanceStore } from '../src/store/instance-store.js';
import { migrate } from '../src/store/migrate.js';
import { openDatabase } from '../src/store/open.js';
import { createWatchHub } from '../src/watch/hub.js';

function setup(t: Test) {
  const clock = createManualClock();
  const db = openDatabase(join(t.testdir(), 'rollcall.db'));
  migrate(db);
  const hub = createWatchHub();
  const published: ChangeEvent[] = [];
  // The default resources are instances: every event here is an instance change.
  hub.subscribe({}, (e) => published.push(e.event as ChangeEvent));
  let fatal: unknown;
  const registry = createRegistry({ store: createInstanceStore(db, { historySize: 1000 }), hub, clock, onFatal: (err) => (fatal = err) });
  t.teardown(() => db.close());
  const full = () => db.pragma(`max_page_count = ${db.pragma('page_count', { simple: true }) as number}`);
  const roomy = () => db.pragma('max_page_count = 1073741823');
  return { clock, registry, published, full, roomy, fatal: () => fatal };
}

const big = (n: number) => ({
  address: '10.0.0.1',
  port: 80,
  ttlSeconds: 10,
  metadata: Object.fromEntries(Array.from({ length: 60 }, (_, k) => [`k${k}`, `${n}`.padEnd(1000, 'x')])),
});

t.test('a batch that hits a full disk is rolled back in memory: its writers fail, the registry goes on', async (t) => {
  const { registry, published, full, roomy, fatal } = setup(t);
  await registry.register('default', 'web', 'a', { address: '10.0.0.1', port: 80 });
  await registry.register('default', 'web', 'b', { address: '10.0.0.2', port: 80 });
  const before = JSON.stringify(registry.snapshot({}));
  full();

  // One turn: a patch and a deregistration that fit in existing pages, then a registration that does not.
  const patched = registry.patch('default', 'web', 'a', { status: 'draining' });
  const deregistered = registry.deregister('default', 'web', 'b');
  const registered = registry.register('default', 'web', 'c', big(1));
  await t.rejects(registered, { code: 'storage_full', status: 503 }, 'the writer that hit the wall gets storage_full');
  await t.rejects(patched, { code: 'storage_full' }, 'the earlier writers of the batch get it too');
  await t.rejects(deregistered, { code: 'storage_full' });
  await registry.settled();
  t.equal(JSON.stringify(registry.snapshot({})), before, 'memory is exactly what it was: the whole batch undone');
  t.equal(registry.revision, 2);
  t.same(published.map((e) => e.revision), [1, 2], 'nothing of the failed batch was published');
  t.equal(fatal(), undefined, 'a full disk is not fatal');

  // Reads and heartbeats go on; a heartbeat writes nothing.
  t.equal((await registry.heartbeat('default', 'web', 'a')).status, 'up');
  t.equal(registry.list({ namespace: 'default' }).items.length, 2);

  // Space returns: the same writes succeed, with the revisions the failed ones never used.
  roomy();
  await Promise.all([
    registry.patch('default', 'web', 'a', { status: 'draining' }),
    registry.deregister('default', 'web', 'b'),
    registry.register('default', 'web', 'c', big(1)),
  ]);
  t.same(published.map((e) => [e.revision, e.type, e.instance.id]), [
    [1, 'ADDED', 'a'],
    [2, 'ADDED', 'b'],
    [3, 'MODIFIED', 'a'],
    [4, 'DELETED', 'b'],
    [5, 'ADDED', 'c'],
  ]);
});

t.test('an expiry sweep that cannot commit keeps the leases and expires them once there is room', async (t) => {
  const { clock, registry, published, full, roomy } = setup(t);
  const COUNT = 200;
  // Small rows, and a DELETED event (the whole instance as JSON) is larger than the row it removes: the
  // sweep's commit needs pages that the capped database does not have.
  await Promise.all(Array.from({ length: COUNT }, (_, i) => registry.register('default', 'web', `i${i}`, { address: '10.0.0.1', port: 80, ttlSeconds: 10 })));
  full();
  clock.advance(10_000);
  for (let attempt = 0; attempt < 3; attempt++) {
    t.throws(() => registry.expireDue(), { code: 'storage_full' }, `sweep ${attempt + 1} cannot commit`);
    await registry.settled();
  }
  t.equal(registry.list({ namespace: 'default' }).items.length, COUNT, 'nobody removed while the sweep could not commit');
  t.equal(registry.revision, COUNT);
  t.equal(published.length, COUNT, 'no expiry published');
  roomy();
  t.equal(registry.expireDue(), COUNT, 'every lease went back in the heap and expires once there is room');
  await registry.settled();
  t.equal(registry.list({ namespace: 'default' }).items.length, 0);
  t.ok(published.slice(COUNT).every((e) => e.type === 'DELETED' && e.reason === 'expired'));
  t.equal(published.length, 2 * COUNT, 'each expired exactly once');
});
