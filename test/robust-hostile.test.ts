// Hostile connections (issue 13): WebSocket peers that talk, send oversized or broken frames are closed with
// the matching close code; --max-watchers and --max-connections refuse with a JSON 503 instead of growing.
import t from 'tap';
import { connect, type Socket } from 'node:net';
import WebSocket from 'ws';
import { startServer, waitFor } from './helper.js';
import { parseRaw, rawRequest } from './raw-tcp.js';
import { openWatch } from './watch-client.js';

const wsUrl = (url: string) => `${url.replace(/^http/, 'ws')}/v1/watch`;

t.test('a WebSocket client that sends a message is closed with 1003 and a reason', async (t) => {
  const { url } = await startServer(t);
  const watch = await openWatch(url);
  await watch.until((m) => m.length >= 1);
  watch.socket.send('{"type":"SUBSCRIBE"}');
  const closed = await watch.waitClosed(10_000);
  t.equal(closed.code, 1003);
  t.match(closed.reason, /^unsupported_data/);
});

t.test('a frame over 64 KiB is closed with 1009', async (t) => {
  const { url } = await startServer(t);
  const watch = await openWatch(url);
  watch.socket.send(Buffer.alloc(64 * 1024 + 1, 0x61), { binary: true });
  const closed = await watch.waitClosed(10_000);
  t.equal(closed.code, 1009);
});

t.test('broken frames are closed with 1002 (protocol error) and 1007 (bad UTF-8)', async (t) => {
  const { url } = await startServer(t);
  // ws masks what it sends; these frames are written below it, straight to the TCP socket.
  const masked = (first: number, payload: Buffer) => Buffer.concat([Buffer.from([first, 0x80 | payload.length, 0, 0, 0, 0]), payload]);
  const frames: [string, Buffer, number][] = [
    ['a reserved opcode', masked(0x83, Buffer.alloc(0)), 1002],
    ['an unmasked frame', Buffer.from([0x81, 0x01, 0x61]), 1002],
    ['a text frame that is not UTF-8', masked(0x81, Buffer.from([0xff, 0xfe, 0xfd])), 1007],
    ['a continuation without a start', masked(0x80, Buffer.from('x')), 1002],
  ];
  for (const [what, bytes, code] of frames) {
    const watch = await openWatch(url);
    (watch.socket as unknown as { _socket: Socket })._socket.write(bytes);
    const closed = await watch.waitClosed(10_000);
    t.equal(closed.code, code, what);
  }
});

t.test('--max-watchers: over the limit, WebSocket and SSE watchers get a JSON 503 before the upgrade', async (t) => {
  const { url } = await startServer(t, { config: { maxWatchers: 2 } });
  const a = await openWatch(url);
  const sse = await fetch(`${url}/v1/watch`, { headers: { accept: 'text/event-stream' } });
  t.equal(sse.status, 200);

  const refused = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const ws = new WebSocket(wsUrl(url));
    ws.once('open', () => reject(new Error('the third watcher was accepted')));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.once('error', () => {});
  });
  t.equal(refused.status, 503);
  t.match(JSON.parse(refused.body), { error: 'too_many_watchers', message: /2 watchers/ });

  const refusedSse = await fetch(`${url}/v1/watch`, { headers: { accept: 'text/event-stream' } });
  t.equal(refusedSse.status, 503);
  t.match(await refusedSse.json(), { error: 'too_many_watchers' });

  // A freed slot is usable again.
  a.close();
  const again = await waitFor(async () => {
    try {
      return await openWatch(url);
    } catch {
      return undefined;
    }
  }, 10_000, 'a free watcher slot');
  t.equal(again.closed, undefined);
  again.close();
  await sse.body?.cancel();
});

/** Opens a keep-alive connection and completes one request on it, so the server has counted it. */
async function openKeptAlive(port: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  let text = '';
  socket.on('data', (d) => (text += d.toString()));
  socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
  await waitFor(() => parseRaw(text).json !== undefined, 10_000, 'the healthz answer');
  return socket;
}

t.test('--max-connections: a connection over the limit gets a JSON 503 and is closed', async (t) => {
  const { port } = await startServer(t, { config: { maxConnections: 3 } });
  const held = [await openKeptAlive(port), await openKeptAlive(port), await openKeptAlive(port)];
  const over = await rawRequest(port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n', { deadlineMs: 10_000 });
  t.ok(over.closed, 'the server closed it');
  t.equal(over.status, 503);
  t.match(over.headers['content-type'], /^application\/json/);
  t.match(over.json, { error: 'too_many_connections', message: /3 open connections/ });

  // The held connections still work, and a closed one frees its place.
  for (const socket of held) t.ok(socket.writable, 'a held connection is still open');
  held.pop()!.destroy();
  const after = await waitFor(async () => {
    const res = await rawRequest(port, 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', { deadlineMs: 10_000 });
    return res.status === 200 ? res : undefined;
  }, 10_000, 'a connection below the limit');
  t.same(after.json, { status: 'ok' });
  for (const socket of held) socket.destroy();
});
