// Issue 15's CLI promises: --version from package.json, a verb for every API operation (patch, drain, undrain,
// weight), a missing argument named as such, template errors as bad input, /v1 registry URLs, and a start line
// for people.
import { execFile, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { api, CHILD_ENV, CLI, PATIENCE_MS, startServer, waitFor } from './helper.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const PKG_VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

function rollcall(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...CHILD_ENV, ...env }, timeout: 2 * PATIENCE_MS }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

t.test('--version and -V print the version in package.json', async (t) => {
  for (const flag of ['--version', '-V']) {
    const r = await rollcall([flag]);
    t.equal(r.code, 0);
    t.equal(r.stdout, `${PKG_VERSION}\n`, flag);
  }
});

t.test('patch, drain, undrain, weight change a registered instance', async (t) => {
  const server = await startServer(t);
  const url = `${server.url}/v1/namespaces/default/services/web/instances/w1`;
  await api(url, 'PUT', { address: '10.0.0.1', port: 80, ttlSeconds: 3600 });
  const env = { ROLLCALL_URL: server.url };

  const patched = await rollcall(['patch', 'web', 'w1', '--status', 'starting', '--weight', '7', '--zone', 'eu-1a', '--tag', 'a', '--tag', 'b', '--meta', 'v=2', '--ttl', '600'], env);
  t.equal(patched.code, 0, patched.stderr);
  t.match(patched.stdout, /^updated default\/web\/w1: starting, weight 7, zone eu-1a, ttl 600s \(revision \d+\)\n$/);
  t.match((await api(url)).body, { status: 'starting', weight: 7, zone: 'eu-1a', tags: ['a', 'b'], metadata: { v: '2' }, ttlSeconds: 600 });

  t.equal((await rollcall(['drain', 'web', 'w1'], env)).code, 0);
  t.equal((await api(url)).body.status, 'draining');
  t.equal((await rollcall(['undrain', 'web', 'w1'], env)).code, 0);
  t.equal((await api(url)).body.status, 'up');
  const weighted = await rollcall(['weight', 'web', 'w1', '0', '--json'], env);
  t.match(JSON.parse(weighted.stdout), { id: 'w1', weight: 0 });
  t.equal((await rollcall(['patch', 'web', 'w1', '--zone', ''], env)).code, 0);
  t.equal((await api(url)).body.zone, null, '--zone "" clears the zone');

  const missing = await rollcall(['drain', 'web', 'nope'], env);
  t.equal(missing.code, 3, 'not registered: exit 3');
  const nothing = await rollcall(['patch', 'web', 'w1'], env);
  t.equal(nothing.code, 1);
  t.match(nothing.stderr, /nothing to change/);
  const badWeight = await rollcall(['weight', 'web', 'w1', '300'], env);
  t.equal(badWeight.code, 1);
  t.match(badWeight.stderr, /must be an integer from 0 to 256/);
});

t.test('a missing positional argument is reported as such, before any missing option', async (t) => {
  const noId = await rollcall(['register', 'web']);
  t.equal(noId.code, 1);
  t.match(noId.stderr, /^error: missing required argument 'id'/);
  const noPort = await rollcall(['register', 'web', 'w1']);
  t.equal(noPort.code, 1);
  t.match(noPort.stderr, /^error: required option '--port <port>' not specified/);
  const patchNoId = await rollcall(['patch', 'web']);
  t.match(patchNoId.stderr, /^error: missing required argument 'id'/);
});

t.test('a --registry URL ending in /v1 works; one with a query is refused', async (t) => {
  const server = await startServer(t);
  await api(`${server.url}/v1/namespaces/default/services/web/instances/w1`, 'PUT', { address: '10.0.0.1', port: 80, ttlSeconds: 3600 });
  for (const suffix of ['/v1', '/v1/', '/']) {
    const r = await rollcall(['get', 'web', 'w1', '--json', '--registry', `${server.url}${suffix}`]);
    t.equal(r.code, 0, `${suffix}: ${r.stderr}`);
    t.match(JSON.parse(r.stdout), { id: 'w1' });
  }
  const viaEnv = await rollcall(['services', '--json'], { ROLLCALL_URL: `${server.url}/v1` });
  t.equal(viaEnv.code, 0, viaEnv.stderr);
  const query = await rollcall(['services', '--registry', `${server.url}/?x=1`]);
  t.equal(query.code, 1);
  t.match(query.stderr, /--registry.*without \?query/);
});

t.test('an error inside a user template exits 1 (bad input), not 4', async (t) => {
  const server = await startServer(t);
  await api(`${server.url}/v1/namespaces/default/services/web/instances/w1`, 'PUT', { address: '10.0.0.1', port: 80, ttlSeconds: 3600 });
  const template = join(t.testdir(), 'broken.eta');
  writeFileSync(template, '<%= it.instances[0].nothing.here %>\n');
  const r = await rollcall(['render', 'template', '--template', template, '--registry', server.url]);
  t.equal(r.code, 1, r.stderr);
  t.match(r.stderr, /^rollcall: .*broken\.eta/);
  t.equal(r.stdout, '');
});

t.test('serve says, for a person, where it listens, where the docs are, the data dir and the version', async (t) => {
  const dataDir = t.testdir();
  const child = spawn(process.execPath, [CLI, 'serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', dataDir], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: CHILD_ENV,
  });
  t.teardown(() => void child.kill('SIGKILL'));
  let stderr = '';
  let stdout = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  const line = await waitFor(() => /^rollcall .*\n/.exec(stderr)?.[0], PATIENCE_MS, 'the start line');
  const m = /^rollcall (\S+) listening on (http:\/\/127\.0\.0\.1:(\d+)); API \2\/v1, docs \2\/docs, dashboard \2\/ui; data in (\S+); no token: anyone who reaches it can write\n$/.exec(line);
  t.ok(m, line);
  t.equal(m?.[1], PKG_VERSION);
  t.equal(m?.[4], dataDir);
  t.equal((await fetch(`${m?.[2]}/docs/`)).status, 200, 'the docs URL answers');
  // The JSON log for machines stays, with the same facts.
  await waitFor(() => stdout.includes('"msg":"rollcall ready"'), PATIENCE_MS, 'the JSON record');
  const record = JSON.parse(stdout.split('\n').find((l) => l.includes('"msg":"rollcall ready"')) ?? '{}') as Record<string, unknown>;
  t.match(record, { version: PKG_VERSION, url: m?.[2], docs: `${m?.[2]}/docs`, dataDir });
});
