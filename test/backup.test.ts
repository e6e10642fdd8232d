// rollcall backup: a consistent online copy while a real server takes writes; a registry started from the
// copy lists exactly the state at the copy's revision.
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { CHILD_ENV, CLI, api, startServerProcess } from './helper.js';
import { changes, openWatch } from './watch-client.js';

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: CHILD_ENV });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

t.test('a backup taken under write load is one consistent revision, and a registry starts from it', async (t) => {
  const base = t.testdir(); // once: a second t.testdir() call would empty it
  const server = await startServerProcess(t, { dataDir: join(base, 'live') });
  const inst = (id: string) => `${server.url}/v1/namespaces/default/services/web/instances/${id}`;
  const watch = await openWatch(server.url);
  await watch.until((m) => m.some((x) => x.type === 'SNAPSHOT'));

  // Writers: registrations, patches and deregistrations, continuously, until the backup is done.
  let writing = true;
  let writes = 0;
  const writers = Array.from({ length: 4 }, async (_, w) => {
    for (let i = 0; writing; i++) {
      const id = `w${w}-${i % 50}`;
      const op = i % 3;
      const res =
        op === 0
          ? await api(inst(id), 'PUT', { address: '10.0.0.1', port: 1000 + i, metadata: { n: String(i) } })
          : op === 1
            ? await api(inst(id), 'PATCH', { weight: (i % 7) + 1 })
            : await api(inst(id), 'DELETE');
      if (res.status >= 500) throw new Error(`write failed: ${res.status}`);
      writes++;
    }
  });
  while (writes < 300) await new Promise((r) => setTimeout(r, 50));

  const out = join(base, 'copy.db');
  const backup = await runCli(['backup', '--data-dir', server.dataDir, '--out', out, '--json']);
  t.equal(backup.code, 0, backup.stderr);
  const result = JSON.parse(backup.stdout);
  const writesDuringBackup = writes;
  while (writes < writesDuringBackup + 20) await new Promise((r) => setTimeout(r, 20)); // more land after the copy
  writing = false;
  await Promise.all(writers);
  t.ok(writesDuringBackup >= 300 && writes > writesDuringBackup, `the server kept writing (${writes} writes)`);
  t.ok(result.revision > 0 && result.revision < (await api(`${server.url}/readyz`)).body.revision, 'a revision taken mid-stream');

  // The state at the backup's revision, replayed from the live server's watch.
  await watch.until((m) => changes(m).at(-1)?.revision === result.revision || changes(m).some((e) => e.revision > result.revision), 10_000);
  const expected = new Map<string, { revision: number; weight: number }>();
  for (const e of changes(watch.messages)) {
    if (e.revision > result.revision) break;
    if (e.type === 'DELETED') expected.delete(e.instance.id);
    else expected.set(e.instance.id, { revision: e.instance.revision, weight: e.instance.weight });
  }
  t.equal(result.instances, expected.size);

  const restoredDir = join(base, 'restored');
  mkdirSync(restoredDir);
  copyFileSync(out, join(restoredDir, 'rollcall.db'));
  const restored = await startServerProcess(t, { dataDir: restoredDir });
  const list = await api(`${restored.url}/v1/namespaces/default/services/web/instances`);
  t.equal(list.body.revision, result.revision, 'the restored registry is at the backup revision');
  t.same(
    Object.fromEntries(list.body.items.map((i: any) => [i.id, { revision: i.revision, weight: i.weight }])),
    Object.fromEntries(expected),
    'it lists exactly the state at that revision',
  );
  // It continues as a registry: the next write gets the next revision.
  const next = await api(`${restored.url}/v1/namespaces/default/services/web/instances/after`, 'PUT', { address: '10.0.0.9', port: 9 });
  t.equal(next.body.revision, result.revision + 1);
  watch.close();
});

t.test('backup errors are one line and a non-zero exit', async (t) => {
  const base = t.testdir();
  const empty = join(base, 'empty');
  mkdirSync(empty);
  const missing = spawnSync(process.execPath, [CLI, 'backup', '--data-dir', empty, '--out', join(empty, 'x.db')], { encoding: 'utf8', env: CHILD_ENV });
  t.equal(missing.status, 1);
  t.match(missing.stderr, /^rollcall: backup failed: no registry database at .*rollcall\.db\n$/);
  const server = await startServerProcess(t, { dataDir: join(base, 'live') });
  const noFolder = spawnSync(process.execPath, [CLI, 'backup', '--data-dir', server.dataDir, '--out', join(empty, 'nope', 'x.db')], { encoding: 'utf8', env: CHILD_ENV });
  t.equal(noFolder.status, 1);
  t.match(noFolder.stderr, /^rollcall: backup failed: the folder of .* does not exist\n$/);
  const noOut = spawnSync(process.execPath, [CLI, 'backup', '--data-dir', server.dataDir], { encoding: 'utf8', env: CHILD_ENV });
  t.not(noOut.status, 0);
  t.match(noOut.stderr, /--out/);
});
