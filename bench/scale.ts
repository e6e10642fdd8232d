// Issue 14 benchmark: the cost curve at 10k, 100k and 1M instances, and a reconnect storm.
// The database is seeded straight into SQLite in one transaction (not N HTTP calls), then a server process is
// started on it: cold start to ready (every instance restored), RSS, database size, list of the 10k-instance
// service, a namespace-wide watch snapshot, heartbeats/s and registrations/s over HTTP, propagation p99 to
// 1,000 watchers while 10,000 heartbeats/s are served, and 1,000 watchers reconnecting at once to the
// 10,000-instance service while heartbeats and /healthz are probed.
//
//   npm run bench:scale -- [--sizes 10000,100000] [--max 1000000] [--runs 3] [--reference dir/src/cli/index.js]
//
// --reference path/to/cli/index.js runs another build (e.g. a copy of the build before a change) right before
// each run of this one, for a reference measured under the same load; --cli replaces this build.
// --storm-only N runs only the reconnect storm on N instances. Knobs for profiling: ROLLCALL_BENCH_NODE_ARGS
// (node flags for the server, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"), STORM_QUERY (the storm's watch query).
//
// Bounds: one machine runs the server, this driver (which receives every snapshot byte) and the probe, so
// they share the cores; the driver's own JSON and WebSocket work is part of every client-side figure.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import Database from 'better-sqlite3';
import WebSocket from 'ws';
import { migrate, readMigrations } from '../src/store/migrate.js';
import { median, percentile } from './server-process.js';

const progress = (what: string) => process.stderr.write(`[scale] ${new Date().toISOString().slice(11, 19)} ${what}\n`);
const HERE = dirname(fileURLToPath(import.meta.url));
const BIG = 10_000;
const PER_SERVICE = 1_000;

/** Rows straight into SQLite in one transaction: "big" holds 10,000, the rest 1,000 per service. */
export function seedDatabase(file: string, count: number): void {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  migrate(db, readMigrations(join(HERE, '../../migrations')));
  const insert = db.prepare(`INSERT INTO instances (namespace, service, id, address, port, status, weight, zone, tags,
    metadata, ttl_seconds, registered_at, last_heartbeat_at, revision, create_revision) VALUES (?, ?, ?, ?, ?, 'up', 1, ?, ?, ?, 3600, ?, ?, ?, ?)`);
  const now = Date.now();
  const zones = ['eu-west-1a', 'eu-west-1b', 'eu-west-1c'];
  db.transaction(() => {
    for (let i = 0; i < count; i++) {
      const service = i < BIG ? 'big' : `svc-${Math.floor((i - BIG) / PER_SERVICE)}`;
      const address = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
      insert.run('scale', service, `i-${i}`, address, 8080, zones[i % 3], '["http","v2"]', '{"version":"2.4.1"}', now, now, i + 1, i + 1);
    }
    db.prepare("UPDATE counters SET value = ? WHERE name = 'revision'").run(count);
    db.prepare("UPDATE counters SET value = ? WHERE name = 'compacted'").run(count);
  })();
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
}

interface Server {
  url: string;
  child: ChildProcess;
  readyMs: number;
  stop(): Promise<void>;
  rssBytes(): Promise<number>;
}

async function startServer(cli: string, dataDir: string): Promise<Server> {
  const started = performance.now();
  // ROLLCALL_BENCH_NODE_ARGS: extra node flags for the server only, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
  const nodeArgs = (process.env.ROLLCALL_BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, '--max-old-space-size=8192', cli, 'serve', '--port', '0', '--data-dir', dataDir, '--log-level', 'warn'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const read = (d: Buffer) => {
      out += d.toString();
      const m = /listening (?:at|on) https?:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    };
    child.stdout!.on('data', read);
    child.stderr!.on('data', read);
    child.once('exit', (code) => reject(new Error(`server exited with ${code}: ${out.slice(-2000)}`)));
  });
  child.stdout!.removeAllListeners('data').resume();
  child.stderr!.removeAllListeners('data').pipe(process.stderr);
  const url = `http://127.0.0.1:${port}`;
  for (;;) {
    const res = await fetch(`${url}/readyz`).catch(() => undefined);
    if (res?.ok) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  const readyMs = performance.now() - started;
  return {
    url,
    child,
    readyMs,
    async stop() {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
    async rssBytes() {
      const text = await (await fetch(`${url}/metrics`)).text();
      return Number(/^rollcall_process_resident_memory_bytes (\d+)/m.exec(text)?.[1] ?? Number.NaN);
    },
  };
}

const agent = new Agent({ keepAlive: true, maxSockets: 4 });

/** One request on a keep-alive socket; resolves with the time to the last byte (ms). */
function timed(url: string, method = 'GET', body?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const headers: Record<string, string | number> = body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) };
    const req = request(url, { method, agent, headers }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode! < 300 ? resolve(performance.now() - t0) : reject(new Error(`${method} ${url}: HTTP ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Opens a watch and resolves with the time until its SNAPSHOT arrived whole, and its size. */
function snapshotTime(url: string, query: string): Promise<{ ms: number; bytes: number; socket: WebSocket }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const socket = new WebSocket(`${url.replace('http', 'ws')}/v1/watch?${query}&bookmarkSeconds=300`, { perMessageDeflate: false, maxPayload: 2 ** 31 });
    socket.once('message', (data: Buffer) => resolve({ ms: performance.now() - t0, bytes: data.length, socket }));
    socket.once('error', reject);
    socket.once('close', (code) => reject(new Error(`watch closed with ${code} before its snapshot`)));
  });
}

/**
 * The server's own time for the list route so far (request in → last byte handed to the kernel, as its
 * rollcall_http_request_duration_seconds histogram has it): sum in seconds and count.
 */
async function listServerTime(url: string): Promise<{ sum: number; count: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const pick = (what: string) =>
    Number(new RegExp(`^rollcall_http_request_duration_seconds_${what}\\{method="GET",route="/v1/namespaces/:namespace/services/:service/instances",status="200"\\} (\\S+)`, 'm').exec(text)?.[1] ?? 0);
  return { sum: pick('sum'), count: pick('count') };
}

const instanceUrl = (url: string, i: number) =>
  `${url}/v1/namespaces/scale/services/${i < BIG ? 'big' : `svc-${Math.floor((i - BIG) / PER_SERVICE)}`}/instances/i-${i}`;

/** Heartbeats to random instances over 64 keep-alive connections: the tracker, awaitable and stoppable. */
function heartbeatsPerSec(url: string, count: number, seconds: number, overallRate?: number): Promise<autocannon.Result> & { stop(): void } {
  const tracker = autocannon({
    url,
    connections: 64,
    duration: seconds,
    ...(overallRate === undefined ? {} : { overallRate }),
    requests: [{ method: 'PUT', setupRequest: (req) => ({ ...req, path: new URL(`${instanceUrl(url, Math.floor(Math.random() * count))}/heartbeat`).pathname }) }],
  });
  return tracker as unknown as Promise<autocannon.Result> & { stop(): void };
}

/** Propagation from a write's acknowledgement to 1,000 watchers of one service, while heartbeats run at a fixed rate. */
async function propagation(url: string, count: number, watchers = 1000, writes = 100): Promise<{ p99: number; p50: number; heartbeatsPerSec: number }> {
  const sockets: WebSocket[] = [];
  const arrivals: Map<number, number>[] = [];
  for (let start = 0; start < watchers; start += 200) {
    const opened: Promise<void>[] = [];
    for (let i = start; i < Math.min(watchers, start + 200); i++) {
      const socket = new WebSocket(`${url.replace('http', 'ws')}/v1/watch?namespace=scale&service=prop&bookmarkSeconds=300`, { perMessageDeflate: false });
      const seen = new Map<number, number>();
      arrivals.push(seen);
      sockets.push(socket);
      let first = true;
      opened.push(
        new Promise((resolve, reject) => {
          socket.on('message', (data: Buffer) => {
            if (first) {
              first = false;
              return resolve();
            }
            const m = /"revision":(\d+)/.exec(data.toString('latin1', 0, 64));
            if (m) seen.set(Number(m[1]), performance.now());
          });
          socket.once('error', reject);
        }),
      );
    }
    await Promise.all(opened);
  }
  const load = heartbeatsPerSec(url, count, 6 + writes / 50, 10_000);
  await new Promise((r) => setTimeout(r, 1000));
  // From the moment the write was sent: watchers usually hear of a change before its writer is answered.
  const acks = new Map<number, number>();
  for (let i = 0; i < writes; i++) {
    const body = JSON.stringify({ address: '10.0.0.1', port: 1000 + i, ttlSeconds: 3600 });
    const sent = performance.now();
    const res = await fetch(`${url}/v1/namespaces/scale/services/prop/instances/w`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body });
    const { revision } = (await res.json()) as { revision: number };
    acks.set(revision, sent);
    await new Promise((r) => setTimeout(r, 20));
  }
  const deadline = Date.now() + 30_000;
  while (arrivals.some((a) => a.size < writes) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const result = await load;
  const latencies: number[] = [];
  for (const seen of arrivals) for (const [rev, sent] of acks) latencies.push((seen.get(rev) ?? Number.POSITIVE_INFINITY) - sent);
  for (const s of sockets) s.terminate();
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), heartbeatsPerSec: Math.round(result.requests.average) };
}

/**
 * 1,000 watchers of the 10,000-instance service connect at once while heartbeats run (2,000/s) and a probe
 * times one heartbeat and one /healthz every 10 ms. Returns the probes' max and p99 and how long the storm took.
 */
export async function reconnectStorm(url: string, count: number, watchers = 1000): Promise<Record<string, number>> {
  // The probe runs in its own process: this one is busy receiving the watchers' snapshots, and its own
  // event-loop lag must not count as the server's.
  const prober = spawn(process.execPath, [fileURLToPath(import.meta.url), '--probe', url, '--count', String(count)], { stdio: ['pipe', 'pipe', 'inherit'] });
  let probeOut = '';
  prober.stdout!.on('data', (d: Buffer) => (probeOut += d.toString()));
  const probeExited = new Promise((r) => prober.once('exit', r));
  await new Promise<void>((resolve) => prober.stdout!.once('data', () => resolve()));
  const load = heartbeatsPerSec(url, count, 600, 2000);
  await new Promise((r) => setTimeout(r, 500));
  // The server's own event-loop delay (prom-client's monitorEventLoopDelay, reset at every scrape): what the
  // probes see minus this machine's CPU contention between the three processes.
  await fetch(`${url}/metrics`).then((r) => r.text());
  const t0 = performance.now();
  const settled = await Promise.allSettled(Array.from({ length: watchers }, () => snapshotTime(url, process.env.STORM_QUERY ?? 'namespace=scale&service=big')));
  const stormMs = performance.now() - t0;
  const snapshots = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  for (const s of snapshots) s.socket.terminate();
  const metrics = await (await fetch(`${url}/metrics`)).text();
  const lag = (name: string) => Math.round(Number(new RegExp(`^rollcall_nodejs_eventloop_lag_${name}_seconds (\\S+)`, 'm').exec(metrics)?.[1]) * 10_000) / 10;
  prober.stdin!.end();
  await probeExited;
  const { probes, errors: probeErrors } = JSON.parse(probeOut.slice(probeOut.indexOf('\n') + 1)) as { probes: number[]; errors: number };
  load.stop();
  await load;
  return {
    storm_ms: Math.round(stormMs),
    storm_probe_max_ms: Math.round(Math.max(...probes) * 10) / 10,
    storm_probe_p99_ms: Math.round(percentile(probes, 99) * 10) / 10,
    storm_probes: probes.length,
    storm_server_loop_max_ms: lag('max'),
    storm_server_loop_p99_ms: lag('p99'),
    storm_snapshot_bytes: snapshots[0]?.bytes ?? 0,
    storm_failed_watchers: watchers - snapshots.length,
    storm_probe_errors: probeErrors,
  };
}

/** Only the reconnect storm, on `count` instances (for profiling it). */
export async function runStorm(count: number, cli: string): Promise<Record<string, number>> {
  const dataDir = mkdtempSync(join(tmpdir(), 'rollcall-scale-'));
  try {
    seedDatabase(join(dataDir, 'rollcall.db'), count);
    const server = await startServer(cli, dataDir);
    try {
      return await reconnectStorm(server.url, count);
    } finally {
      await server.stop();
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

export async function runScale(count: number, cli: string, storm: boolean): Promise<Record<string, number>> {
  const dataDir = mkdtempSync(join(tmpdir(), 'rollcall-scale-'));
  const file = join(dataDir, 'rollcall.db');
  try {
    seedDatabase(file, count);
    const dbBytes = statSync(file).size;
    progress(`${count}: seeded, starting the server`);
    const server = await startServer(cli, dataDir);
    try {
      await new Promise((r) => setTimeout(r, 1000));
      const rss = await server.rssBytes();
      const list: number[] = [];
      const before = await listServerTime(server.url);
      for (let i = 0; i < 15; i++) list.push(await timed(`${server.url}/v1/namespaces/scale/services/big/instances`));
      const after = await listServerTime(server.url);
      const snap: number[] = [];
      for (let i = 0; i < 3; i++) {
        const s = await snapshotTime(server.url, 'namespace=scale');
        snap.push(s.ms);
        s.socket.terminate();
      }
      const hb = await heartbeatsPerSec(server.url, count, 5);
      let next = 0;
      const reg = await autocannon({
        url: server.url,
        connections: 64,
        amount: 10_000,
        requests: [
          {
            method: 'PUT',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ address: '10.9.0.1', port: 8080, ttlSeconds: 3600, tags: ['http'] }),
            setupRequest: (req) => ({ ...req, path: `/v1/namespaces/scale/services/new-${next % 10}/instances/n-${next++}` }),
          },
        ],
      });
      progress(`${count}: list, snapshot, heartbeats, registrations done; propagation`);
      const prop = await propagation(server.url, count);
      const out: Record<string, number> = {
        instances: count,
        rss_mib: Math.round(rss / 2 ** 20),
        db_mib: Math.round(dbBytes / 2 ** 20),
        ready_ms: Math.round(server.readyMs),
        list_10k_ms: Math.round(median(list) * 10) / 10,
        list_10k_server_ms: Math.round(((after.sum - before.sum) / (after.count - before.count)) * 10_000) / 10,
        ns_snapshot_ms: Math.round(median(snap)),
        heartbeats_http_per_sec: Math.round(hb.requests.average),
        registrations_per_sec: Math.round(reg['2xx'] / (reg.duration || 1)),
        propagation_p50_ms: Math.round(prop.p50 * 10) / 10,
        propagation_p99_ms: Math.round(prop.p99 * 10) / 10,
        propagation_heartbeats_per_sec: prop.heartbeatsPerSec,
      };
      progress(`${count}: ${JSON.stringify(out)}`);
      if (storm) {
        progress(`${count}: reconnect storm`);
        Object.assign(out, await reconnectStorm(server.url, count));
        progress(`${count}: ${JSON.stringify(out)}`);
      }
      return out;
    } finally {
      await server.stop();
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Empty server RSS, the reference for "RSS at zero". */
export async function emptyRss(cli: string): Promise<number> {
  const dataDir = mkdtempSync(join(tmpdir(), 'rollcall-scale-'));
  try {
    const server = await startServer(cli, dataDir);
    await new Promise((r) => setTimeout(r, 1000));
    const rss = await server.rssBytes();
    await server.stop();
    return Math.round(rss / 2 ** 20);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/**
 * The curve: medians of `runs` runs at each size, one row per size. With a reference build, each run of the
 * reference is made right before the same run of this build, so both meet the same machine load.
 */
export async function runScaleBench(
  options: { sizes?: number[]; runs?: number; cli?: string; reference?: string; storm?: boolean } = {},
): Promise<{ build: string; row: Record<string, number> }[]> {
  const builds: [string, string][] = [['this build', options.cli ?? join(HERE, '../src/cli/index.js')]];
  if (options.reference !== undefined) builds.unshift(['reference', options.reference]);
  const runs = options.runs ?? 3;
  const rows: { build: string; row: Record<string, number> }[] = [];
  const medianRow = (results: Record<string, number>[]) => Object.fromEntries(Object.keys(results[0]!).map((k) => [k, median(results.map((r) => r[k]!))]));
  const zero = builds.map((): number[] => []);
  for (let i = 0; i < runs; i++) for (const [b, [, cli]] of builds.entries()) zero[b]!.push(await emptyRss(cli));
  for (const [b, [build]] of builds.entries()) rows.push({ build, row: { instances: 0, rss_mib: median(zero[b]!) } });
  for (const size of options.sizes ?? [10_000, 100_000]) {
    const results = builds.map((): Record<string, number>[] => []);
    for (let i = 0; i < runs; i++) {
      for (const [b, [, cli]] of builds.entries()) results[b]!.push(await runScale(size, cli, options.storm !== false && size === 10_000));
    }
    for (const [b, [build]] of builds.entries()) rows.push({ build, row: medianRow(results[b]!) });
  }
  return rows;
}

/** The storm's probe process: one heartbeat and one /healthz every 10 ms until stdin closes, then the times. */
async function probe(url: string, count: number): Promise<void> {
  const probes: number[] = [];
  let errors = 0;
  let probing = true;
  process.stdin.resume();
  process.stdin.once('end', () => (probing = false));
  process.stdout.write('ready\n');
  while (probing) {
    for (const [target, method] of [[`${instanceUrl(url, Math.floor(Math.random() * count))}/heartbeat`, 'PUT'], [`${url}/healthz`, 'GET']] as const) {
      try {
        probes.push(await timed(target, method));
      } catch {
        errors++;
      }
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  process.stdout.write(`${JSON.stringify({ probes, errors })}\n`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (name: string) => {
    const i = process.argv.indexOf(`--${name}`);
    return i < 0 ? undefined : process.argv[i + 1];
  };
  const probeUrl = arg('probe');
  const cli = arg('cli') ?? join(HERE, '../src/cli/index.js');
  const stormOnly = arg('storm-only');
  if (probeUrl !== undefined) {
    await probe(probeUrl, Number(arg('count')));
  } else if (stormOnly !== undefined) {
    console.log(JSON.stringify(await runStorm(Number(stormOnly), cli)));
  } else {
    const sizes = (arg('sizes') ?? '10000,100000').split(',').map(Number);
    const max = arg('max');
    if (max !== undefined) sizes.push(Number(max));
    const reference = arg('reference');
    const rows = await runScaleBench({
      sizes,
      runs: Number(arg('runs') ?? 3),
      cli,
      ...(reference === undefined ? {} : { reference }),
      storm: arg('storm') !== 'off',
    });
    for (const { build, row } of rows) console.log(build.padEnd(12), JSON.stringify(row));
  }
}
