// Defect 7 of issue 13: input that was accepted and caused trouble later is refused clearly: ids "." and "..",
// text that displays differently from what it is, IPv6 zone ids, and bodies that are not UTF-8 JSON.
import t from 'tap';
import { api, buildTestApp, startServer } from './helper.js';
import { rawRequest } from './raw-tcp.js';

const BASE = '/v1/namespaces/default/services/web/instances';
const valid = { address: '10.0.0.1', port: 8080 };

t.test('instance ids "." and ".." are refused, in any encoding; ids containing dots are fine', async (t) => {
  // inject() (like every URL-parsing client) removes dot segments before sending; raw bytes do not.
  const { port } = await startServer(t);
  const body = JSON.stringify(valid);
  const put = (id: string) =>
    rawRequest(
      port,
      `PUT ${BASE}/${id} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    );
  for (const id of ['.', '..', '%2e', '%2E%2E', '.%2e']) {
    const res = await put(id);
    t.equal(res.status, 400, id);
    t.equal(res.json?.error, 'validation_failed', id);
    t.match(res.json?.details, [{ path: 'params.id', message: /not "\." or "\.\."/ }], id);
  }
  for (const id of ['...', '.a', 'a.', 'a..b', 'host.example:8080']) {
    t.equal((await put(id)).status, 201, id);
  }
});

// Each one makes a log line, a terminal or a dashboard show something other than what is stored.
const DECEPTIVE: [string, string][] = [
  ['U+202E right-to-left override', '\u202E'],
  ['U+202A left-to-right embedding', '\u202A'],
  ['U+2066 left-to-right isolate', '\u2066'],
  ['U+2069 pop directional isolate', '\u2069'],
  ['U+200E left-to-right mark', '\u200E'],
  ['U+200F right-to-left mark', '\u200F'],
  ['U+200B zero-width space', '\u200B'],
  ['U+FEFF byte order mark', '\uFEFF'],
  ['U+061C Arabic letter mark', '\u061C'],
  ['U+2028 line separator', '\u2028'],
  ['U+0085 next line', '\u0085'],
  ['U+000A newline', '\n'],
  ['U+001B escape', '\u001B[31m'],
  ['a lone surrogate', '\uD800'],
];

t.test('bidi, zero-width, separator and control characters are refused in zone, tags and metadata', async (t) => {
  const { app } = await buildTestApp(t);
  for (const [what, ch] of DECEPTIVE) {
    const text = `eu${ch}west`;
    const bodies: [string, object][] = [
      ['body.zone', { ...valid, zone: text }],
      ['body.tags.0', { ...valid, tags: [text] }],
      ['a metadata key', { ...valid, metadata: { [text]: 'v' } }],
      ['body.metadata.k', { ...valid, metadata: { k: text } }],
    ];
    for (const [path, body] of bodies) {
      const res = await app.inject({ method: 'PUT', url: `${BASE}/a`, payload: body });
      t.equal(res.statusCode, 400, `${what} in ${path}`);
      t.equal(res.json().error, 'validation_failed');
      t.match(res.json().message, /control, format/, `${what} in ${path}: the message says why`);
    }
    const patched = await app.inject({ method: 'PATCH', url: `${BASE}/a`, payload: { zone: text } });
    t.equal(patched.statusCode, 400, `${what} in a PATCH`);
  }
  t.equal(app.registry.revision, 0, 'nothing was stored');
  // Text that merely is not ASCII is fine: letters, accents, CJK, emoji without joiners.
  const ok = await app.inject({
    method: 'PUT',
    url: `${BASE}/a`,
    payload: { ...valid, zone: 'zürich-1', tags: ['東京', 'מזרח'], metadata: { owner: 'Zoë', mood: '🚀' } },
  });
  t.equal(ok.statusCode, 201);
  t.same(ok.json().tags, ['東京', 'מזרח']);
});

t.test('an IPv6 address with a zone id is refused; plain IPv6 is fine', async (t) => {
  const { app } = await buildTestApp(t);
  for (const address of ['fe80::1%eth0', 'fe80::1%25eth0', 'fe80::1%1', '::1%lo']) {
    const res = await app.inject({ method: 'PUT', url: `${BASE}/a`, payload: { ...valid, address } });
    t.equal(res.statusCode, 400, address);
    t.match(res.json().details, [{ path: 'body.address', message: /zone id/ }], address);
  }
  const ok = await app.inject({ method: 'PUT', url: `${BASE}/a`, payload: { ...valid, address: 'fe80::1' } });
  t.equal(ok.statusCode, 201);
});

const REFUSED_BODIES: [string, Record<string, string>][] = [
  ['no content type', {}],
  ['text/plain', { 'content-type': 'text/plain' }],
  ['application/x-www-form-urlencoded', { 'content-type': 'application/x-www-form-urlencoded' }],
  ['application/json; charset=utf-16', { 'content-type': 'application/json; charset=utf-16' }],
  ['application/json; charset="latin1"', { 'content-type': 'application/json; charset="latin1"' }],
  ['Content-Encoding: gzip', { 'content-type': 'application/json', 'content-encoding': 'gzip' }],
  ['Content-Encoding: br', { 'content-type': 'application/json', 'content-encoding': 'br' }],
  ['Content-Encoding: x-made-up', { 'content-type': 'application/json', 'content-encoding': 'x-made-up' }],
];
const ACCEPTED_BODIES: [string, Record<string, string>][] = [
  ['application/json', { 'content-type': 'application/json' }],
  ['application/json; charset=utf-8', { 'content-type': 'application/json; charset=utf-8' }],
  ['application/json; charset=UTF8', { 'content-type': 'application/json; charset=UTF8' }],
  ['Content-Encoding: identity', { 'content-type': 'application/json', 'content-encoding': 'identity' }],
];

t.test('bodies that are not UTF-8 JSON are 415 (inject)', async (t) => {
  const { app } = await buildTestApp(t);
  for (const [what, headers] of REFUSED_BODIES) {
    const res = await app.inject({ method: 'PUT', url: `${BASE}/a`, headers, payload: JSON.stringify(valid) });
    t.equal(res.statusCode, 415, what);
    t.equal(res.json().error, 'unsupported_media_type', what);
    t.match(res.headers['content-type'], /^application\/json/);
  }
  t.equal(app.registry.revision, 0, 'nothing was stored');
  for (const [what, headers] of ACCEPTED_BODIES) {
    const res = await app.inject({ method: 'PUT', url: `${BASE}/${what.length}`, headers, payload: JSON.stringify(valid) });
    t.equal(res.statusCode, 201, what);
  }
  // A content type on a request without a body (some clients send one always) is no body, not an error.
  const hb = await app.inject({ method: 'PUT', url: `${BASE}/16/heartbeat`, headers: { 'content-type': 'application/json' } });
  t.equal(hb.statusCode, 200);
  const proto = await app.inject({ method: 'PATCH', url: `${BASE}/16`, headers: { 'content-type': 'application/json' }, payload: '{"__proto__":{"x":1}}' });
  t.equal(proto.statusCode, 400, 'prototype pollution is still refused');
});

t.test('bodies that are not UTF-8 JSON are 415 (real server, raw bytes)', async (t) => {
  const { port, url } = await startServer(t);
  const utf16 = Buffer.from(JSON.stringify(valid), 'utf16le');
  const send = (headers: Record<string, string>, body: Buffer) =>
    rawRequest(
      port,
      Buffer.concat([
        Buffer.from(
          `PUT ${BASE}/a HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: ${body.length}\r\n` +
            Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('') +
            '\r\n',
        ),
        body,
      ]),
    );
  for (const [what, headers] of REFUSED_BODIES) {
    const res = await send(headers, Buffer.from(JSON.stringify(valid)));
    t.equal(res.status, 415, what);
    t.equal(res.json?.error, 'unsupported_media_type', what);
  }
  const res = await send({ 'content-type': 'application/json; charset=utf-16' }, utf16);
  t.equal(res.status, 415, 'a real UTF-16 body');
  t.equal((await api(`${url}/v1/namespaces`)).body.revision, 0, 'nothing was stored');
  const ok = await send({ 'content-type': 'application/json' }, Buffer.from(JSON.stringify({ ...valid, zone: 'zürich' })));
  t.equal(ok.status, 201);
  t.equal((await api(`${url}${BASE}/a`)).body.zone, 'zürich', 'UTF-8 arrives intact');
});
