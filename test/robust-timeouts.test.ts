// Defect 4 of issue 13: slow or silent peers are cut by header, request, keep-alive and idle timeouts, with a
// JSON 408 where an answer is still possible; long-polls and watch streams (answers, not requests) live on.
import t from 'tap';
import { api, startServer, waitFor } from './helper.js';
import { loadConfig } from '../src/config.js';
import { rawRequest } from './raw-tcp.js';
import { openWatch } from './watch-client.js';

// Short timeouts so a test sees them; the server checks deadlines every quarter of the shortest one.
const limits = { headersTimeoutMs: 800, requestTimeoutMs: 1500, keepAliveTimeoutMs: 1000, connectionTimeoutMs: 1200 };
/** Generous: the machine is loaded. Without the timeouts these connections stay open for minutes. */
const CUT_WITHIN_MS = 15_000;
const INSTANCE = '/v1/namespaces/default/services/web/instances/a';
const valid = JSON.stringify({ address: '10.0.0.1', port: 8080 });

t.test('headers dribbled a line at a time are cut with a JSON 408 after headersTimeoutMs', async (t) => {
  const { port } = await startServer(t, { config: limits });
  const res = await rawRequest(port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n', {
    dribble: Array.from({ length: 500 }, (_, i) => `X-Slow-${i}: y\r\n`),
    everyMs: 100,
    deadlineMs: CUT_WITHIN_MS,
  });
  t.ok(res.closed, `cut after ${res.elapsedMs} ms`);
  t.ok(res.elapsedMs >= limits.headersTimeoutMs - 50, 'not before the headers timeout');
  t.equal(res.status, 408);
  t.match(res.headers['content-type'], /^application\/json/);
  t.equal(res.json.error, 'request_timeout');
  t.type(res.json.message, 'string');
});

t.test('a body that never completes is cut with a JSON 408 after requestTimeoutMs', async (t) => {
  const { port, url } = await startServer(t, { config: limits });
  const head = `PUT ${INSTANCE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${valid.length + 100}\r\n\r\n`;
  const res = await rawRequest(port, head, { dribble: [...valid, ...' '.repeat(99)], everyMs: 100, deadlineMs: CUT_WITHIN_MS });
  t.ok(res.closed, `cut after ${res.elapsedMs} ms`);
  t.ok(res.elapsedMs >= limits.requestTimeoutMs - 50, 'not before the request timeout');
  t.equal(res.status, 408);
  t.equal(res.json.error, 'request_timeout');
  t.equal((await api(`${url}${INSTANCE}`)).status, 404, 'nothing was registered');
});

t.test('a connection that never sends a byte is closed', async (t) => {
  const { port } = await startServer(t, { config: limits });
  const res = await rawRequest(port, '', { deadlineMs: CUT_WITHIN_MS });
  t.ok(res.closed, `closed after ${res.elapsedMs} ms`);
  t.ok(res.elapsedMs >= Math.min(limits.headersTimeoutMs, limits.connectionTimeoutMs) - 50);
});

t.test('an idle keep-alive connection is closed after keepAliveTimeoutMs', async (t) => {
  const { port } = await startServer(t, { config: limits });
  const res = await rawRequest(port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n', { deadlineMs: CUT_WITHIN_MS });
  t.ok(res.closed, `closed after ${res.elapsedMs} ms`);
  t.equal(res.status, 200, 'the request itself was answered');
  t.ok(res.elapsedMs >= limits.keepAliveTimeoutMs - 50, 'kept alive for the keep-alive timeout first');
});

t.test('a complete request that arrived slowly, but in time, is served', async (t) => {
  const { port } = await startServer(t, { config: limits });
  const body = valid;
  const head = `PUT ${INSTANCE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
  const res = await rawRequest(port, head, { dribble: [body.slice(0, 10), body.slice(10)], everyMs: 200 });
  t.equal(res.status, 201);
});

t.test('long-polls, SSE and WebSocket streams outlive every request timeout', async (t) => {
  const { url } = await startServer(t, { config: limits });
  const list = `${url}/v1/namespaces/default/services/web/instances`;
  const watch = await openWatch(url, { bookmarkSeconds: 300 });
  const sse = await fetch(`${url}/v1/watch?bookmarkSeconds=300`, { headers: { accept: 'text/event-stream' } });
  t.equal(sse.status, 200);
  const reader = sse.body!.getReader();
  let sseText = '';
  const readSse = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      sseText += Buffer.from(value).toString();
    }
  })();

  // A blocking query that waits 4 s: longer than the request, headers, keep-alive and idle timeouts, with no
  // byte either way meanwhile. Waiting out the wait is the point here, so this test takes 4 s by design.
  const started = Date.now();
  const polled = await api(`${list}?index=0&wait=4s`);
  const waited = Date.now() - started;
  t.equal(polled.status, 200, 'the long-poll was answered, not cut');
  t.ok(waited >= 3900, `it waited ${waited} ms`);

  // Both streams were silent just as long (bookmarks every 300 s) and still deliver the next change.
  await api(`${url}${INSTANCE}`, 'PUT', JSON.parse(valid));
  await watch.until((m) => m.some((x) => x.type === 'ADDED'), 10_000);
  t.equal(watch.closed, undefined, 'the WebSocket is still open');
  await waitFor(() => sseText.includes('event: ADDED'), 10_000, 'the ADDED event on the SSE stream');
  t.pass('the SSE stream is still open and delivers');
  watch.close();
  await reader.cancel();
  await readSse;
});

t.test('timeouts and limits are configurable; a headers timeout above the request timeout is refused', async (t) => {
  const config = loadConfig({}, { ROLLCALL_HEADERS_TIMEOUT_MS: '2000', ROLLCALL_REQUEST_TIMEOUT_MS: '4000', ROLLCALL_MAX_WATCHERS: '5' });
  t.match(config, { headersTimeoutMs: 2000, requestTimeoutMs: 4000, keepAliveTimeoutMs: 72_000, connectionTimeoutMs: 120_000, maxWatchers: 5, maxConnections: 10_000 });
  t.throws(() => loadConfig({ headersTimeoutMs: 5000, requestTimeoutMs: 1000 }), /headersTimeoutMs: must not exceed requestTimeoutMs/);
  t.throws(() => loadConfig({ maxConnections: -1 }), /maxConnections/);
});
