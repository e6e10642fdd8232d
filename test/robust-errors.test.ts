// Defect 5 of issue 13: every error, wherever it arises (Node's parser, the router, ws's handshake, Expect
// handling), is {error, message} JSON; nothing echoes the request back; HEAD on the SSE route answers.
import t, { type Test } from 'tap';
import { startServer } from './helper.js';
import { rawRequest, type RawResponse } from './raw-tcp.js';

const INSTANCE = '/v1/namespaces/default/services/web/instances/a';
const valid = JSON.stringify({ address: '10.0.0.1', port: 8080 });

function assertJsonError(t: Test, res: RawResponse, status: number, code: string) {
  t.equal(res.status, status, `status ${status}`);
  t.match(res.headers['content-type'], /^application\/json/, 'a JSON content type');
  t.type(res.json, 'object', `a JSON body: ${res.body.slice(0, 200)}`);
  t.same(Object.keys(res.json ?? {}).sort(), ['error', 'message'], 'exactly {error, message}');
  t.equal(res.json?.error, code);
  t.type(res.json?.message, 'string');
}

t.test('errors raised before routing are JSON in the documented shape', async (t) => {
  const { port } = await startServer(t);
  const cases: [string, string, number, string][] = [
    ['a request line that is not HTTP', 'GARBAGE\r\n\r\n', 400, 'bad_request'],
    ['an unknown method token', 'FETCH!ME / HTTP/1.1\r\nHost: x\r\n\r\n', 400, 'bad_request'],
    ['both Content-Length and Transfer-Encoding', `PUT ${INSTANCE} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, 400, 'bad_request'],
    ['headers over 16 KiB', `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431, 'headers_too_large'],
    ['a URL over 16 KiB', `GET /v1/${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`, 431, 'headers_too_large'],
    ['an HTTP/1.1 request without Host', 'GET /healthz HTTP/1.1\r\n\r\n', 400, 'bad_request'],
    ['an Expect other than 100-continue', `PUT ${INSTANCE} HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Type: application/json\r\nContent-Length: ${valid.length}\r\n\r\n${valid}`, 417, 'expectation_failed'],
    ['a watch with a bad Upgrade header', 'GET /v1/watch HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n', 400, 'bad_request'],
    ['a WebSocket upgrade without Sec-WebSocket-Key', 'GET /v1/watch HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n', 400, 'bad_request'],
    ['a WebSocket upgrade with a bad version', 'GET /v1/watch HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 7\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n', 400, 'bad_request'],
    ['a WebSocket upgrade on a DELETE', `DELETE ${INSTANCE} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`, 405, 'method_not_allowed'],
  ];
  for (const [what, request, status, code] of cases) {
    await t.test(what, async (t) => {
      const res = await rawRequest(port, request);
      assertJsonError(t, res, status, code);
      t.ok(res.closed, 'the connection is closed');
    });
  }
});

t.test('a path segment over 256 characters is a 414 that does not echo the URL', async (t) => {
  const { port } = await startServer(t);
  const long = 'x'.repeat(5000);
  const res = await rawRequest(port, `GET /v1/namespaces/${long}/services HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
  assertJsonError(t, res, 414, 'uri_too_long');
  t.notOk(res.text.includes('xxxxxxxxxx'), 'the URL is not echoed');
  t.ok(res.body.length < 200, `a short body (${res.body.length} bytes)`);
});

t.test('a path that is not valid percent-encoding is a JSON 400', async (t) => {
  const { port } = await startServer(t);
  const res = await rawRequest(port, 'GET /v1/namespaces/%E0%A4%A/services HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  assertJsonError(t, res, 400, 'bad_request');
  t.notOk(res.text.includes('%E0'), 'the URL is not echoed');
});

t.test('Expect: 100-continue gets its 100, then the request is served', async (t) => {
  const { port } = await startServer(t);
  const res = await rawRequest(
    port,
    `PUT ${INSTANCE} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Type: application/json\r\nContent-Length: ${valid.length}\r\nConnection: close\r\n\r\n`,
    { dribble: [valid], everyMs: 100 },
  );
  t.match(res.text, /^HTTP\/1\.1 100 Continue\r\n/);
  t.equal(res.status, 201);
});

t.test('HEAD on the watch route answers at once, with or without Accept: text/event-stream', async (t) => {
  const { port } = await startServer(t);
  const sse = await rawRequest(port, 'HEAD /v1/watch HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n', { deadlineMs: 10_000 });
  t.ok(sse.closed, 'answered and closed, not left hanging');
  t.equal(sse.status, 200);
  t.match(sse.headers['content-type'], /^text\/event-stream/);
  t.equal(sse.body, '', 'no body for HEAD');
  const plain = await rawRequest(port, 'HEAD /v1/watch HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', { deadlineMs: 10_000 });
  t.ok(plain.closed);
  t.equal(plain.status, 426);
  t.match(plain.headers['content-type'], /^application\/json/);
});
