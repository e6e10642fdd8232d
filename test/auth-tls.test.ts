// TLS (issue 13): HTTPS and WSS on one port, clients that trust a given CA, mutual TLS with the client
// certificate's CN naming a principal of the auth file, and certificates reloaded on SIGHUP by a real serve.
import { execFile } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, type PeerCertificate } from 'node:tls';
import t from 'tap';
import { createClient } from '../src/client/index.js';
import { writeAuthFile } from './auth-fixtures.js';
import { CHILD_ENV, CLI, startServer, startServerProcess, waitFor } from './helper.js';
import { haveOpenssl, makeCa, makeCert } from './tls-certs.js';

if (!haveOpenssl(t)) process.exit(0);

const dir = t.testdir();
const ca = makeCa(dir, 'ca');
const otherCa = makeCa(dir, 'other-ca');
const server1 = makeCert(dir, ca, 'server1', '127.0.0.1', true);
const server2 = makeCert(dir, ca, 'server2', '127.0.0.1', true);
const edge = makeCert(dir, ca, 'edge', 'edge.internal', false);
const stranger = makeCert(dir, ca, 'stranger', 'stranger.internal', false);
const forged = makeCert(dir, otherCa, 'forged', 'edge.internal', false);
const pem = (file: string) => readFileSync(file, 'utf8');

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: CHILD_ENV, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** The certificate a fresh TLS connection to the server presents, and whether the handshake succeeded. */
function handshake(port: number, options: { ca?: string; cert?: string; key?: string } = {}): Promise<{ ok: boolean; peer?: PeerCertificate; error?: string }> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, ...options, rejectUnauthorized: options.ca !== undefined });
    socket.once('secureConnect', () => {
      const peer = socket.getPeerCertificate();
      // With TLS 1.3 a refused client certificate arrives as an alert after the handshake: wait for it.
      socket.write('GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
      let data = '';
      socket.on('data', (d: Buffer) => (data += d.toString()));
      socket.once('close', () => resolve(data.startsWith('HTTP/1.1 200') ? { ok: true, peer } : { ok: false, error: 'closed without an answer' }));
      socket.once('error', (err) => resolve({ ok: false, error: err.message }));
    });
    socket.once('error', (err) => resolve({ ok: false, error: err.message }));
  });
}

t.test('HTTPS and WSS on one port; clients trust the given CA and refuse another', async (t) => {
  const server = await startServer(t, { config: { tlsCert: server1.cert, tlsKey: server1.key } });
  const url = `https://127.0.0.1:${server.port}`;
  const client = createClient({ url, tls: { ca: pem(ca.cert) } });
  t.teardown(() => client.close());
  const reg = await client.register({ namespace: 'default', service: 'web', id: 'a', address: '10.0.0.1', port: 80, ttlSeconds: 600 });
  t.teardown(() => reg.stop());
  t.equal((await client.listInstances('default', 'web')).items.length, 1, 'HTTPS');
  const view = client.watch({ namespace: 'default', service: 'web' });
  await waitFor(() => view.instances().length === 1, 10_000, 'the view over WSS');
  t.pass('WSS on the same port');

  const untrusting = createClient({ url, timeoutMs: 5000 });
  t.teardown(() => untrusting.close());
  await t.rejects(untrusting.listInstances('default', 'web'), { code: 'unreachable', message: /SELF_SIGNED|UNABLE_TO_VERIFY|unable to/i }, 'the system CAs do not know this one');
  const wrongCa = createClient({ url, tls: { ca: pem(otherCa.cert) }, timeoutMs: 5000 });
  t.teardown(() => wrongCa.close());
  await t.rejects(wrongCa.listInstances('default', 'web'), { code: 'unreachable' }, 'a wrong CA is refused');
  const plain = await fetch(`http://127.0.0.1:${server.port}/healthz`).then(
    () => 'answered',
    () => 'refused',
  );
  t.equal(plain, 'refused', 'plain HTTP gets no answer on the TLS port');

  const [ok, noCa] = await Promise.all([
    run(['list', 'web', '--registry', url, '--ca-file', ca.cert]),
    run(['list', 'web', '--registry', url]),
  ]);
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, /^ID\s+ADDRESS/);
  t.equal(noCa.code, 2, 'without --ca-file the CLI cannot verify the registry');
});

t.test('mutual TLS: no or a foreign client certificate is refused; the CN names the principal', async (t) => {
  const work = t.testdir();
  const authFile = writeAuthFile(work, [
    { name: 'edge', role: 'read', namespaces: ['team-a'], cn: 'edge.internal' },
    { name: 'deployer', role: 'write', namespaces: ['team-a'], token: 'tok-deployer' },
  ]);
  const server = await startServer(t, { dataDir: work, config: { tlsCert: server1.cert, tlsKey: server1.key, tlsClientCa: ca.cert, authFile } });
  const url = `https://127.0.0.1:${server.port}`;

  t.equal((await handshake(server.port, { ca: pem(ca.cert) })).ok, false, 'no client certificate: refused');
  t.equal((await handshake(server.port, { ca: pem(ca.cert), cert: pem(forged.cert), key: pem(forged.key) })).ok, false, 'a certificate from another CA: refused, whatever its CN');
  t.equal((await handshake(server.port, { ca: pem(ca.cert), cert: pem(edge.cert), key: pem(edge.key) })).ok, true, 'a certificate the CA signed: accepted');

  const asEdge = createClient({ url, tls: { ca: pem(ca.cert), cert: pem(edge.cert), key: pem(edge.key) } });
  const asStranger = createClient({ url, tls: { ca: pem(ca.cert), cert: pem(stranger.cert), key: pem(stranger.key) } });
  const asDeployer = createClient({ url, token: 'tok-deployer', tls: { ca: pem(ca.cert), cert: pem(edge.cert), key: pem(edge.key) } });
  t.teardown(() => [asEdge, asStranger, asDeployer].forEach((c) => c.close()));
  const who = await fetchWhoami(asEdge.url, { ca: ca.cert, cert: edge.cert, key: edge.key });
  t.same(who, { authenticated: true, name: 'edge', role: 'read', namespaces: ['team-a'] }, 'the CN names the principal');
  t.same((await asEdge.listInstances('team-a', 'web')).items, []);
  await t.rejects(asEdge.register({ namespace: 'team-a', service: 'web', id: 'a', address: '10.0.0.1', port: 80 }), { code: 'forbidden' });
  await t.rejects(asStranger.listInstances('team-a', 'web'), { code: 'unauthorized', message: /client certificate CN "stranger\.internal"/ });
  const reg = await asDeployer.register({ namespace: 'team-a', service: 'web', id: 'a', address: '10.0.0.1', port: 80, ttlSeconds: 600 });
  t.teardown(() => reg.stop());
  t.pass('a bearer token over the same connection names its own principal');

  const cli = await run(['list', 'web', '-n', 'team-a', '--registry', url, '--ca-file', ca.cert, '--cert', edge.cert, '--key', edge.key]);
  t.equal(cli.code, 0, cli.stderr);
  t.match(cli.stdout, /^ID\s+ADDRESS[^\n]*\na\s+10\.0\.0\.1:80/);
  const half = await run(['list', 'web', '--registry', url, '--cert', edge.cert]);
  t.equal(half.code, 1);
  t.equal(half.stderr, 'rollcall: --cert and --key go together\n');
});

/** whoami through the CLI-independent path: the library has no whoami call, so ask over https directly. */
async function fetchWhoami(url: string, files: { ca: string; cert: string; key: string }): Promise<unknown> {
  const { Agent } = await import('undici');
  const dispatcher = new Agent({ connect: { ca: pem(files.ca), cert: pem(files.cert), key: pem(files.key) } });
  try {
    const res = await fetch(`${url}/v1/auth/whoami`, { dispatcher } as RequestInit);
    return await res.json();
  } finally {
    await dispatcher.close();
  }
}

t.test('a real serve reloads its certificate on SIGHUP, keeps open connections, and keeps the old one when the new is bad', async (t) => {
  const work = t.testdir();
  const cert = `${work}/server.crt`;
  const key = `${work}/server.key`;
  copyFileSync(server1.cert, cert);
  copyFileSync(server1.key, key);
  const server = await startServerProcess(t, { dataDir: work, args: ['--tls-cert', cert, '--tls-key', key] });
  t.match(server.url, /^https:/, 'the listen line says https');
  let log = '';
  server.child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  const fingerprint = async () => (await handshake(server.port, { ca: pem(ca.cert) })).peer?.fingerprint256;
  const first = await fingerprint();
  t.ok(first);

  const client = createClient({ url: server.url, tls: { ca: pem(ca.cert) } });
  t.teardown(() => client.close());
  const view = client.watch({ namespace: 'default', service: 'web' });
  await view.ready;

  copyFileSync(server2.cert, cert);
  copyFileSync(server2.key, key);
  server.child.kill('SIGHUP');
  await waitFor(() => log.includes('TLS certificates reloaded'), 10_000, 'the reload log line');
  const second = await fingerprint();
  t.not(second, first, 'new connections get the new certificate');
  await client.putInstance('default', 'web', 'a', { address: '10.0.0.1', port: 80, ttlSeconds: 600 });
  await waitFor(() => view.instances().length === 1, 10_000, 'the watch opened before the reload still hears changes');

  writeFileSync(cert, 'not a certificate');
  server.child.kill('SIGHUP');
  await waitFor(() => log.includes('TLS certificates not reloaded'), 10_000, 'the bad-file log line');
  t.equal(await fingerprint(), second, 'the previous certificate stays in force');
  t.equal(server.child.exitCode, null);
});

t.test('bad TLS files at start: exit 1 with one line', async (t) => {
  const work = t.testdir();
  const [missing, mismatched, alone] = await Promise.all([
    run(['serve', '--port', '0', '--data-dir', work, '--tls-cert', `${work}/nope.crt`, '--tls-key', server1.key]),
    run(['serve', '--port', '0', '--data-dir', work, '--tls-cert', server1.cert, '--tls-key', server2.key]),
    run(['serve', '--port', '0', '--data-dir', work, '--tls-cert', server1.cert]),
  ]);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /^rollcall: cannot start: --tls-cert .*nope\.crt: cannot read it \(ENOENT\)\n$/);
  t.equal(mismatched.code, 1);
  t.match(mismatched.stderr, /^rollcall: cannot start: TLS: .*: [^\n]*(key values mismatch|KEY_VALUES_MISMATCH)[^\n]*\n$/);
  t.equal(alone.code, 1);
  t.match(alone.stderr, /^rollcall: Invalid configuration: tlsKey: --tls-cert and --tls-key go together\n$/);
});
