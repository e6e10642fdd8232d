// The auth file: its checks (one line per bad file), `rollcall token create`, a bad file at start (exit 1) and
// SIGHUP reloads of a real `rollcall serve` that keep open watches and keep the old file when the new one is bad.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import t from 'tap';
import WebSocket from 'ws';
import { loadAuthFile } from '../src/auth/auth-file.js';
import { missingScope, namespaceMatches } from '../src/auth/rules.js';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { serverLoggerOptions } from '../src/server.js';
import { authFileText, bearer, writeAuthFile } from './auth-fixtures.js';
import { api, CHILD_ENV, CLI, startServerProcess, waitFor } from './helper.js';

function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...CHILD_ENV, ...env }, timeout: 15_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const SHA = 'a'.repeat(64);

t.test('a bad auth file is refused with one line naming the file and each problem', async (t) => {
  const dir = t.testdir();
  const cases: [string, RegExp][] = [
    ['tokens: [ {name: a', /not valid YAML/],
    ['tokens:\n  - {name: a, role: read, namespaces: [x], sha256: "' + SHA + '"}\ntokens: []\n', /not valid YAML: Map keys must be unique/],
    ['- just a list', /file: Invalid input: expected object/],
    ['tokens:\n  - {name: a, role: root, namespaces: [x], sha256: "' + SHA + '"}', /tokens\.0\.role: Invalid option/],
    ['tokens:\n  - {name: a, role: read, namespaces: [], sha256: "' + SHA + '"}', /tokens\.0\.namespaces: must list at least one namespace/],
    ['tokens:\n  - {name: a, role: read, namespaces: [Team_A], sha256: "' + SHA + '"}', /tokens\.0\.namespaces\.0: must be a namespace name or a glob/],
    ['tokens:\n  - {name: a, role: read, namespaces: [x], sha256: "abc"}', /tokens\.0\.sha256: must be the hex SHA-256/],
    ['tokens:\n  - {name: a, role: read, namespaces: [x]}', /tokens\.0: needs sha256 \(a token\) or cn/],
    ['tokens:\n  - {name: a, role: read, namespace: [x], sha256: "' + SHA + '"}', /Unrecognized key: "namespace"/],
    [
      'tokens:\n  - {name: a, role: read, namespaces: [x], sha256: "' + SHA + '"}\n  - {name: a, role: read, namespaces: [x], sha256: "' + SHA.toUpperCase() + '"}',
      /tokens\.1\.name: repeats name "a"; tokens\.1\.sha256: repeats sha256 "aaaaaaaa…"/,
    ],
  ];
  for (const [i, [text, message]] of cases.entries()) {
    const file = join(dir, `bad-${i}.yaml`);
    writeFileSync(file, text);
    t.throws(() => loadAuthFile(file), { code: 'bad_request', message }, text.split('\n')[0] ?? '');
    try {
      loadAuthFile(file);
    } catch (err) {
      t.match((err as Error).message, new RegExp(`^auth file ${file}: [^\\n]+$`), 'one line that names the file');
    }
  }
  t.throws(() => loadAuthFile(join(dir, 'missing.yaml')), { message: /auth file .*missing\.yaml: cannot read it \(ENOENT\)/ });
  const ok = join(dir, 'ok.yaml');
  writeFileSync(ok, 'tokens: []\n');
  t.same(loadAuthFile(ok), [], 'an empty list is a valid file: only ROLLCALL_TOKEN (if any) gets in');
});

t.test('namespace globs and the scope rules', async (t) => {
  t.ok(namespaceMatches('team-*', 'team-a'));
  t.ok(namespaceMatches('team-*', 'team-'));
  t.notOk(namespaceMatches('team-*', 'xteam-a'));
  t.ok(namespaceMatches('*-prod', 'shop-prod'));
  t.ok(namespaceMatches('a*b*c', 'a-x-b-y-c'));
  t.notOk(namespaceMatches('team-a', 'team-ab'));
  const reader = { name: 'r', role: 'read' as const, namespaces: ['team-*'] };
  t.equal(missingScope(reader, 'read', 'team-a'), null);
  t.equal(missingScope(reader, 'write', 'team-a'), 'write:team-a');
  t.equal(missingScope(reader, 'read', 'other'), 'read:other');
  t.equal(missingScope(reader, 'read', undefined), 'read:*', 'a glob is not every namespace');
  const admin = { name: 'a', role: 'admin' as const, namespaces: ['*'] };
  t.equal(missingScope(admin, 'admin', undefined), null);
  t.equal(missingScope({ ...admin, namespaces: ['team-a'] }, 'write', 'other'), 'write:other', 'an admin entry is bound by its namespaces too');
});

t.test('token create prints a token once and the line to paste; a registry started with it accepts the token', async (t) => {
  const created = await run(['token', 'create', '--name', 'deployer', '--role', 'write', '--namespace', 'team-a', '--namespace', 'shop-*']);
  t.equal(created.code, 0, created.stderr);
  const [token, line, ...rest] = created.stdout.split('\n');
  t.same(rest, [''], 'two lines on stdout');
  t.match(token, /^rc_[A-Za-z0-9_-]{43}$/);
  t.match(line, /^ {2}- \{ name: "deployer", role: write, namespaces: \["team-a", "shop-\*"\], sha256: "[0-9a-f]{64}" \}$/);
  t.notOk(line!.includes(token!), 'the entry holds only the digest');
  t.match(created.stderr, /shown only now/);
  const again = await run(['token', 'create', '--name', 'deployer', '--role', 'write', '--namespace', 'team-a']);
  t.not(again.stdout.split('\n')[0], token, 'a new random token each time');

  const dir = t.testdir();
  const file = join(dir, 'auth.yaml');
  writeFileSync(file, `tokens:\n${line}\n`);
  const server = await startServerProcess(t, { dataDir: dir, args: ['--auth-file', file] });
  const put = await api(`${server.url}/v1/namespaces/team-a/services/web/instances/a`, 'PUT', { address: '10.0.0.1', port: 80 }, bearer(token!));
  t.equal(put.status, 201);
  const other = await api(`${server.url}/v1/namespaces/other/services/web/instances/a`, 'PUT', { address: '10.0.0.1', port: 80 }, bearer(token!));
  t.equal(other.status, 403);

  for (const [args, message] of [
    [['--name', 'x', '--role', 'read'], /give --namespace at least once/],
    [['--name', 'bad name', '--role', 'read', '--namespace', 'a'], /--name: must be 1-64 characters/],
    [['--name', 'x', '--role', 'root', '--namespace', 'a'], /argument 'root' is invalid/],
    [['--name', 'x', '--role', 'read', '--namespace', 'UPPER'], /--namespace: must be a namespace name or a glob/],
  ] as const) {
    const bad = await run(['token', 'create', ...args]);
    t.equal(bad.code, 1, `${args.join(' ')} exits 1`);
    t.match(bad.stderr, message);
    t.equal(bad.stdout, '', 'no token printed');
  }
});

t.test('serve with a bad auth file exits 1 with one line', async (t) => {
  const dir = t.testdir();
  const file = join(dir, 'auth.yaml');
  writeFileSync(file, 'tokens:\n  - {name: a, role: root, namespaces: [x], sha256: "' + SHA + '"}\n');
  const res = await run(['serve', '--port', '0', '--data-dir', dir, '--auth-file', file]);
  t.equal(res.code, 1);
  t.match(res.stderr, new RegExp(`^rollcall: cannot start: auth file ${file}: tokens\\.0\\.role: Invalid option[^\\n]*\\n$`));
  const missing = await run(['serve', '--port', '0', '--data-dir', dir, '--auth-file', join(dir, 'nope.yaml')]);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /^rollcall: cannot start: auth file .*nope\.yaml: cannot read it \(ENOENT\)\n$/);
  const protect = await run(['serve', '--port', '0', '--data-dir', dir, '--protect-ops']);
  t.equal(protect.code, 1);
  t.match(protect.stderr, /^rollcall: Invalid configuration: protectOps: needs ROLLCALL_TOKEN or --auth-file/);
});

t.test('SIGHUP reloads the auth file without dropping a watch; a bad file is logged and the old one kept', async (t) => {
  const dir = t.testdir();
  const file = writeAuthFile(dir, [
    { name: 'old', role: 'write', namespaces: ['team-a'], token: 'tok-old' },
    { name: 'watcher', role: 'read', namespaces: ['team-a'], token: 'tok-watcher' },
  ]);
  const server = await startServerProcess(t, { dataDir: dir, args: ['--auth-file', file] });
  let log = '';
  server.child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  const instance = (id: string) => `${server.url}/v1/namespaces/team-a/services/web/instances/${id}`;
  const register = (id: string, token: string) => api(instance(id), 'PUT', { address: '10.0.0.1', port: 80 }, bearer(token));

  const messages: any[] = [];
  const ws = new WebSocket(`ws://127.0.0.1:${server.port}/v1/watch?namespace=team-a`, { headers: bearer('tok-watcher') });
  ws.on('message', (d) => messages.push(JSON.parse(d.toString())));
  let closed = false;
  ws.on('close', () => (closed = true));
  await waitFor(() => messages.some((m) => m.type === 'SNAPSHOT'), 10_000, 'snapshot');
  t.equal((await register('a', 'tok-old')).status, 201);

  writeFileSync(
    file,
    authFileText([
      { name: 'new', role: 'write', namespaces: ['team-a'], token: 'tok-new' },
      { name: 'watcher', role: 'read', namespaces: ['team-a'], token: 'tok-watcher' },
    ]),
  );
  server.child.kill('SIGHUP');
  await waitFor(() => log.includes('auth reloaded: 2 principals'), 10_000, 'reload log line');
  t.equal((await register('b', 'tok-new')).status, 201, 'the new token works');
  t.equal((await register('c', 'tok-old')).status, 401, 'the removed token no longer does');
  await waitFor(() => messages.some((m) => m.type === 'ADDED' && m.instance.id === 'b'), 10_000, 'the watch hears the write after the reload');
  t.notOk(closed, 'the open watch was not dropped');

  writeFileSync(file, 'tokens: [ {name: broken');
  server.child.kill('SIGHUP');
  await waitFor(() => log.includes('auth not reloaded'), 10_000, 'bad-file log line');
  t.match(log, /auth not reloaded, the previous credentials stay in force: auth file .*auth\.yaml: not valid YAML/);
  t.equal((await register('d', 'tok-new')).status, 201, 'the previous credentials stay in force');
  t.notOk(closed);
  t.equal(server.child.exitCode, null, 'still running');
  ws.close();
});

t.test('the Authorization header is censored from every log line', async (t) => {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  const app = await buildApp({ config: loadConfig({ dataDir: ':memory:', token: 'top-secret' }), logger: { ...serverLoggerOptions({ logLevel: 'info' }), stream } });
  t.teardown(() => app.close());
  await app.ready();
  // However a line comes to include request headers (a plugin, a debug line, an error with its request).
  app.log.info({ req: { headers: { authorization: 'Bearer top-secret', cookie: 'sid=top-secret' } } }, 'request');
  app.log.info({ headers: { authorization: 'Bearer top-secret' } }, 'headers');
  app.log.error({ request: { headers: { authorization: 'Bearer top-secret' } } }, 'failed');
  app.log.warn({ upstream: { headers: { authorization: 'Bearer top-secret' } } }, 'nested');
  t.equal(lines.length, 4);
  t.notOk(lines.some((l) => l.includes('top-secret')), 'no line carries the token');
  // `req` goes through Fastify's request serializer, which keeps no headers at all; the others are censored.
  t.ok(lines.slice(1).every((l) => l.includes('"authorization":"[redacted]"')), 'the others say it was redacted');
});
