// Scoped tokens (issue 13): read < write < admin on namespace globs, `*` for cross-namespace lists and watches,
// 401 vs 403, decided before WebSocket and SSE upgrades, ops routes open unless --protect-ops, whoami, and the
// audit log line that names the principal and never the token.
import { Writable } from 'node:stream';
import t from 'tap';
import WebSocket from 'ws';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { bearer, writeAuthFile, type TestPrincipal } from './auth-fixtures.js';
import { buildTestApp, startServer } from './helper.js';
import { rawRequest } from './raw-http.js';

const P = {
  reader: { name: 'reader', role: 'read', namespaces: ['team-a'], token: 'tok-reader' },
  writer: { name: 'writer', role: 'write', namespaces: ['team-a', 'shop-*'], token: 'tok-writer' },
  globalReader: { name: 'global-reader', role: 'read', namespaces: ['*'], token: 'tok-global-reader' },
  teamAdmin: { name: 'team-admin', role: 'admin', namespaces: ['team-*'], token: 'tok-team-admin' },
  admin: { name: 'admin', role: 'admin', namespaces: ['*'], token: 'tok-admin' },
} satisfies Record<string, TestPrincipal>;

const inst = (ns: string, id = 'a') => `/v1/namespaces/${ns}/services/web/instances/${id}`;
const body = { address: '10.0.0.1', port: 80 };

async function authApp(t: Parameters<typeof buildTestApp>[0], config: Record<string, unknown> = {}) {
  const dir = t.testdir();
  const authFile = writeAuthFile(dir, Object.values(P));
  return buildTestApp(t, { dataDir: dir, config: { authFile, ...config } });
}

t.test('each role on each kind of route, in and out of its namespaces', async (t) => {
  const { app } = await authApp(t);
  const as = (p: TestPrincipal | null) => (p?.token === undefined ? {} : bearer(p.token));
  const call = async (p: TestPrincipal | null, method: string, url: string, payload?: object) => {
    const res = await app.inject({ method: method as 'GET', url, headers: as(p), ...(payload === undefined ? {} : { payload }) });
    return { status: res.statusCode, body: res.headers['content-type']?.toString().startsWith('application/json') ? res.json() : res.body };
  };
  // Seed with the admin so reads have something to read.
  t.equal((await call(P.admin, 'PUT', inst('team-a', 'seed'), body)).status, 201);
  t.equal((await call(P.admin, 'PUT', inst('shop-eu', 'seed'), body)).status, 201);
  t.equal((await call(P.admin, 'PUT', inst('other', 'seed'), body)).status, 201);

  // [principal, method, url, expected status]
  const cases: [TestPrincipal, string, string, number][] = [
    [P.reader, 'GET', inst('team-a', 'seed'), 200],
    [P.reader, 'GET', '/v1/namespaces/team-a/services', 200],
    [P.reader, 'GET', '/v1/namespaces/team-a/services/web/instances', 200],
    [P.reader, 'GET', '/v1/namespaces/team-a/render/nginx', 200],
    [P.reader, 'GET', '/v1/namespaces/other/services', 403],
    [P.reader, 'GET', '/v1/namespaces/team-ab/services', 403],
    [P.reader, 'GET', '/v1/namespaces', 403],
    [P.reader, 'PUT', inst('team-a'), 403],
    [P.reader, 'PUT', `${inst('team-a', 'seed')}/heartbeat`, 403],
    [P.reader, 'PATCH', inst('team-a', 'seed'), 403],
    [P.reader, 'DELETE', inst('team-a', 'seed'), 403],
    [P.writer, 'PUT', inst('team-a'), 201],
    [P.writer, 'PUT', `${inst('team-a')}/heartbeat`, 200],
    [P.writer, 'PATCH', inst('team-a'), 200],
    [P.writer, 'DELETE', inst('team-a'), 204],
    [P.writer, 'PUT', inst('shop-eu'), 201],
    [P.writer, 'GET', '/v1/namespaces/shop-eu/services', 200],
    [P.writer, 'PUT', inst('other'), 403],
    [P.writer, 'DELETE', inst('other', 'seed'), 403],
    [P.writer, 'PUT', inst('shop'), 403],
    [P.writer, 'GET', '/v1/namespaces', 403],
    [P.globalReader, 'GET', '/v1/namespaces', 200],
    [P.globalReader, 'GET', '/v1/namespaces/other/services', 200],
    [P.globalReader, 'PUT', inst('other'), 403],
    [P.teamAdmin, 'PUT', inst('team-a', 'b'), 201],
    [P.teamAdmin, 'DELETE', inst('team-a', 'b'), 204],
    [P.teamAdmin, 'PUT', inst('other', 'b'), 403],
    [P.teamAdmin, 'GET', '/v1/namespaces', 403],
    [P.admin, 'GET', '/v1/namespaces', 200],
    [P.admin, 'DELETE', inst('other', 'seed'), 204],
  ];
  for (const [p, method, url, expected] of cases) {
    const payload = method === 'PUT' && !url.endsWith('/heartbeat') ? body : method === 'PATCH' ? { weight: 2 } : undefined;
    const res = await call(p, method, url, payload);
    t.equal(res.status, expected, `${p.name} ${method} ${url} → ${expected}`);
    if (expected === 403) {
      t.equal(res.body.error, 'forbidden');
      t.match(res.body.message, new RegExp(`^"${p.name}" \\(role ${p.role}, namespaces [^)]*\\) lacks the scope (read|write):`), 'the 403 names the principal and the missing scope');
    }
  }
  const denied = await call(P.writer, 'PUT', inst('other'), body);
  t.equal(denied.body.message, '"writer" (role write, namespaces team-a,shop-*) lacks the scope write:other.');
  const list = await call(P.reader, 'GET', '/v1/namespaces');
  t.equal(list.body.message, '"reader" (role read, namespaces team-a) lacks the scope read:*.');
  const other = await call(P.admin, 'GET', '/v1/namespaces/other/services/web/instances');
  t.same(other.body.items, [], 'nothing out of scope was written');
});

const MALFORMED = 'The Authorization header must be "Bearer <token>" (or Basic auth with the token as the password).';

t.test('401 for no, malformed or unknown credentials; the token never appears in an answer', async (t) => {
  const { app } = await authApp(t);
  const cases: [Record<string, string>, string][] = [
    [{}, 'This registry needs "Authorization: Bearer <token>".'],
    [{ authorization: 'Bearer nope' }, 'The bearer token is not known to this registry.'],
    [{ authorization: `Basic ${Buffer.from(`u:nope`).toString('base64')}` }, 'The bearer token is not known to this registry.'],
    [{ authorization: `Basic ${Buffer.from(`${P.admin.token}:`).toString('base64')}` }, MALFORMED],
    [{ authorization: P.admin.token }, MALFORMED],
    [{ authorization: `Bearer ${P.admin.token} extra` }, MALFORMED],
  ];
  for (const [headers, message] of cases) {
    const res = await app.inject({ url: '/v1/namespaces/team-a/services', headers });
    t.equal(res.statusCode, 401);
    t.same(res.json(), { error: 'unauthorized', message });
  }
  const lower = await app.inject({ url: '/v1/namespaces/team-a/services', headers: { authorization: `bearer ${P.reader.token}` } });
  t.equal(lower.statusCode, 200, 'the scheme is case-insensitive');
  // Clients that only know URLs with user:password (Eureka clients, Prometheus basic_auth) send the token as the
  // Basic password; it is the same credential with the same scope.
  const basic = (token: string) => ({ authorization: `Basic ${Buffer.from(`any-user:${token}`).toString('base64')}` });
  t.equal((await app.inject({ url: '/v1/namespaces/team-a/services', headers: basic(P.reader.token) })).statusCode, 200, 'Basic with the token as password');
  t.equal((await app.inject({ method: 'PUT', url: '/v1/namespaces/team-a/services/web/instances/b1', headers: basic(P.reader.token), payload: { address: '10.0.0.1', port: 80 } })).statusCode, 403, 'and the same scope: a read token cannot write');
});

t.test('ROLLCALL_TOKEN stays a single admin token beside the auth file', async (t) => {
  const { app } = await authApp(t, { token: 'shared-admin' });
  const res = await app.inject({ method: 'PUT', url: inst('anything'), payload: body, headers: bearer('shared-admin') });
  t.equal(res.statusCode, 201);
  const who = await app.inject({ url: '/v1/auth/whoami', headers: bearer('shared-admin') });
  t.same(who.json(), { authenticated: true, name: 'ROLLCALL_TOKEN', role: 'admin', namespaces: ['*'] });
  t.equal((await app.inject({ url: '/v1/namespaces', headers: bearer(P.reader.token) })).statusCode, 403, 'the file still applies');
});

t.test('whoami answers any valid credential, with or without auth', async (t) => {
  const { app } = await authApp(t);
  const who = await app.inject({ url: '/v1/auth/whoami', headers: bearer(P.writer.token) });
  t.same(who.json(), { authenticated: true, name: 'writer', role: 'write', namespaces: ['team-a', 'shop-*'] });
  t.equal((await app.inject({ url: '/v1/auth/whoami' })).statusCode, 401);
  const { app: open } = await buildTestApp(t);
  t.same((await open.inject({ url: '/v1/auth/whoami' })).json(), { authenticated: false, name: null, role: 'admin', namespaces: ['*'] });
});

t.test('ops routes are open, unless --protect-ops', async (t) => {
  const ops = ['/healthz', '/readyz', '/metrics', '/openapi.json', '/openapi.yaml', '/docs', '/docs/json'];
  const { app } = await authApp(t);
  for (const url of ops) t.equal((await app.inject({ url })).statusCode < 400, true, `${url} open`);
  const { app: guarded } = await authApp(t, { protectOps: true });
  for (const url of ops) {
    const res = await guarded.inject({ url });
    t.equal(res.statusCode, 401, `${url} guarded`);
    t.ok((await guarded.inject({ url, headers: bearer(P.reader.token) })).statusCode < 400, `${url} with any valid token`);
  }
  t.throws(() => loadConfig({ dataDir: ':memory:', protectOps: true }), /protectOps: needs ROLLCALL_TOKEN or --auth-file/);
});

t.test('WebSocket and SSE watches are refused before the upgrade; cross-namespace watches need *', async (t) => {
  const dir = t.testdir();
  const server = await startServer(t, { dataDir: dir, config: { authFile: writeAuthFile(dir, Object.values(P)) } });
  const wsUrl = `ws://127.0.0.1:${server.port}/v1/watch`;
  const open = (query: string, token?: string) =>
    new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(`${wsUrl}${query}`, token === undefined ? {} : { headers: bearer(token) });
      ws.once('open', () => {
        ws.close();
        resolve(101);
      });
      ws.once('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? 0);
        ws.terminate();
      });
      ws.once('error', reject);
    });
  t.equal(await open('?namespace=team-a'), 401);
  t.equal(await open('?namespace=other', P.reader.token), 403);
  t.equal(await open('', P.reader.token), 403, 'a registry-wide watch needs *');
  t.equal(await open('?namespace=team-a&namespace=other', P.reader.token), 403, 'a repeated namespace asks for everything');
  t.equal(await open('', P.teamAdmin.token), 403, 'team-* is not *');
  t.equal(await open('?namespace=team-a', P.reader.token), 101);
  t.equal(await open('', P.globalReader.token), 101);

  const sse = (query: string, token?: string) =>
    rawRequest(server.port, 'GET', `/v1/watch${query}`, { headers: { accept: 'text/event-stream', ...(token === undefined ? {} : bearer(token)) } });
  t.equal((await sse('?namespace=team-a')).status, 401);
  const forbidden = await sse('?namespace=other', P.reader.token);
  t.equal(forbidden.status, 403);
  t.equal(forbidden.json.error, 'forbidden');
  const ok = await sse('?namespace=team-a', P.reader.token);
  t.equal(ok.status, 200);
  t.match(ok.headers['content-type'], /^text\/event-stream/);
});

t.test('every write is logged with the principal name; the token never reaches a log line', async (t) => {
  const dir = t.testdir();
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  const app = await buildApp({
    config: loadConfig({ dataDir: dir, authFile: writeAuthFile(dir, Object.values(P)) }),
    logger: { level: 'info', stream },
  });
  t.teardown(() => app.close());
  await app.inject({ method: 'PUT', url: inst('team-a'), payload: body, headers: bearer(P.writer.token) });
  await app.inject({ method: 'PUT', url: `${inst('team-a')}/heartbeat`, headers: bearer(P.writer.token) });
  await app.inject({ method: 'DELETE', url: inst('team-a'), headers: bearer(P.writer.token) });
  await app.inject({ method: 'PUT', url: inst('other'), payload: body, headers: bearer(P.writer.token) });
  await app.inject({ url: '/v1/namespaces/team-a/services', headers: bearer(P.reader.token) });
  const audit = lines.map((l) => JSON.parse(l)).filter((l) => l.principal !== undefined);
  t.same(
    audit.map((l) => [l.principal, l.method, l.namespace, l.status, l.msg]),
    [
      ['writer', 'PUT', 'team-a', 201, 'write by writer'],
      ['writer', 'DELETE', 'team-a', 204, 'write by writer'],
    ],
    'register and deregister at info; heartbeats at debug; reads not at all',
  );
  t.ok(lines.some((l) => l.includes('lacks the scope write:other')), 'the refusal is logged too');
  t.notOk(lines.some((l) => l.includes('tok-')), 'no token in any log line');
});

t.test('the compatibility APIs take the same scoped credentials: Prometheus SD, Eureka (Basic password), Consul (X-Consul-Token, ?ns=)', async (t) => {
  const dir = t.testdir();
  const authFile = writeAuthFile(dir, Object.values(P));
  const server = await startServer(t, { dataDir: dir, config: { authFile, eurekaNamespace: 'team-a', consulListen: '127.0.0.1:0' } });
  const basic = (token: string) => ({ authorization: `Basic ${Buffer.from(`eureka:${token}`).toString('base64')}` });
  const get = async (url: string, headers: Record<string, string> = {}) => (await fetch(url, { headers })).status;

  // Prometheus SD: read on ?namespace=, `*` without one.
  t.equal(await get(`${server.url}/v1/sd/prometheus?namespace=team-a`, bearer(P.reader.token)), 200);
  t.equal(await get(`${server.url}/v1/sd/prometheus?namespace=other`, bearer(P.reader.token)), 403);
  t.equal(await get(`${server.url}/v1/sd/prometheus`, bearer(P.reader.token)), 403, 'every namespace needs *');
  t.equal(await get(`${server.url}/v1/sd/prometheus`, bearer(P.globalReader.token)), 200);

  // Eureka serves --eureka-namespace (team-a): the token is the Basic password; reads need read, writes write.
  const register = (token: string) =>
    fetch(`${server.url}/eureka/apps/WEB`, {
      method: 'POST',
      headers: { ...basic(token), 'content-type': 'application/json' },
      body: JSON.stringify({ instance: { instanceId: 'w1', hostName: 'h1', app: 'WEB', ipAddr: '10.0.0.1', status: 'UP', port: { $: 80, '@enabled': 'true' } } }),
    });
  t.equal(await get(`${server.url}/eureka/apps`), 401);
  t.equal(await get(`${server.url}/eureka/apps`, basic(P.reader.token)), 200);
  const refused = await register(P.reader.token);
  t.equal(refused.status, 403);
  t.match(await refused.text(), /lacks the scope write:team-a/, 'plain text, as Eureka answers errors');
  t.equal((await register(P.writer.token)).status, 204);

  // Consul: X-Consul-Token on the request's ?ns= (default "default").
  const consul = server.app.consulUrl!;
  const token = (v: string) => ({ 'x-consul-token': v });
  t.equal(await get(`${consul}/v1/catalog/services?ns=team-a`, token(P.reader.token)), 200);
  t.equal(await get(`${consul}/v1/catalog/services?ns=other`, token(P.reader.token)), 403);
  t.equal(await get(`${consul}/v1/catalog/services?ns=team-a`), 403, 'no token');
  const put = (v: string) =>
    fetch(`${consul}/v1/agent/service/register?ns=team-a`, { method: 'PUT', headers: token(v), body: JSON.stringify({ ID: 'c1', Name: 'api', Port: 80, Address: '10.0.0.2' }) });
  t.equal((await put(P.reader.token)).status, 403, 'a read token cannot register');
  t.equal((await put(P.writer.token)).status, 200);
});
