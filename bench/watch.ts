// Issue 3 benchmark: propagation latency from a write's acknowledgement to the event's arrival at every
// watcher, with 1,000 watchers of one service and 10,000 watchers over 1,000 services; memory per idle watcher.
import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import { median, percentile, startBenchServer } from './server-process.js';

const agent = new Agent({ keepAlive: true, maxSockets: 8 });

/** Resolves with [sent, acknowledged] times. */
function put(url: string, path: string, body: object): Promise<[number, number]> {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const sent = performance.now();
    const req = request(`${url}${path}`, { method: 'PUT', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode! < 300 ? resolve([sent, performance.now()]) : reject(new Error(`HTTP ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(data);
  });
}

interface Watcher {
  socket: WebSocket;
  /** revision → arrival time (ms, performance clock) */
  arrivals: Map<number, number>;
}

// The revision is read off the message prefix, so the bench's own JSON parsing does not inflate latency.
const REVISION = /"revision":(\d+)/;

async function openWatchers(url: string, count: number, serviceOf: (i: number) => string): Promise<Watcher[]> {
  const watchers: Watcher[] = [];
  const batch = 200;
  for (let start = 0; start < count; start += batch) {
    const opened: Promise<void>[] = [];
    for (let i = start; i < Math.min(count, start + batch); i++) {
      const socket = new WebSocket(`${url.replace('http', 'ws')}/v1/watch?namespace=bench&service=${serviceOf(i)}&bookmarkSeconds=300`, { perMessageDeflate: false });
      const w: Watcher = { socket, arrivals: new Map() };
      let first = true;
      opened.push(
        new Promise((resolve, reject) => {
          socket.on('message', (data: Buffer) => {
            if (first) {
              first = false; // the SNAPSHOT
              resolve();
              return;
            }
            const m = REVISION.exec(data.toString('latin1', 0, 64));
            if (m) w.arrivals.set(Number(m[1]), performance.now());
          });
          socket.once('error', reject);
        }),
      );
      watchers.push(w);
    }
    await Promise.all(opened);
  }
  return watchers;
}

async function waitAll(watchers: Watcher[], expected: (w: Watcher) => number, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (watchers.some((w) => w.arrivals.size < expected(w))) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

async function scenario(watcherCount: number, services: number, writes: number) {
  const server = await startBenchServer();
  try {
    for (let s = 0; s < services; s++) await put(server.url, `/v1/namespaces/bench/services/s${s}/instances/seed`, { address: '10.0.0.1', port: 80, ttlSeconds: 3600 });
    const rssBefore = await server.rssBytes();
    const serviceOf = (i: number) => `s${i % services}`;
    const watchers = await openWatchers(server.url, watcherCount, serviceOf);
    await new Promise((r) => setTimeout(r, 500));
    const rssAfter = await server.rssBytes();

    const acks = new Map<number, { sent: number; at: number; service: string }>();
    const perService = new Map<string, number>();
    let revision = services;
    for (let i = 0; i < writes; i++) {
      const service = `s${Math.floor(Math.random() * services)}`;
      const [sent, at] = await put(server.url, `/v1/namespaces/bench/services/${service}/instances/w`, { address: '10.0.0.1', port: 1000 + i, ttlSeconds: 3600 });
      revision += 1;
      acks.set(revision, { sent, at, service });
      perService.set(service, (perService.get(service) ?? 0) + 1);
      // Paced writes: propagation is measured, not queueing behind a flood.
      await new Promise((r) => setTimeout(r, 10));
    }
    const complete = await waitAll(watchers, (w) => perService.get(serviceOf(watchers.indexOf(w))) ?? 0);
    const latencies: number[] = [];
    const fromSend: number[] = [];
    let lost = 0;
    watchers.forEach((w, i) => {
      for (const [rev, ack] of acks) {
        if (ack.service !== serviceOf(i)) continue;
        const arrived = w.arrivals.get(rev);
        if (arrived === undefined) lost++;
        else {
          // Watchers usually hear of a change before its writer does (events go out before the answer):
          // from the acknowledgement that is 0; from the moment the write was sent it is the whole path.
          latencies.push(Math.max(0, arrived - ack.at));
          fromSend.push(arrived - ack.sent);
        }
      }
    });
    for (const w of watchers) w.socket.terminate();
    return {
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      max: Math.max(...latencies),
      sendP50: percentile(fromSend, 50),
      sendP99: percentile(fromSend, 99),
      sendMax: Math.max(...fromSend),
      deliveries: latencies.length,
      lost: complete ? lost : lost || -1,
      memoryPerWatcherKiB: (rssAfter - rssBefore) / watcherCount / 1024,
    };
  } finally {
    await server.stop();
  }
}

export async function runWatchBench(runs = 3): Promise<Record<string, number>> {
  const one: Awaited<ReturnType<typeof scenario>>[] = [];
  const spread: Awaited<ReturnType<typeof scenario>>[] = [];
  for (let i = 0; i < runs; i++) {
    one.push(await scenario(1000, 1, 50));
    spread.push(await scenario(10_000, 1000, 200));
  }
  const med = (xs: { [k: string]: number }[], k: string) => Math.round(median(xs.map((x) => x[k]!)) * 100) / 100;
  return {
    watch_1000_one_service_p50_ms: med(one, 'p50'),
    watch_1000_one_service_p99_ms: med(one, 'p99'),
    watch_1000_one_service_max_ms: med(one, 'max'),
    watch_1000_from_send_p50_ms: med(one, 'sendP50'),
    watch_1000_from_send_p99_ms: med(one, 'sendP99'),
    watch_1000_from_send_max_ms: med(one, 'sendMax'),
    watch_1000_lost_events: Math.max(...one.map((r) => r.lost)),
    watch_10000_over_1000_services_p50_ms: med(spread, 'p50'),
    watch_10000_over_1000_services_p99_ms: med(spread, 'p99'),
    watch_10000_over_1000_services_max_ms: med(spread, 'max'),
    watch_10000_from_send_p50_ms: med(spread, 'sendP50'),
    watch_10000_from_send_p99_ms: med(spread, 'sendP99'),
    watch_10000_from_send_max_ms: med(spread, 'sendMax'),
    watch_10000_lost_events: Math.max(...spread.map((r) => r.lost)),
    idle_watcher_memory_kib: med(spread, 'memoryPerWatcherKiB'),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(await runWatchBench(Number(process.argv[2] ?? 1)));
}
