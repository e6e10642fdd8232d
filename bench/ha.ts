// Issue 10 benchmark: rollcall on etcd (3 replicas over a 3-member etcd cluster on this machine) beside rollcall on
// SQLite (one process) and beside raw etcd driven by the same load through the etcd3 client:
// - registrations/s: N new instances (rollcall: PUT, spread over the replicas; raw etcd: a lease grant + a put
//   with that lease per registration, what a registration with a TTL needs at the least), 64 in flight;
// - heartbeats/s: one replica at a time, and all three at once;
// - propagation p50/p99 from the moment a write is sent to each of 1,000 watchers receiving it, watchers spread
//   over the 3 replicas; and the same for 1,000 raw etcd watchers spread over the 3 members, same writes;
// - memory per instance per replica (resident set growth over the N registrations).
// The load generator, the watchers, 3 replicas and 3 etcd members share the machine's 2 cores: every figure is
// bounded by that, and the ratios (rollcall on etcd / raw etcd) are the meaningful part.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import autocannon from 'autocannon';
import { Etcd3, type Watcher } from 'etcd3';
import WebSocket from 'ws';
import { freePort, median, percentile, startBenchServer, type BenchServer } from './server-process.js';

const N = 5000;
const IN_FLIGHT = 64;
const WATCHERS = Number(process.env.BENCH_HA_WATCHERS ?? 1000);
const WRITES = 100;
const BODY = (i: number) => JSON.stringify({ address: `10.2.${Math.floor(i / 250)}.${i % 250}`, port: 8080, ttlSeconds: 3600 });

async function until(what: string, condition: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`bench: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A 3-member etcd cluster on loopback, fsync on (etcd's default): the durability a deployment has. */
async function startEtcd(): Promise<{ endpoints: string[]; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'rollcall-bench-etcd-'));
  const members = await Promise.all([0, 1, 2].map(async (i) => ({ name: `m${i}`, client: await freePort(), peer: await freePort() })));
  const cluster = members.map((m) => `${m.name}=http://127.0.0.1:${m.peer}`).join(',');
  const children: ChildProcess[] = members.map((m) =>
    spawn(
      'etcd',
      [
        '--name', m.name, '--data-dir', join(dir, m.name),
        '--listen-client-urls', `http://127.0.0.1:${m.client}`, '--advertise-client-urls', `http://127.0.0.1:${m.client}`,
        '--listen-peer-urls', `http://127.0.0.1:${m.peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${m.peer}`,
        '--initial-cluster', cluster, '--initial-cluster-state', 'new', '--initial-cluster-token', `bench-${process.pid}`,
        '--logger', 'zap', '--log-level', 'error',
      ],
      { stdio: 'ignore' },
    ),
  );
  const endpoints = members.map((m) => `http://127.0.0.1:${m.client}`);
  for (const e of endpoints) {
    await until(`etcd ${e}`, async () => ((await (await fetch(`${e}/health`)).json()) as { health: string }).health === 'true');
  }
  return {
    endpoints,
    async stop() {
      await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : (c.once('exit', r), c.kill('SIGKILL'))))));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** N registrations through rollcall, spread over `servers`, IN_FLIGHT at a time in all. Returns registrations/s. */
async function registerAll(servers: BenchServer[], service: string): Promise<number> {
  let next = 0;
  const per = Math.ceil(N / servers.length);
  const results = await Promise.all(
    servers.map((s, k) =>
      autocannon({
        url: s.url,
        connections: Math.floor(IN_FLIGHT / servers.length),
        amount: Math.min(per, N - k * per),
        requests: [
          {
            method: 'PUT',
            headers: { 'content-type': 'application/json' },
            setupRequest: (req) => {
              const i = next++;
              return { ...req, path: `/v1/namespaces/bench/services/${service}/instances/i-${i}`, body: BODY(i) };
            },
          },
        ],
      }),
    ),
  );
  const ok = results.reduce((sum, r) => sum + r['2xx'], 0);
  if (ok !== N) throw new Error(`registrations: ${ok} of ${N} answered 2xx`);
  return Math.round(N / Math.max(...results.map((r) => r.duration)));
}

async function heartbeats(servers: BenchServer[], service: string, connections: number, seconds: number): Promise<number> {
  const results = await Promise.all(
    servers.map((s) =>
      autocannon({
        url: s.url,
        connections,
        duration: seconds,
        requests: [{ method: 'PUT', setupRequest: (req) => ({ ...req, path: `/v1/namespaces/bench/services/${service}/instances/i-${Math.floor(Math.random() * N)}/heartbeat` }) }],
      }),
    ),
  );
  for (const r of results) if (r.non2xx > 0) throw new Error(`${r.non2xx} heartbeats failed`);
  return Math.round(results.reduce((sum, r) => sum + r.requests.average, 0));
}

/** The raw etcd reference: per registration a lease grant and a put with the lease, IN_FLIGHT at a time. */
async function rawRegistrations(client: Etcd3, prefix: string): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      for (let i = next++; i < N; i = next++) {
        const lease = client.lease(3600, { autoKeepAlive: false });
        await lease.put(`${prefix}reg/i-${i}`).value(BODY(i));
      }
    }),
  );
  return Math.round(N / ((performance.now() - started) / 1000));
}

interface Propagation {
  p50: number;
  p99: number;
}

/** WRITES writes, one every 20 ms, sent round-robin by `write`; latency = arrival at each watcher − send time. */
async function propagate(write: (i: number) => Promise<unknown>, sentAt: Map<string, number>, samples: number[], expected: number): Promise<Propagation> {
  for (let i = 0; i < WRITES; i++) {
    sentAt.set(`p-${i}`, performance.now());
    void write(i);
    await new Promise((r) => setTimeout(r, 20));
  }
  await until(`every watcher got every write (${expected})`, async () => samples.length >= expected, 300_000).catch((err: Error) => {
    throw new Error(`${err.message}: ${samples.length} arrived`);
  });
  return { p50: Math.round(percentile(samples, 50) * 10) / 10, p99: Math.round(percentile(samples, 99) * 10) / 10 };
}

async function rollcallPropagation(servers: BenchServer[]): Promise<Propagation> {
  const sentAt = new Map<string, number>();
  const samples: number[] = [];
  const sockets: WebSocket[] = [];
  for (let i = 0; i < WATCHERS; i++) {
    const base = servers[i % servers.length]!.url.replace('http', 'ws');
    const ws = new WebSocket(`${base}/v1/watch?namespace=bench&service=prop&bookmarkSeconds=300`, { perMessageDeflate: false });
    ws.on('message', (data) => {
      const text = data.toString();
      const id = /"id":"(p-\d+)"/.exec(text)?.[1];
      const sent = id === undefined || !text.startsWith('{"type":"ADDED"') ? undefined : sentAt.get(id);
      if (sent !== undefined) samples.push(performance.now() - sent);
    });
    sockets.push(ws);
  }
  await Promise.all(sockets.map((ws) => new Promise((resolve, reject) => (ws.once('message', resolve), ws.once('error', reject)))));
  try {
    return await propagate(
      (i) => fetch(`${servers[i % servers.length]!.url}/v1/namespaces/bench/services/prop/instances/p-${i}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: BODY(i) }),
      sentAt,
      samples,
      WATCHERS * WRITES,
    );
  } finally {
    for (const ws of sockets) ws.terminate();
  }
}

async function etcdPropagation(endpoints: string[], prefix: string): Promise<Propagation> {
  const sentAt = new Map<string, number>();
  const samples: number[] = [];
  // One client per member, so the watchers are spread over the three like the replicas' watchers are.
  const clients = endpoints.map((e) => new Etcd3({ hosts: [e] }));
  const writer = new Etcd3({ hosts: endpoints });
  let watchers: Watcher[] = [];
  try {
    watchers = await Promise.all(
      Array.from({ length: WATCHERS }, (_, i) => clients[i % clients.length]!.watch().prefix(`${prefix}prop/`).create()),
    );
    for (const w of watchers) {
      w.on('put', (kv) => {
        const sent = sentAt.get(kv.key.toString().slice(`${prefix}prop/`.length));
        if (sent !== undefined) samples.push(performance.now() - sent);
      });
    }
    return await propagate((i) => writer.lease(3600, { autoKeepAlive: false }).put(`${prefix}prop/p-${i}`).value(BODY(i)).exec(), sentAt, samples, WATCHERS * WRITES);
  } finally {
    // Cancelled before the clients close: a watcher whose stream ends under it schedules a reconnect that would
    // keep the process alive.
    await Promise.all(watchers.map((w) => w.cancel()));
    for (const c of clients) c.close();
    writer.close();
  }
}

export async function runHaBench(): Promise<Record<string, number>> {
  const etcd = await startEtcd();
  const etcdArgs = (prefix: string) => ['--store', 'etcd', '--etcd-endpoints', etcd.endpoints.join(','), '--etcd-prefix', prefix];
  try {
    // Raw etcd first, on its own prefix, while no replica runs.
    const raw = new Etcd3({ hosts: etcd.endpoints });
    const rawRegistrationsPerSec = await rawRegistrations(raw, '/bench-raw/');
    raw.close();
    const rawWatch = await etcdPropagation(etcd.endpoints, '/bench-raw/');

    const replicas = await Promise.all([0, 1, 2].map(() => startBenchServer(etcdArgs('/bench-rollcall'))));
    let etcdResults: Record<string, number>;
    try {
      const before = await Promise.all(replicas.map((r) => r.rssBytes()));
      const registrationsPerSec = await registerAll(replicas, 'reg');
      const after = await Promise.all(replicas.map((r) => r.rssBytes()));
      // One replica at a time, then all three at once.
      const perReplica: number[] = [];
      for (const replica of replicas) perReplica.push(await heartbeats([replica], 'reg', 64, 5));
      const heartbeatOne = median(perReplica);
      const heartbeatAll = await heartbeats(replicas, 'reg', 32, 5);
      const prop = await rollcallPropagation(replicas);
      etcdResults = {
        etcd_registrations_per_sec: registrationsPerSec,
        raw_etcd_lease_puts_per_sec: rawRegistrationsPerSec,
        etcd_registrations_pct_of_raw: Math.round((registrationsPerSec / rawRegistrationsPerSec) * 100),
        etcd_heartbeats_per_sec_one_replica: heartbeatOne,
        etcd_heartbeats_per_sec_3_replicas_total: heartbeatAll,
        etcd_propagation_p50_ms: prop.p50,
        etcd_propagation_p99_ms: prop.p99,
        raw_etcd_watch_p50_ms: rawWatch.p50,
        raw_etcd_watch_p99_ms: rawWatch.p99,
        etcd_bytes_per_instance_per_replica: Math.round(median(after.map((a, k) => (a - before[k]!) / N))),
      };
    } finally {
      await Promise.all(replicas.map((r) => r.stop()));
    }

    const sqlite = await startBenchServer();
    try {
      const before = await sqlite.rssBytes();
      const registrationsPerSec = await registerAll([sqlite], 'reg');
      const after = await sqlite.rssBytes();
      const heartbeatOne = await heartbeats([sqlite], 'reg', 64, 5);
      const prop = await rollcallPropagation([sqlite]);
      return {
        ...etcdResults,
        sqlite_registrations_per_sec: registrationsPerSec,
        sqlite_heartbeats_per_sec: heartbeatOne,
        sqlite_propagation_p50_ms: prop.p50,
        sqlite_propagation_p99_ms: prop.p99,
        sqlite_bytes_per_instance: Math.round((after - before) / N),
      };
    } finally {
      await sqlite.stop();
    }
  } finally {
    await etcd.stop();
  }
}

export async function runHaBenchMedian(runs = 3): Promise<Record<string, number>> {
  const results: Record<string, number>[] = [];
  for (let i = 0; i < runs; i++) {
    results.push(await runHaBench());
    // Each run on stderr as it ends: on a busy machine a later run may not finish.
    console.error(`ha bench run ${i + 1}: ${JSON.stringify(results.at(-1))}`);
  }
  return Object.fromEntries(Object.keys(results[0]!).map((k) => [k, median(results.map((r) => r[k]!))]));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(await runHaBenchMedian(Number(process.argv[2] ?? 1)));
}
