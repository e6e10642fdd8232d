// A full disk: writes answer 503 storage_full, reads, watches and heartbeats keep working, nothing stored is
// corrupted, and writes resume once space returns. On a small tmpfs the test mounts (needs root).
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { api, startServerProcess } from './helper.js';
import { changes, openWatch } from './watch-client.js';

function canMount(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root to mount a tmpfs';
  try {
    execFileSync('mount', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'needs the mount command (util-linux)';
  }
  return undefined;
}

const why = canMount();
if (why !== undefined) {
  if (process.env.CI === 'true') throw new Error(`storage-full test cannot run in CI: ${why}`);
  console.error(`\n*** SKIPPING the full-disk test: ${why} ***\n`);
  t.pass(`skipped: ${why}`);
} else {
  t.test('a full disk refuses writes with 503 storage_full and the registry keeps serving', async (t) => {
    // Outside tap's fixture dir: tap removes that before our teardown could unmount it.
    const mountPoint = mkdtempSync(join(tmpdir(), 'rollcall-full-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=6m', 'tmpfs', mountPoint]);
    t.teardown(() => {
      execFileSync('umount', ['-l', mountPoint]);
      rmSync(mountPoint, { recursive: true, force: true });
    });
    const dataDir = join(mountPoint, 'data');
    mkdirSync(dataDir);
    const server = await startServerProcess(t, { dataDir });
    t.teardown(() => server.kill());
    const inst = (id: string) => `${server.url}/v1/namespaces/default/services/web/instances/${id}`;
    // Big registrations (about 60 KiB each) fill what is left quickly.
    const big = (n: number) => ({
      address: '10.0.0.1',
      port: 80,
      ttlSeconds: 3600,
      metadata: Object.fromEntries(Array.from({ length: 60 }, (_, k) => [`k${k}`, `${n}`.padEnd(1000, 'x')])),
    });

    const acked = new Set<string>();
    for (let i = 0; i < 10; i++) {
      t.equal((await api(inst(`a${i}`), 'PUT', big(i))).status, 201);
      acked.add(`a${i}`);
    }
    const watch = await openWatch(server.url, { namespace: 'default' });
    await watch.until((m) => m.some((x) => x.type === 'SNAPSHOT'));

    // Fill the disk, leaving it to the registry to run into the wall.
    const filler = join(mountPoint, 'filler');
    const fd = openSync(filler, 'w');
    const chunk = Buffer.alloc(64 * 1024, 1);
    try {
      for (;;) writeSync(fd, chunk);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
    } finally {
      closeSync(fd);
    }

    let refused: { status: number; body: any } | undefined;
    const refusedIds: string[] = [];
    for (let i = 0; i < 300 && refused === undefined; i++) {
      const res = await api(inst(`b${i}`), 'PUT', big(i));
      if (res.status === 201) acked.add(`b${i}`);
      else {
        refused = res;
        refusedIds.push(`b${i}`);
      }
    }
    t.ok(refused, 'a write was refused once the disk was full');
    t.equal(refused!.status, 503);
    t.equal(refused!.body.error, 'storage_full');
    t.match(refused!.body.message, /disk is full/);
    t.same(Object.keys(refused!.body).sort(), ['error', 'message']);

    // More writes of every kind are refused the same way while it is full, and change nothing.
    const del = await api(inst('a0'), 'DELETE');
    t.same([del.status, del.body.error], [503, 'storage_full'], 'a deregistration is refused too');
    const patch = await api(inst('a1'), 'PATCH', { status: 'draining' });
    t.same([patch.status, patch.body.error], [503, 'storage_full']);

    // Reads, heartbeats and watches work; memory holds exactly what was saved.
    const list = await api(`${server.url}/v1/namespaces/default/services/web/instances`);
    t.equal(list.status, 200);
    t.same(list.body.items.map((i: any) => i.id).sort(), [...acked].sort(), 'exactly the acknowledged writes');
    t.equal(list.body.items.find((i: any) => i.id === 'a1').status, 'up', 'the refused patch left no trace');
    t.equal((await api(inst(refusedIds[0]!))).status, 404, 'the refused registration left no trace');
    t.equal((await api(`${inst('a2')}/heartbeat`, 'PUT')).status, 200, 'heartbeats work');
    const second = await openWatch(server.url, { namespace: 'default' });
    const snapshot = (await second.until((m) => m.some((x) => x.type === 'SNAPSHOT'))).find((x) => x.type === 'SNAPSHOT');
    t.equal(snapshot.items.length, acked.size, 'a new watcher gets its snapshot');
    t.equal((await api(`${server.url}/readyz`)).status, 200);

    // Space returns: writes resume, and watchers see them (and never saw the refused ones).
    unlinkSync(filler);
    const after = await api(inst('c0'), 'PUT', { address: '10.0.0.2', port: 81 });
    t.equal(after.status, 201, 'writes resume once space is freed');
    acked.add('c0');
    t.equal((await api(inst('a0'), 'DELETE')).status, 204);
    acked.delete('a0');
    await watch.until((m) => changes(m).some((e) => e.instance.id === 'a0' && e.type === 'DELETED'), 10_000);
    const seen = changes(watch.messages);
    t.notOk(seen.some((e) => refusedIds.includes(e.instance.id)), 'no event for a refused write was ever published');
    t.same(
      seen.map((e) => e.revision),
      Array.from({ length: seen.length }, (_, i) => seen[0].revision + i),
      'the revisions watchers see have no holes: refused writes used none',
    );
    watch.close();
    second.close();

    // Nothing stored is corrupted: a restart (after kill -9) passes the integrity check and lists the same.
    await server.kill('SIGKILL');
    const again = await startServerProcess(t, { dataDir });
    t.teardown(() => again.kill());
    const relisted = await api(`${again.url}/v1/namespaces/default/services/web/instances`);
    t.same(relisted.body.items.map((i: any) => i.id).sort(), [...acked].sort(), 'the same state after a restart');
    t.equal(relisted.body.revision, list.body.revision + 2, 'the revision continues from the last committed write');
    await again.kill('SIGTERM');
  });
}
