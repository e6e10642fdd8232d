// A damaged database file is refused at start with one clear line and a non-zero exit, never served.
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { CHILD_ENV, CLI, api, startServerProcess } from './helper.js';

async function registryWithData(t: Test) {
  const server = await startServerProcess(t);
  for (let i = 0; i < 50; i++) {
    await api(`${server.url}/v1/namespaces/default/services/web/instances/i${i}`, 'PUT', { address: '10.0.0.1', port: 1000 + i });
  }
  await server.kill('SIGTERM'); // a clean close checkpoints the WAL into the main file
  return join(server.dataDir, 'rollcall.db');
}

function serve(dataDir: string) {
  return spawnSync(process.execPath, [CLI, 'serve', '--port', '0', '--data-dir', dataDir], { encoding: 'utf8', env: CHILD_ENV, timeout: 30_000 });
}

t.test('a database with a damaged page is refused at start', async (t) => {
  const file = await registryWithData(t);
  const pageSize = readFileSync(file).readUInt16BE(16);
  // Overwrite the second page (a b-tree page) with garbage; the header page stays valid.
  const fd = openSync(file, 'r+');
  writeSync(fd, Buffer.alloc(pageSize, 0xa5), 0, pageSize, pageSize);
  closeSync(fd);
  const res = serve(join(file, '..'));
  t.equal(res.status, 1, 'non-zero exit');
  t.match(res.stderr, /^rollcall: cannot start: the database file .*rollcall\.db is damaged \(.+\); restore it from a backup/);
  t.equal(res.stderr.trim().split('\n').length, 1, 'one line, no stack trace');
  t.notMatch(res.stdout, /Server listening/, 'it never served');
});

t.test('a file that is not a database at all is refused the same way', async (t) => {
  const file = await registryWithData(t);
  writeFileSync(file, 'this is not a database '.repeat(400));
  const res = serve(join(file, '..'));
  t.equal(res.status, 1);
  t.match(res.stderr, /^rollcall: cannot start: the database file .* is damaged \(file is not a database\)/);
  t.equal(res.stderr.trim().split('\n').length, 1);
});

t.test('an intact database passes the check and serves its data', async (t) => {
  const file = await registryWithData(t);
  const server = await startServerProcess(t, { dataDir: join(file, '..') });
  t.equal((await api(`${server.url}/v1/namespaces/default/services/web/instances`)).body.items.length, 50);
});
