// `rollcall watch` as a real child process, across a registry restart.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { CHILD_ENV, CLI, api, startServerProcess, PATIENCE_MS, waitFor } from './helper.js';

t.test('prints a snapshot and one line per change, and resumes across a registry restart', async (t) => {
  const server = await startServerProcess(t);
  const inst = (url: string, id: string) => `${url}/v1/namespaces/default/services/web/instances/${id}`;
  await api(inst(server.url, 'a'), 'PUT', { ttlSeconds: 3600, address: '10.0.0.1', port: 80 });
  const child = spawn(process.execPath, [CLI, 'watch', '--registry', server.url, '--namespace', 'default', '--service', 'web'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: CHILD_ENV,
  });
  t.teardown(() => void child.kill('SIGKILL'));
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  // Wait for the whole lines, not for a word: output arrives in chunks, and a line may be split between them.
  const snapshot = /^1 SNAPSHOT 1 instance\(s\)\n1 EXISTS default\/web\/a 10\.0\.0\.1:80 up w=1\n/;
  await waitFor(() => snapshot.test(out) || /EXISTS.*\n/.test(out), PATIENCE_MS, 'snapshot lines');
  t.match(out, snapshot);
  await api(inst(server.url, 'b'), 'PUT', { ttlSeconds: 3600, address: '::1', port: 81 });
  await waitFor(() => /ADDED.*\n/.test(out), PATIENCE_MS, 'ADDED line');
  t.match(out, /2 ADDED default\/web\/b \[::1\]:81 up w=1 \(registered\)/);

  await server.kill('SIGKILL');
  const again = await startServerProcess(t, { dataDir: server.dataDir, port: server.port });
  await api(inst(again.url, 'a'), 'DELETE');
  await waitFor(() => /DELETED.*\n/.test(out), PATIENCE_MS, 'DELETED line after restart');
  t.match(out, /3 DELETED default\/web\/a 10\.0\.0\.1:80 up w=1 \(deregistered\)/);
  t.equal(out.match(/ADDED/g)?.length, 1, 'no duplicate after resuming');
  t.equal(out.match(/SNAPSHOT/g)?.length, 1, 'resumed, not started over');
  child.kill('SIGTERM');
});

t.test('--json prints the raw messages; bad flags fail with one line', async (t) => {
  const server = await startServerProcess(t);
  const child = spawn(process.execPath, [CLI, 'watch', '--registry', server.url, '--json'], { stdio: ['ignore', 'pipe', 'pipe'], env: CHILD_ENV });
  t.teardown(() => void child.kill('SIGKILL'));
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await waitFor(() => out.includes('\n'), PATIENCE_MS, 'first line');
  t.same(JSON.parse(out.split('\n')[0]!), { type: 'SNAPSHOT', revision: 0, items: [] });

  const noNs = spawnSync(process.execPath, [CLI, 'watch', '--service', 'web'], { encoding: 'utf8', env: CHILD_ENV });
  t.equal(noNs.status, 1);
  t.equal(noNs.stderr, 'rollcall: --service needs --namespace\n');
  const badSince = spawnSync(process.execPath, [CLI, 'watch', '--since', 'x'], { encoding: 'utf8', env: CHILD_ENV });
  t.not(badSince.status, 0);
  t.match(badSince.stderr, /--since/);
  const badNs = spawnSync(process.execPath, [CLI, 'watch', '--registry', server.url, '--namespace', 'Bad!'], { encoding: 'utf8', timeout: PATIENCE_MS, env: CHILD_ENV });
  t.equal(badNs.status, 1);
  t.match(badNs.stderr, /^rollcall: Invalid request: querystring.namespace/);
});
