// The client library heartbeats over one shared lease stream (issue 14): asserted on the server (no HTTP heartbeat
// arrives), with "unknown" on the stream leading to a new registration, and falling back to HTTP against a
// registry that refuses the stream (an older one), then moving to the stream once it is offered.
import { once } from 'node:events';
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import t, { type Test } from 'tap';
import { createClient, RollcallClientError, type Instance } from '../src/client/index.js';
import { LeaseStream, StreamUnavailable } from '../src/client/lease-stream.js';
import { createManualClock } from '../src/registry/clock.js';
import { readFileSync } from 'node:fs';
import { child, startAgent } from './agent-process.js';
import { writeAuthFile } from './auth-fixtures.js';
import { api, freePort, PATIENCE_MS, startServer, waitFor } from './helper.js';
import { haveOpenssl, makeCa, makeCert } from './tls-certs.js';

const FAST = { minMs: 50, maxMs: 300 };
const instanceUrl = (url: string, id: string) => `${url}/v1/namespaces/default/services/web/instances/${id}`;

async function metric(url: string, pattern: RegExp): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(pattern.exec(text)?.[1] ?? 0);
}
const renewals = (url: string, transport: string) =>
  metric(url, new RegExp(`^rollcall_lease_renewals_total\\{transport="${transport}",result="ok"\\} (\\d+)$`, 'm'));
const streams = (url: string) => metric(url, /^rollcall_lease_streams (\d+)$/m);

t.test('many registrations of one client renew over one stream; no HTTP heartbeat reaches the registry', async (t) => {
  // The registry's clock stands still: no lease can run out while this machine is slow, so nothing here re-registers.
  const server = await startServer(t, { clock: createManualClock(Date.now()) });
  const client = createClient({ url: server.url, retry: FAST });
  t.teardown(() => client.close());
  const regs = await Promise.all(
    ['a', 'b', 'c', 'd'].map((id) => client.register({ service: 'web', id, address: '127.0.0.1', port: 8080, ttlSeconds: 1 })),
  );
  const errors: Error[] = [];
  for (const r of regs) r.on('error', (e) => errors.push(e));
  const expiresAt = regs.map((r) => r.instance!.expiresAt);
  await waitFor(async () => (await renewals(server.url, 'stream')) >= 12, PATIENCE_MS, 'three rounds of stream renewals');
  t.equal(await renewals(server.url, 'http'), 0, 'no HTTP heartbeat arrived');
  t.equal(await streams(server.url), 1, 'one socket for the four registrations');
  t.equal(await metric(server.url, /^rollcall_registrations_total\{result="created"\} (\d+)$/m), 4, 'registered once each, never again');
  for (const [i, r] of regs.entries()) {
    t.equal(r.registered, true);
    t.equal(r.instance!.ttlSeconds, 1);
    t.ok(r.instance!.expiresAt >= expiresAt[i]!, `${r.id}: the handle carries the renewed deadline`);
  }
  t.same(errors, []);
  // The instance answered by the registry matches what the stream acknowledged last (its deadline moves only by renewals).
  const held = (await api(instanceUrl(server.url, 'a'))).body as Instance;
  t.equal(held.ttlSeconds, 1);
  client.close();
  await waitFor(async () => (await streams(server.url)) === 0, PATIENCE_MS, 'the stream closed with the client');
});

t.test('"unknown" on the stream: the registration registers again, with its state', async (t) => {
  const server = await startServer(t, { clock: createManualClock(Date.now()) });
  const client = createClient({ url: server.url, retry: FAST });
  t.teardown(() => client.close());
  const reg = await client.register({ service: 'web', id: 'w1', address: '127.0.0.1', port: 8080, ttlSeconds: 1, zone: 'z', tags: ['x'] });
  reg.on('error', () => {});
  await waitFor(async () => (await renewals(server.url, 'stream')) >= 1, PATIENCE_MS, 'a stream renewal');
  const registered = new Promise<Instance>((resolve) => reg.once('registered', resolve));
  // The registry forgets it (as after a restart on an empty data dir): the next renewal answers instance_not_found.
  t.equal((await api(instanceUrl(server.url, 'w1'), 'DELETE')).status, 204);
  const again = await registered;
  t.match(again, { id: 'w1', zone: 'z', tags: ['x'], ttlSeconds: 1 });
  t.equal((await api(instanceUrl(server.url, 'w1'))).status, 200, 'registered again');
  t.ok((await metric(server.url, /^rollcall_lease_renewals_total\{transport="stream",result="not_found"\} (\d+)$/m)) >= 1, 'the stream said unknown');
  t.equal(await renewals(server.url, 'http'), 0, 'and no HTTP heartbeat was needed');
});

/**
 * A registry as an older version looks from outside: HTTP passes through to the real one, and an upgrade to
 * /v1/leases is answered 404 as a registry without the route answers it, until `offerStream` is set.
 */
async function olderRegistryProxy(t: Test, upstream: string) {
  const target = new URL(upstream);
  const state = { offerStream: false, refused: 0 };
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    const out = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (up: IncomingMessage) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    out.on('error', () => res.destroy());
    req.pipe(out);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    if (!state.offerStream && req.url?.startsWith('/v1/leases')) {
      state.refused++;
      const body = JSON.stringify({ error: 'not_found', message: `No route ${req.method} /v1/leases.` });
      socket.end(`HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
      return;
    }
    const up = connect(Number(target.port), target.hostname, () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      up.write(`${lines.join('\r\n')}\r\n\r\n`);
      up.write(head);
      socket.pipe(up).pipe(socket);
    });
    up.on('error', () => socket.destroy());
    socket.on('error', () => up.destroy());
    sockets.add(up);
    up.on('close', () => sockets.delete(up));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, state };
}

t.test('a registry that refuses the stream gets HTTP heartbeats; once it offers the stream the client moves to it', async (t) => {
  const server = await startServer(t, { clock: createManualClock(Date.now()) });
  const proxy = await olderRegistryProxy(t, server.url);
  const client = createClient({ url: proxy.url, retry: FAST });
  t.teardown(() => client.close());
  const regs = await Promise.all(['a', 'b'].map((id) => client.register({ service: 'web', id, address: '127.0.0.1', port: 8080, ttlSeconds: 1 })));
  const errors: Error[] = [];
  for (const r of regs) r.on('error', (e) => errors.push(e));
  await waitFor(async () => (await renewals(server.url, 'http')) >= 6, PATIENCE_MS, 'HTTP heartbeats');
  t.equal(await renewals(server.url, 'stream'), 0, 'nothing over the stream');
  t.ok(proxy.state.refused >= 2, `the stream was tried again after being refused (${proxy.state.refused} upgrades refused)`);
  t.same(errors, [], 'the fallback is silent: the heartbeats succeed');
  t.ok(regs.every((r) => r.registered));

  proxy.state.offerStream = true;
  await waitFor(async () => (await renewals(server.url, 'stream')) >= 4, PATIENCE_MS, 'renewals over the stream once offered');
  const http = await renewals(server.url, 'http');
  await waitFor(async () => (await renewals(server.url, 'stream')) >= 10, PATIENCE_MS, 'more renewals over the stream');
  t.equal(await renewals(server.url, 'http'), http, 'and no more over HTTP');
  t.equal(await metric(server.url, /^rollcall_registrations_total\{result="created"\} (\d+)$/m), 2, 'never registered again');
  t.same(errors, []);
});

t.test('a registry that drops the stream: renewals go over HTTP at once, and the stream is opened again', async (t) => {
  const server = await startServer(t, { clock: createManualClock(Date.now()) });
  const client = createClient({ url: server.url, retry: FAST });
  t.teardown(() => client.close());
  const reg = await client.register({ service: 'web', id: 'a', address: '127.0.0.1', port: 8080, ttlSeconds: 1 });
  const errors: Error[] = [];
  reg.on('error', (e) => errors.push(e));
  await waitFor(async () => (await renewals(server.url, 'stream')) >= 1, PATIENCE_MS, 'a stream renewal');
  // Cut every lease stream from the server's side, as a registry restarting or a proxy timing out would.
  for (const ws of server.app.websocketServer.clients) ws.terminate();
  const before = await renewals(server.url, 'stream');
  await waitFor(async () => (await renewals(server.url, 'stream')) >= before + 3, PATIENCE_MS, 'stream renewals again');
  t.equal(await streams(server.url), 1, 'on a new socket');
  t.same(errors, [], 'no renewal was lost to the cut');
  t.equal(await metric(server.url, /^rollcall_registrations_total\{result="created"\} (\d+)$/m), 1);
});

t.test('leaseStream: false heartbeats over HTTP only', async (t) => {
  const server = await startServer(t, { clock: createManualClock(Date.now()) });
  const client = createClient({ url: server.url, retry: FAST, leaseStream: false });
  t.teardown(() => client.close());
  await client.register({ service: 'web', id: 'a', address: '127.0.0.1', port: 8080, ttlSeconds: 1 });
  await waitFor(async () => (await renewals(server.url, 'http')) >= 2, PATIENCE_MS, 'HTTP heartbeats');
  t.equal(await renewals(server.url, 'stream'), 0);
  t.equal(await streams(server.url), 0, 'no socket opened');
});

t.test('rollcall agent heartbeats over the lease stream', async (t) => {
  const server = await startServer(t, { clock: createManualClock(Date.now()) });
  const port = await freePort();
  startAgent(t, ['--registry', server.url, '--service', 'api', '--id', 'a1', '--address', '127.0.0.1', '--port', String(port), '--ttl', '1'], child(port));
  await waitFor(async () => (await renewals(server.url, 'stream')) >= 3, PATIENCE_MS, 'the agent renewing over the stream');
  t.equal(await renewals(server.url, 'http'), 0, 'no HTTP heartbeat');
  t.equal(await streams(server.url), 1);
  t.equal((await api(`${server.url}/v1/namespaces/default/services/api/instances/a1`)).status, 200);
});

t.test('over TLS (wss) with a scoped token: the stream carries the client\'s credential and CA', async (t) => {
  if (!haveOpenssl(t)) return;
  const dir = t.testdir();
  const ca = makeCa(dir, 'ca');
  const cert = makeCert(dir, ca, 'server', '127.0.0.1', true);
  const authFile = writeAuthFile(dir, [{ name: 'deployer', role: 'write', namespaces: ['team-a'], token: 'tok-deployer' }]);
  const server = await startServer(t, { dataDir: dir, clock: createManualClock(Date.now()), config: { tlsCert: cert.cert, tlsKey: cert.key, authFile } });
  // Read in process: the metrics route is open, and this keeps the test's own fetch free of TLS settings.
  const count = async (pattern: RegExp) => Number(pattern.exec((await server.app.inject({ url: '/metrics' })).body)?.[1] ?? 0);
  const client = createClient({ url: `https://127.0.0.1:${server.port}`, token: 'tok-deployer', tls: { ca: readFileSync(ca.cert, 'utf8') }, retry: FAST });
  t.teardown(() => client.close());
  const reg = await client.register({ namespace: 'team-a', service: 'web', id: 'a', address: '10.0.0.1', port: 80, ttlSeconds: 1 });
  const errors: Error[] = [];
  reg.on('error', (e) => errors.push(e));
  await waitFor(async () => (await count(/^rollcall_lease_renewals_total\{transport="stream",result="ok"\} (\d+)$/m)) >= 3, PATIENCE_MS, 'stream renewals over wss');
  t.equal(await count(/^rollcall_lease_renewals_total\{transport="http",result="ok"\} (\d+)$/m), 0, 'none over HTTPS');
  t.same(errors, []);
});

t.test('renewals due together are split into messages the registry accepts (1000 instances, 64 KiB)', async (t) => {
  const server = await startServer(t);
  const leases = new LeaseStream({ baseUrl: server.url, timeoutMs: PATIENCE_MS, retry: FAST });
  t.teardown(() => leases.close());
  // 2,500 renewals in one turn with the longest names there are: ~650 KB of keys, far over one frame.
  const service = 's'.repeat(63);
  const ids = Array.from({ length: 2500 }, (_, i) => `${String(i).padStart(6, '0')}${'x'.repeat(122)}`);
  const outcomes = await Promise.allSettled(ids.map((id) => leases.renew('default', service, id)));
  const reasons = outcomes.map((o) => (o.status === 'rejected' ? o.reason : undefined));
  t.equal(reasons.filter((r) => r instanceof StreamUnavailable).length, 0, 'none fell back: every frame was accepted');
  t.ok(reasons.every((r) => r instanceof RollcallClientError && r.code === 'instance_not_found' && r.status === 404), 'each got the registry\'s answer: unknown');
  t.equal(await streams(server.url), 1, 'on one stream');
});
