// Lease renewals without a request each (issue 14): the lease stream (GET /v1/leases, WebSocket) and the batch
// route (POST /v1/leases/renew), on real servers over real sockets. Every heartbeat rule applies per instance:
// unknown → instance_not_found, the credential's write scope on the instance's namespace, no revision, no event.
import t from 'tap';
import WebSocket from 'ws';
import { bearer, writeAuthFile, type TestPrincipal } from './auth-fixtures.js';
import { api, PATIENCE_MS, startServer, waitFor } from './helper.js';
import { changes, openWatch } from './watch-client.js';

const BODY = { address: '10.0.0.1', port: 8080, ttlSeconds: 3600 };
const instanceUrl = (url: string, ns: string, service: string, id: string) => `${url}/v1/namespaces/${ns}/services/${service}/instances/${id}`;

interface LeaseStream {
  socket: WebSocket;
  messages: any[];
  closed: { code: number; reason: string } | undefined;
  /** Sends a RENEW with this seq and resolves with the answer (RENEWED or ERROR) that carries it. */
  renew(seq: number, instances: string[]): Promise<any>;
  /** Waits for the answer that carries seq. */
  answer(seq: number): Promise<any>;
  waitClosed(): Promise<{ code: number; reason: string }>;
}

async function openLeaseStream(url: string, headers: Record<string, string> = {}, options: WebSocket.ClientOptions = {}): Promise<LeaseStream> {
  const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/leases`, { headers, ...options });
  const stream: LeaseStream = {
    socket,
    messages: [],
    closed: undefined,
    answer: (seq) => waitFor(() => stream.messages.find((m) => m.seq === seq), PATIENCE_MS, `answer ${seq}`),
    renew(seq, instances) {
      socket.send(JSON.stringify({ type: 'RENEW', seq, instances }));
      return stream.answer(seq);
    },
    waitClosed: () => waitFor(() => stream.closed, PATIENCE_MS, 'lease stream close'),
  };
  socket.on('message', (data) => stream.messages.push(JSON.parse(data.toString())));
  socket.on('close', (code, reason) => (stream.closed = { code, reason: reason.toString() }));
  socket.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })));
  });
  return stream;
}

async function renewalCounts(url: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const counts: Record<string, number> = {};
  for (const m of text.matchAll(/^rollcall_lease_renewals_total\{transport="(\w+)",result="(\w+)"\} (\d+)$/gm)) counts[`${m[1]}:${m[2]}`] = Number(m[3]);
  return counts;
}

t.test('one stream renews many instances of many services; a renewal is no revision and no event', async (t) => {
  const { url, registry } = await startServer(t);
  const keys: string[] = [];
  for (let i = 0; i < 300; i++) {
    const service = `svc-${i % 3}`;
    t.equal((await api(instanceUrl(url, 'default', service, `i-${i}`), 'PUT', BODY)).status, 201);
    keys.push(`default/${service}/i-${i}`);
  }
  const before = (await api(instanceUrl(url, 'default', 'svc-0', 'i-0'))).body;
  const revision = registry.revision;
  const watch = await openWatch(url, { namespace: 'default' });
  await watch.until((m) => m.some((x) => x.type === 'SNAPSHOT'));

  const stream = await openLeaseStream(url);
  // Three messages of 100 sent together, then all 300 at once.
  const answers = await Promise.all([0, 1, 2].map((n) => stream.renew(n + 1, keys.slice(n * 100, n * 100 + 100))));
  for (const [n, answer] of answers.entries()) {
    t.equal(answer.type, 'RENEWED', `message ${n + 1} renewed`);
    t.same(answer.results.map((r: any) => r.instance), keys.slice(n * 100, n * 100 + 100), 'one result per instance, in order');
  }
  const all = await stream.renew(4, keys);
  t.equal(all.results.length, 300);
  t.ok(all.results.every((r: any) => r.ttlSeconds === 3600 && typeof r.expiresAt === 'string' && r.error === undefined), 'every one renewed');
  t.ok(Date.parse(all.results[0].expiresAt) >= Date.parse(before.expiresAt), 'the deadline moved forward (or stayed, within the same ms)');
  const after = (await api(instanceUrl(url, 'default', 'svc-0', 'i-0'))).body;
  t.equal(after.expiresAt, all.results[0].expiresAt, 'the acknowledgement carries the deadline the registry holds');
  t.equal(after.revision, before.revision, 'the instance did not change');
  t.equal(registry.revision, revision, 'no revision');
  // A write after the renewals: the watcher's next change is that write, so no renewal was published before it.
  await api(instanceUrl(url, 'default', 'marker', 'm'), 'PUT', BODY);
  const seen = await watch.until((m) => changes(m).length >= 1);
  t.same(changes(seen).map((e) => e.instance.id), ['m'], 'watchers saw no event for 600 renewals');
  watch.close();
  const counts = await renewalCounts(url);
  t.equal(counts['stream:ok'], 600, 'counted as stream renewals');
  t.equal(counts['http:ok'], undefined, 'and none as HTTP heartbeats');
  stream.socket.close();
});

t.test('an unknown instance is answered "instance_not_found: register again"; the stream goes on', async (t) => {
  const { url } = await startServer(t);
  await api(instanceUrl(url, 'default', 'web', 'a'), 'PUT', BODY);
  await api(instanceUrl(url, 'default', 'web', 'gone'), 'PUT', BODY);
  t.equal((await api(instanceUrl(url, 'default', 'web', 'gone'), 'DELETE')).status, 204);
  const stream = await openLeaseStream(url);
  const answer = await stream.renew(1, ['default/web/a', 'default/web/gone', 'default/web/never', 'other/web/a']);
  t.match(answer.results, [
    { instance: 'default/web/a', ttlSeconds: 3600 },
    { instance: 'default/web/gone', error: 'instance_not_found', status: 404, message: /register it again/ },
    { instance: 'default/web/never', error: 'instance_not_found', status: 404 },
    { instance: 'other/web/a', error: 'instance_not_found', status: 404 },
  ]);
  t.equal(answer.results[0].error, undefined);
  // Registered again, it renews on the same stream.
  await api(instanceUrl(url, 'default', 'web', 'gone'), 'PUT', BODY);
  const again = await stream.renew(2, ['default/web/gone']);
  t.match(again.results, [{ instance: 'default/web/gone', ttlSeconds: 3600 }]);
  t.equal(stream.closed, undefined, 'still open');
  const counts = await renewalCounts(url);
  t.equal(counts['stream:not_found'], 3);
  t.equal(counts['stream:ok'], 2);
  stream.socket.close();
});

const P = {
  writer: { name: 'writer', role: 'write', namespaces: ['team-a', 'shop-*'], token: 'tok-writer' },
  reader: { name: 'reader', role: 'read', namespaces: ['*'], token: 'tok-reader' },
  admin: { name: 'admin', role: 'admin', namespaces: ['*'], token: 'tok-admin' },
} satisfies Record<string, TestPrincipal>;

t.test('scopes: each instance is checked against the token\'s namespaces, as PUT …/heartbeat is', async (t) => {
  const dir = t.testdir();
  const authFile = writeAuthFile(dir, Object.values(P));
  const { url } = await startServer(t, { dataDir: dir, config: { authFile } });
  for (const ns of ['team-a', 'shop-eu', 'other']) {
    t.equal((await api(instanceUrl(url, ns, 'web', 'a'), 'PUT', BODY, bearer(P.admin.token))).status, 201);
  }
  const keys = ['team-a/web/a', 'other/web/a', 'shop-eu/web/a', 'team-a/web/unknown'];
  const expected = [
    { instance: 'team-a/web/a', ttlSeconds: 3600 },
    { instance: 'other/web/a', error: 'forbidden', status: 403, message: /"writer".*lacks the scope write:other/ },
    { instance: 'shop-eu/web/a', ttlSeconds: 3600 },
    { instance: 'team-a/web/unknown', error: 'instance_not_found', status: 404 },
  ];
  // The single-instance route agrees on each.
  t.equal((await api(`${instanceUrl(url, 'other', 'web', 'a')}/heartbeat`, 'PUT', undefined, bearer(P.writer.token))).status, 403);
  t.equal((await api(`${instanceUrl(url, 'team-a', 'web', 'a')}/heartbeat`, 'PUT', undefined, bearer(P.writer.token))).status, 200);

  const stream = await openLeaseStream(url, bearer(P.writer.token));
  const answer = await stream.renew(1, keys);
  t.match(answer.results, expected, 'stream: renewed in scope, forbidden out of it, unknown still unknown');
  t.equal(answer.results[0].error, undefined);
  stream.socket.close();

  const batch = await api(`${url}/v1/leases/renew`, 'POST', { instances: keys }, bearer(P.writer.token));
  t.equal(batch.status, 200);
  t.match(batch.body.results, expected, 'batch: the same answers');

  // The stream and the batch need a credential with the write role at all; who has none is refused before the upgrade.
  for (const [who, headers, status] of [
    ['no token', {}, 401],
    ['a wrong token', bearer('nope'), 401],
    ['a read-only token', bearer(P.reader.token), 403],
  ] as const) {
    const err = await openLeaseStream(url, headers).then(
      () => undefined,
      (e: { status?: number }) => e,
    );
    t.equal(err?.status, status, `stream with ${who}: ${status}`);
    t.equal((await api(`${url}/v1/leases/renew`, 'POST', { instances: keys }, headers)).status, status, `batch with ${who}: ${status}`);
  }
  const counts = await renewalCounts(url);
  t.equal(counts['stream:forbidden'], 1);
  t.equal(counts['batch:forbidden'], 1);
});

t.test('malformed messages get an ERROR and the stream stays open; garbage floods and oversized frames close it', async (t) => {
  const { url } = await startServer(t);
  await api(instanceUrl(url, 'default', 'web', 'a'), 'PUT', BODY);
  const stream = await openLeaseStream(url);
  const next = async (send: () => void) => {
    const count = stream.messages.length;
    send();
    return waitFor(() => stream.messages[count], PATIENCE_MS, 'an answer');
  };
  t.match(await next(() => stream.socket.send('{"type":"RENEW",')), { type: 'ERROR', code: 'invalid_json', message: /not valid JSON/ });
  t.match(await next(() => stream.socket.send(Buffer.from('{}'), { binary: true })), { type: 'ERROR', code: 'bad_request', message: /text/ });
  const cases: [string, unknown, RegExp][] = [
    ['an unknown type', { type: 'KEEPALIVE', seq: 5, instances: ['default/web/a'] }, /message\.type/],
    ['no instances', { type: 'RENEW', seq: 6, instances: [] }, /message\.instances/],
    ['a key that is not namespace/service/id', { type: 'RENEW', seq: 7, instances: ['default/web/a', 'default/web'] }, /message\.instances\.1 must be "namespace\/service\/id"/],
    ['an upper-case namespace', { type: 'RENEW', seq: 8, instances: ['Default/web/a'] }, /message\.instances\.0/],
    ['the id ".."', { type: 'RENEW', seq: 9, instances: ['default/web/..'] }, /message\.instances\.0/],
    ['too many instances', { type: 'RENEW', seq: 10, instances: Array.from({ length: 1001 }, (_, i) => `default/web/i-${i}`) }, /message\.instances/],
    ['an unknown field', { type: 'RENEW', seq: 11, instances: ['default/web/a'], ttl: 5 }, /ttl/],
    ['a seq that is not a number', { type: 'RENEW', seq: 'x', instances: ['default/web/a'] }, /message\.seq/],
  ];
  for (const [what, message, match] of cases) {
    const answer = await next(() => stream.socket.send(JSON.stringify(message)));
    t.match(answer, { type: 'ERROR', code: 'validation_failed', message: match }, what);
    t.ok(Array.isArray(answer.details) && answer.details.length > 0, `${what}: details name the fields`);
    const seq = (message as { seq: unknown }).seq;
    if (typeof seq === 'number') t.equal(answer.seq, seq, `${what}: the seq is echoed`);
  }
  // Ten bad messages: the whole burst allowance, and not one more.
  t.equal(stream.closed, undefined, 'one bad message at a time does not close the stream');
  t.match(await stream.renew(100, ['default/web/a']), { type: 'RENEWED', results: [{ instance: 'default/web/a', ttlSeconds: 3600 }] }, 'and renewals still work');
  stream.socket.close();

  // A client that only sends garbage is cut with 1008 once its allowance is spent.
  const flood = await openLeaseStream(url);
  for (let i = 0; i < 100 && flood.socket.readyState === WebSocket.OPEN; i++) flood.socket.send('garbage');
  const closed = await flood.waitClosed();
  t.equal(closed.code, 1008);
  t.match(await (await fetch(`${url}/metrics`)).text(), /rollcall_lease_stream_closes_total\{reason="too_many_bad_messages"\} 1/);
  t.match(closed.reason, /too_many_bad_messages/);
  t.ok(flood.messages.length >= 10 && flood.messages.every((m) => m.code === 'invalid_json'), 'after a burst of ERROR answers');

  // A frame over 64 KiB is refused by the WebSocket layer itself (1009).
  const big = await openLeaseStream(url);
  big.socket.send(JSON.stringify({ type: 'RENEW', instances: ['default/web/a'], pad: 'x'.repeat(64 * 1024) }));
  t.equal((await big.waitClosed()).code, 1009);

  // The server is unharmed.
  t.equal((await api(`${url}/healthz`)).status, 200);
});

t.test('a client that stops reading its answers is closed as a slow consumer (4008)', async (t) => {
  const { url } = await startServer(t, { config: { watchBufferBytes: 64 * 1024 } });
  const stream = await openLeaseStream(url);
  // Stop reading: answers pile up in the kernel's buffers, then in the server's.
  (stream.socket as unknown as { _socket: { pause(): void } })._socket.pause();
  const keys = Array.from({ length: 1000 }, (_, i) => `default/web/unknown-${i}`);
  const message = JSON.stringify({ type: 'RENEW', instances: keys });
  const slowCloses = async () => Number(/^rollcall_lease_stream_closes_total\{reason="slow_consumer"\} (\d+)$/m.exec(await (await fetch(`${url}/metrics`)).text())?.[1] ?? 0);
  // Each answer is ~200 KB of instance_not_found results; a few dozen fill any socket buffer.
  let sent = 0;
  await waitFor(
    async () => {
      if (stream.socket.readyState === WebSocket.OPEN && sent < 10_000) {
        for (let i = 0; i < 20; i++, sent++) stream.socket.send(message);
      }
      return (await slowCloses()) === 1;
    },
    PATIENCE_MS,
    'the server to close the stream as a slow consumer',
  );
  t.ok(sent < 10_000, `closed after ${sent} unread answers`);
  // The close frame waits behind the unread answers: reading again, the client gets it (or, when it comes back
  // after the server's grace, a cut). Either way the server no longer holds the stream.
  (stream.socket as unknown as { _socket: { resume(): void } })._socket.resume();
  const closed = await stream.waitClosed();
  t.ok(closed.code === 4008 || closed.code === 1006, `closed (${closed.code} ${closed.reason})`);
  if (closed.code === 4008) t.match(closed.reason, /slow_consumer/);
  await waitFor(async () => /^rollcall_lease_streams 0$/m.test(await (await fetch(`${url}/metrics`)).text()), PATIENCE_MS, 'the stream gone');
});

t.test('a peer that does not answer pings is closed with 4009', async (t) => {
  const { url } = await startServer(t, { config: { watchPingMs: 100 } });
  const mute = await openLeaseStream(url, {}, { autoPong: false });
  const polite = await openLeaseStream(url);
  const closed = await mute.waitClosed();
  t.equal(closed.code, 4009);
  t.match(await (await fetch(`${url}/metrics`)).text(), /rollcall_lease_stream_closes_total\{reason="ping_timeout"\} 1/);
  t.match(closed.reason, /ping_timeout/);
  t.equal(polite.closed, undefined, 'a peer that answers pings stays');
  t.match(await polite.renew(1, ['default/web/x']), { type: 'RENEWED' });
  polite.socket.close();
});

t.test('the watch route\'s pinger leaves lease streams alone, and the lease route\'s leaves watchers alone', async (t) => {
  const { url } = await startServer(t, { config: { watchPingMs: 100 } });
  const stream = await openLeaseStream(url);
  const watch = await openWatch(url, { namespace: 'default' });
  // Several ping intervals: each route pings its own sockets once per interval and sees their pongs.
  let pings = 0;
  stream.socket.on('ping', () => pings++);
  let watchPings = 0;
  watch.socket.on('ping', () => watchPings++);
  await waitFor(() => pings >= 5 && watchPings >= 5, PATIENCE_MS, 'five pings on each socket');
  t.equal(stream.closed, undefined, 'the lease stream is still open');
  t.equal(watch.closed, undefined, 'the watcher is still open');
  t.match(await stream.renew(1, ['default/web/x']), { type: 'RENEWED' });
  stream.socket.close();
  watch.close();
});

t.test('POST /v1/leases/renew renews a list and answers per instance; a bad body is a 400 {error, message}', async (t) => {
  const { url, registry } = await startServer(t);
  await api(instanceUrl(url, 'default', 'web', 'a'), 'PUT', BODY);
  await api(instanceUrl(url, 'prod', 'api', 'b'), 'PUT', BODY);
  const revision = registry.revision;
  const res = await api(`${url}/v1/leases/renew`, 'POST', { instances: ['default/web/a', 'prod/api/b', 'prod/api/nope'] });
  t.equal(res.status, 200);
  t.match(res.body.results, [
    { instance: 'default/web/a', ttlSeconds: 3600, expiresAt: String },
    { instance: 'prod/api/b', ttlSeconds: 3600, expiresAt: String },
    { instance: 'prod/api/nope', error: 'instance_not_found', status: 404, message: String },
  ]);
  t.equal(registry.revision, revision, 'no revision');
  t.equal((await api(instanceUrl(url, 'prod', 'api', 'b'))).body.expiresAt, res.body.results[1].expiresAt);

  const bad: [string, unknown, string, RegExp][] = [
    ['no instances', { instances: [] }, 'validation_failed', /body\.instances/],
    ['a malformed key', { instances: ['default/web/a', 'web/a'] }, 'validation_failed', /body\.instances\.1 must be "namespace\/service\/id"/],
    ['more than 1000', { instances: Array.from({ length: 1001 }, (_, i) => `default/web/i-${i}`) }, 'validation_failed', /body\.instances/],
    ['an unknown field', { instances: ['default/web/a'], all: true }, 'validation_failed', /all/],
    ['not an object', [1, 2], 'validation_failed', /body/],
    ['not JSON', '{"instances":', 'invalid_json', /not valid JSON/],
  ];
  for (const [what, body, error, message] of bad) {
    const r = await api(`${url}/v1/leases/renew`, 'POST', body);
    t.equal(r.status, 400, what);
    t.match(r.body, { error, message }, what);
  }
  const plain = await fetch(`${url}/v1/leases/renew`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'default/web/a' });
  t.equal(plain.status, 415);
  t.match(await plain.json(), { error: 'unsupported_media_type' });
  t.match(await renewalCounts(url), { 'batch:ok': 2, 'batch:not_found': 1 });
  // Without an upgrade the stream route says how to renew instead.
  const noUpgrade = await api(`${url}/v1/leases`);
  t.equal(noUpgrade.status, 426);
  t.match(noUpgrade.body, { error: 'upgrade_required', message: /POST \/v1\/leases\/renew/ });
});

t.test('a reload of the auth file applies to open streams: new scopes per instance, a revoked token ends the stream', async (t) => {
  const dir = t.testdir();
  const writer = { name: 'writer', role: 'write', namespaces: ['team-a'], token: 'tok-writer' } satisfies TestPrincipal;
  const admin = { name: 'admin', role: 'admin', namespaces: ['*'], token: 'tok-admin' } satisfies TestPrincipal;
  const authFile = writeAuthFile(dir, [writer, admin]);
  const { url, app } = await startServer(t, { dataDir: dir, config: { authFile } });
  for (const ns of ['team-a', 'team-b']) t.equal((await api(instanceUrl(url, ns, 'web', 'a'), 'PUT', BODY, bearer(admin.token))).status, 201);
  const stream = await openLeaseStream(url, bearer(writer.token));
  t.match((await stream.renew(1, ['team-a/web/a', 'team-b/web/a'])).results, [{ ttlSeconds: 3600 }, { error: 'forbidden' }]);

  writeAuthFile(dir, [{ ...writer, namespaces: ['team-b'] }, admin]);
  t.equal(app.reloadAuth(), 2);
  t.match((await stream.renew(2, ['team-a/web/a', 'team-b/web/a'])).results, [{ error: 'forbidden' }, { ttlSeconds: 3600 }], 'the new scopes apply');

  writeAuthFile(dir, [admin]);
  app.reloadAuth();
  stream.socket.send(JSON.stringify({ type: 'RENEW', seq: 3, instances: ['team-b/web/a'] }));
  const closed = await stream.waitClosed();
  t.equal(closed.code, 1008);
  t.match(closed.reason, /^unauthorized/);
  t.equal(stream.messages.find((m) => m.seq === 3), undefined, 'nothing renewed with the revoked token');
  t.equal((await api(`${instanceUrl(url, 'team-b', 'web', 'a')}/heartbeat`, 'PUT', undefined, bearer(writer.token))).status, 401, 'as PUT …/heartbeat refuses it');
});
