// Clients of a registry with scoped tokens: the library's `token`, and --token / --token-file / ROLLCALL_TOKEN
// on the people commands, watch, render and the agent (a token in a file never shows in `ps`).
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { createClient, RollcallClientError } from '../src/client/index.js';
import { child, startAgent } from './agent-process.js';
import { bearer, writeAuthFile } from './auth-fixtures.js';
import { api, CHILD_ENV, CLI, freePort, startServer, waitFor } from './helper.js';

const WRITER = { name: 'writer', role: 'write' as const, namespaces: ['default', 'team-a'], token: 'tok-writer' };
const READER = { name: 'reader', role: 'read' as const, namespaces: ['team-a'], token: 'tok-reader' };

/** Runs jobs at most `limit` at a time (a CLI start is mostly CPU: more at once only queues on a loaded machine). */
async function inBatches<T extends readonly (() => Promise<unknown>)[]>(limit: number, jobs: [...T]): Promise<{ [K in keyof T]: Awaited<ReturnType<T[K]>> }> {
  const results: unknown[] = [];
  for (let i = 0; i < jobs.length; i += limit) results.push(...(await Promise.all(jobs.slice(i, i + limit).map((job) => job()))));
  return results as { [K in keyof T]: Awaited<ReturnType<T[K]>> };
}

function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...CHILD_ENV, ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

async function authServer(t: Parameters<typeof startServer>[0]) {
  const dir = t.testdir();
  const server = await startServer(t, { dataDir: dir, config: { authFile: writeAuthFile(dir, [WRITER, READER]) } });
  const tokenFile = (name: string, token: string) => {
    const file = join(dir, name);
    writeFileSync(file, `${token}\n`);
    return file;
  };
  return { ...server, dir, tokenFile };
}

t.test('the client library sends its token; refusals are coded errors', async (t) => {
  const server = await authServer(t);
  const writer = createClient({ url: server.url, token: WRITER.token });
  const reader = createClient({ url: server.url, token: READER.token });
  const nobody = createClient({ url: server.url });
  t.teardown(() => [writer, reader, nobody].forEach((c) => c.close()));
  const reg = await writer.register({ namespace: 'team-a', service: 'web', id: 'a', address: '10.0.0.1', port: 80, ttlSeconds: 600 });
  t.teardown(() => reg.stop());
  t.equal((await reader.listInstances('team-a', 'web')).items.length, 1);
  await t.rejects(reader.listInstances('default', 'web'), { code: 'forbidden', status: 403 });
  await t.rejects(nobody.listInstances('team-a', 'web'), { code: 'unauthorized', status: 401 });
  const refused = await reader.register({ namespace: 'team-a', service: 'web', id: 'b', address: '10.0.0.2', port: 80 }).catch((err: unknown) => err);
  t.ok(refused instanceof RollcallClientError && refused.code === 'forbidden', 'a read token cannot register');
  const view = reader.watch({ namespace: 'team-a', service: 'web' });
  await waitFor(() => view.instances().length === 1, 10_000, 'the view over the token-guarded watch');
  t.equal(view.instances()[0]!.id, 'a');
});

t.test('people commands: --token-file, --token, ROLLCALL_TOKEN, ROLLCALL_TOKEN_FILE; 401/403 exit 5', async (t) => {
  const server = await authServer(t);
  const env = { ROLLCALL_URL: server.url };
  const writerFile = server.tokenFile('writer.token', WRITER.token);
  const register = ['register', 'web', 'w1', '--address', '10.0.0.1', '--port', '80', '--ttl', '600'];

  const withFile = await run([...register, '--token-file', writerFile], env);
  t.equal(withFile.code, 0, withFile.stderr);
  t.match(withFile.stdout, /^registered default\/web\/w1/);
  // Independent of each other: run side by side (each CLI start costs a second or more on a loaded machine).
  const emptyFile = server.tokenFile('empty.token', '');
  const [byFlag, byEnv, byEnvFile, fileBeatsEnv, none, forbidden, both, missing, empty] = await inBatches(3, [
    () => run(['list', 'web', '--token', WRITER.token], env),
    () => run(['get', 'web', 'w1'], { ...env, ROLLCALL_TOKEN: WRITER.token }),
    () => run(['get', 'web', 'w1'], { ...env, ROLLCALL_TOKEN_FILE: writerFile }),
    () => run(['get', 'web', 'w1', '--token-file', writerFile], { ...env, ROLLCALL_TOKEN: 'stale' }),
    () => run(['list', 'web'], env),
    () => run([...register, '--token', READER.token, '-n', 'team-a'], env),
    () => run(['list', 'web', '--token', 'x', '--token-file', writerFile], env),
    () => run(['list', 'web', '--token-file', join(server.dir, 'nope')], env),
    () => run(['list', 'web', '--token-file', emptyFile], env),
  ]);
  t.equal(byFlag.code, 0, '--token');
  t.equal(byEnv.code, 0, 'ROLLCALL_TOKEN');
  t.equal(byEnvFile.code, 0, 'ROLLCALL_TOKEN_FILE');
  t.equal(fileBeatsEnv.code, 0, '--token-file wins over a token from the environment');
  t.equal(none.code, 5);
  t.match(none.stderr, /This registry needs "Authorization: Bearer <token>"/);
  t.equal(forbidden.code, 5);
  t.match(forbidden.stderr, /"reader" \(role read, namespaces team-a\) lacks the scope write:team-a/);
  t.equal(both.code, 1);
  t.equal(both.stderr, 'rollcall: give --token or --token-file, not both\n');
  t.equal(missing.code, 1);
  t.match(missing.stderr, /^rollcall: --token-file .*nope: cannot read it \(ENOENT\)\n$/);
  t.equal(empty.code, 1);
  t.match(empty.stderr, /must hold one token on one line/);
});

t.test('rollcall watch and rollcall render take --token-file', async (t) => {
  const server = await authServer(t);
  await api(`${server.url}/v1/namespaces/team-a/services/web/instances/a`, 'PUT', { address: '10.0.0.1', port: 80, ttlSeconds: 600 }, bearer(WRITER.token));
  const readerFile = server.tokenFile('reader.token', READER.token);
  const env = { ROLLCALL_URL: server.url };

  const [rendered, renderRefused, watchRefused, allRefused] = await inBatches(2, [
    () => run(['render', 'nginx', '-n', 'team-a', '--token-file', readerFile], env),
    () => run(['render', 'nginx', '-n', 'default', '--token-file', readerFile], env),
    () => run(['watch', '--namespace', 'default', '--token-file', readerFile], env),
    () => run(['watch', '--token-file', readerFile], env),
  ]);
  t.equal(rendered.code, 0, rendered.stderr);
  t.match(rendered.stdout, /server 10\.0\.0\.1:80/);
  t.not(renderRefused.code, 0);
  t.match(renderRefused.stderr, /lacks the scope read:default/);
  t.equal(watchRefused.code, 5, 'a watch out of scope stops with exit 5 instead of retrying');
  t.match(watchRefused.stderr, /lacks the scope read:default/);
  t.equal(allRefused.code, 5, 'a registry-wide watch needs *');

  const { spawn } = await import('node:child_process');
  const watcher = spawn(process.execPath, [CLI, 'watch', '--namespace', 'team-a', '--token-file', readerFile], { env: { ...CHILD_ENV, ...env } });
  t.teardown(() => watcher.kill('SIGKILL'));
  let out = '';
  watcher.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await waitFor(() => out.includes('EXISTS team-a/web/a'), 15_000, 'the watch snapshot');
  t.pass('the watch follows with the token from the file');
});

t.test('rollcall agent takes --token-file', async (t) => {
  const server = await authServer(t);
  const port = await freePort();
  const writerFile = server.tokenFile('writer.token', WRITER.token);
  const agent = startAgent(
    t,
    ['--registry', server.url, '--token-file', writerFile, '-n', 'team-a', '--service', 'api', '--id', 'a1', '--address', '127.0.0.1', '--port', String(port), '--ttl', '600'],
    child(port),
  );
  const url = `${server.url}/v1/namespaces/team-a/services/api/instances/a1`;
  await waitFor(async () => (await api(url, 'GET', undefined, bearer(READER.token))).body?.status === 'up', 15_000, 'the agent registered with the token from the file');
  t.notMatch(agent.stderr(), /refused/);

  const refused = startAgent(
    t,
    ['--registry', server.url, '--token', READER.token, '-n', 'team-a', '--service', 'api', '--id', 'a2', '--address', '127.0.0.1', '--port', String(port)],
    child(port),
  );
  const { code } = await refused.exited;
  t.not(code, 0, 'a read token cannot register: the agent stops');
  t.match(refused.stderr(), /lacks the scope write:team-a/);
});
