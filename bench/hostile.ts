// Issue 13 benchmark: what 10,000 idle or hostile watchers cost the server, and that --max-watchers bounds it.
// The bench holds every client as a raw TCP socket (a hand-made WebSocket handshake or SSE request), so its own
// cost stays small; the server is a `rollcall serve` child and its RSS is read from /metrics.
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { median, startBenchServer, type BenchServer } from './server-process.js';

const WATCHERS = Number(process.env.HOSTILE_WATCHERS ?? 10_000);
/** Opened beyond --max-watchers to show they are refused, not held. */
const EXTRA = 1_000;
const BATCH = 250;

/** keepalive_http is the reference: a bare kept-alive HTTP connection, what any watcher costs at least. */
type Kind = 'keepalive_http' | 'websocket' | 'sse' | 'websocket_never_reading';

interface Opened {
  sockets: Socket[];
  refused: number;
}

function requestFor(kind: Kind, port: number): string {
  const path = '/v1/watch?namespace=bench&service=idle&bookmarkSeconds=300';
  if (kind === 'keepalive_http') return `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`;
  if (kind === 'sse') return `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\n\r\n`;
  return (
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
    `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n\r\n`
  );
}

/** Opens one watcher; resolves with the socket once the server accepted it (101/200), or null when refused. */
function openOne(kind: Kind, port: number): Promise<Socket | null> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let head = '';
    const onData = (d: Buffer) => {
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      if (/^HTTP\/1\.1 (101|200) /.test(head)) {
        // A never-reading client stops here: what the server sends piles up in its buffers, not ours.
        if (kind === 'websocket_never_reading') socket.pause();
        else socket.on('data', () => {});
        resolve(socket);
      } else {
        socket.destroy();
        resolve(null);
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write(requestFor(kind, port));
  });
}

async function openMany(kind: Kind, port: number, count: number): Promise<Opened> {
  const opened: Opened = { sockets: [], refused: 0 };
  for (let start = 0; start < count; start += BATCH) {
    const batch = await Promise.all(Array.from({ length: Math.min(BATCH, count - start) }, () => openOne(kind, port)));
    for (const s of batch) {
      if (s) opened.sockets.push(s);
      else opened.refused++;
    }
  }
  return opened;
}

async function settle(server: BenchServer): Promise<number> {
  // RSS moves for a moment after a burst of sockets (allocator, lazy GC); read it after a short quiet spell.
  await new Promise((r) => setTimeout(r, 1000));
  return server.rssBytes();
}

async function measure(kind: Kind): Promise<{ kibPerWatcher: number; refused: number; accepted: number }> {
  // Idle keep-alive connections would be closed after 72 s, sooner than 11,000 of them open on a busy machine.
  process.env.ROLLCALL_KEEP_ALIVE_TIMEOUT_MS = '600000';
  const server = await startBenchServer(['--max-watchers', String(WATCHERS), '--max-connections', String(WATCHERS + EXTRA + 100)]);
  delete process.env.ROLLCALL_KEEP_ALIVE_TIMEOUT_MS;
  try {
    const port = Number(new URL(server.url).port);
    // A realistic snapshot: every watcher gets 20 instances first.
    for (let i = 0; i < 20; i++) {
      await fetch(`${server.url}/v1/namespaces/bench/services/idle/instances/i-${i}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ address: `10.0.0.${i + 1}`, port: 8080, ttlSeconds: 86400, tags: ['http'], metadata: { version: '1.0.0' } }),
      });
    }
    // Warm the code paths once so the baseline includes them.
    const warm = await openMany(kind, port, 50);
    for (const s of warm.sockets) s.destroy();
    const before = await settle(server);
    const opened = await openMany(kind, port, WATCHERS + EXTRA);
    const after = await settle(server);
    const accepted = opened.sockets.length;
    for (const s of opened.sockets) s.destroy();
    return { kibPerWatcher: (after - before) / accepted / 1024, refused: opened.refused, accepted };
  } finally {
    await server.stop();
  }
}

/** One run of each kind; the medians are taken by the caller over runs. */
export async function runHostileBench(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const kind of ['keepalive_http', 'websocket', 'sse', 'websocket_never_reading'] as const) {
    const r = await measure(kind);
    out[`idle_${kind}_kib_per_watcher`] = Math.round(r.kibPerWatcher * 10) / 10;
    out[`idle_${kind}_accepted`] = r.accepted;
    out[`idle_${kind}_refused_over_limit`] = r.refused;
  }
  return out;
}

export async function runHostileBenchMedian(runs = 3): Promise<Record<string, number>> {
  const results: Record<string, number>[] = [];
  for (let i = 0; i < runs; i++) {
    results.push(await runHostileBench());
    console.error(`hostile run ${i + 1}/${runs}:`, JSON.stringify(results[i]));
  }
  return Object.fromEntries(Object.keys(results[0]!).map((k) => [k, median(results.map((r) => r[k]!))]));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(await runHostileBenchMedian(Number(process.argv[2] ?? 1)));
}
