// Issue 14 benchmark: lease renewals/s against a registry holding 10,000 instances, every way rollcall offers
// them, beside etcd's own LeaseKeepAlive stream holding 10,000 leases, driven by the same load from the same
// process:
// - the lease stream (GET /v1/leases): 64 messages in flight per WebSocket, one renewal per message (the shape of
//   etcd's protocol, one lease ID per request) and 100 per message (what a client with many registrations sends),
//   from one client process and from two (each its own socket): one Node process sending and reading a frame per
//   renewal is itself a bound, so the second client shows what the server takes;
// - the batch route (POST /v1/leases/renew): 100 instances per request, 64 connections;
// - one PUT …/heartbeat per renewal, 64 connections (the issue 2 path);
// - etcd 3.4 (Debian's etcd-server), one member on loopback: LeaseKeepAlive gRPC streams with 64 requests in flight,
//   from one and from two client processes, exactly as the lease stream with one renewal per message.
// Stream drivers run as child processes of this file (`node dist/bench/leases.js drive …`), one per client.
// Each figure counts renewals acknowledged during MEASURE_MS after a WARMUP_MS warm-up.
import autocannon from 'autocannon';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Etcd3 } from 'etcd3';
import WebSocket from 'ws';
import { freePort, median, startBenchServer } from './server-process.js';

const INSTANCES = 10_000;
// Messages in flight per stream (the concurrency 64); BENCH_IN_FLIGHT changes it, for both registries alike.
const IN_FLIGHT = Number(process.env.BENCH_IN_FLIGHT ?? 64);
const PER_MESSAGE = 100;
const WARMUP_MS = 1000;
const MEASURE_MS = 5000;
const REGISTER_BODY = JSON.stringify({ address: '10.0.0.1', port: 8080, ttlSeconds: 3600 });

const keyOf = (i: number) => `bench/svc-${i % 100}/i-${i}`;
const pathOf = (i: number) => `/v1/namespaces/bench/services/svc-${i % 100}/instances/i-${i}`;

async function registerAll(url: string): Promise<void> {
  let next = 0;
  const res = await autocannon({
    url,
    connections: 64,
    amount: INSTANCES,
    requests: [{ method: 'PUT', headers: { 'content-type': 'application/json' }, body: REGISTER_BODY, setupRequest: (req) => ({ ...req, path: pathOf(next++) }) }],
  });
  if (res['2xx'] !== INSTANCES) throw new Error(`registrations failed: ${res['2xx']} of ${INSTANCES}`);
}

/**
 * Keeps IN_FLIGHT messages in flight on one stream, each answered message replaced at once by the next; counts the
 * renewals acknowledged in the measured window. `send(i)` sends message i, `onAnswer` turns an answer into a count.
 */
function pipeline(send: (i: number) => void, subscribe: (onAnswer: (renewed: number) => void) => void): Promise<number> {
  return new Promise((resolve) => {
    let sent = 0;
    let inFlight = 0;
    let counted = 0;
    const start = Date.now();
    const measureFrom = start + WARMUP_MS;
    const stopAt = measureFrom + MEASURE_MS;
    const next = () => {
      send(sent++);
      inFlight++;
    };
    subscribe((renewed) => {
      inFlight--;
      const now = Date.now();
      if (now >= measureFrom && now < stopAt) counted += renewed;
      if (now < stopAt) next();
      else if (inFlight === 0) resolve(Math.round(counted / (MEASURE_MS / 1000)));
    });
    for (let i = 0; i < IN_FLIGHT; i++) next();
  });
}

async function streamRenewals(url: string, perMessage: number): Promise<number> {
  // Messages built beforehand: the load generator should spend its core on the socket, not on JSON.
  const messages: string[] = [];
  for (let i = 0; i < INSTANCES; i += perMessage) {
    messages.push(JSON.stringify({ type: 'RENEW', instances: Array.from({ length: perMessage }, (_, k) => keyOf(i + k)) }));
  }
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/leases`);
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  try {
    return await pipeline(
      (i) => ws.send(messages[i % messages.length]!),
      (onAnswer) =>
        ws.on('message', (data) => {
          const text = data.toString();
          // Every result renewed carries expiresAt; one that failed carries error instead and is not counted.
          let renewed = 0;
          for (let at = text.indexOf('"expiresAt"'); at !== -1; at = text.indexOf('"expiresAt"', at + 11)) renewed++;
          if (text.includes('"error"')) throw new Error(`a renewal failed: ${text.slice(0, 300)}`);
          onAnswer(renewed);
        }),
    );
  } finally {
    ws.close();
  }
}

async function batchRenewals(url: string): Promise<number> {
  const bodies: string[] = [];
  for (let i = 0; i < INSTANCES; i += PER_MESSAGE) bodies.push(JSON.stringify({ instances: Array.from({ length: PER_MESSAGE }, (_, k) => keyOf(i + k)) }));
  let next = 0;
  const res = await autocannon({
    url: `${url}/v1/leases/renew`,
    connections: 64,
    duration: (WARMUP_MS + MEASURE_MS) / 1000,
    requests: [{ method: 'POST', headers: { 'content-type': 'application/json' }, setupRequest: (req) => ({ ...req, body: bodies[next++ % bodies.length]! }) }],
  });
  if (res.non2xx > 0) throw new Error(`${res.non2xx} batch renewals failed`);
  return Math.round(res.requests.average * PER_MESSAGE);
}

async function httpRenewals(url: string): Promise<number> {
  let next = 0;
  const res = await autocannon({
    url,
    connections: 64,
    duration: (WARMUP_MS + MEASURE_MS) / 1000,
    requests: [{ method: 'PUT', setupRequest: (req) => ({ ...req, path: `${pathOf(next++ % INSTANCES)}/heartbeat` }) }],
  });
  if (res.non2xx > 0) throw new Error(`${res.non2xx} heartbeats failed`);
  return Math.round(res.requests.average);
}

export function haveEtcd(): boolean {
  return spawnSync('etcd', ['--version'], { stdio: 'ignore' }).status === 0;
}

/**
 * One etcd member on loopback with a temp data dir. --unsafe-no-fsync only speeds up granting the 10,000 leases
 * beforehand: a keep-alive is answered by the leader's lessor in memory and writes nothing.
 */
async function startEtcd(): Promise<{ url: string; stop(): Promise<void> }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'rollcall-bench-etcd-'));
  const clientUrl = `http://127.0.0.1:${await freePort()}`;
  const peerUrl = `http://127.0.0.1:${await freePort()}`;
  const child = spawn(
    'etcd',
    ['--name', 'bench', '--data-dir', dataDir, '--listen-client-urls', clientUrl, '--advertise-client-urls', clientUrl, '--listen-peer-urls', peerUrl,
      '--initial-advertise-peer-urls', peerUrl, '--initial-cluster', `bench=${peerUrl}`, '--unsafe-no-fsync', '--log-level', 'error', '--logger', 'zap'],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const health = (await (await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(1000) })).json()) as { health?: string };
      if (health.health === 'true') break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline || child.exitCode !== null) throw new Error('etcd did not become healthy within 30 s');
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url: clientUrl,
    async stop() {
      child.kill('SIGKILL');
      await exited;
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Drives one LeaseKeepAlive stream over the leases in idsFile (one client process). */
async function etcdStreamRenewals(endpoint: string, idsFile: string): Promise<number> {
  const ids = JSON.parse(readFileSync(idsFile, 'utf8')) as string[];
  const client = new Etcd3({ hosts: endpoint });
  const stream = await client.leaseClient.leaseKeepAlive();
  try {
    return await pipeline(
      (i) => stream.write({ ID: ids[i % ids.length]! }),
      (onAnswer) =>
        stream.on('data', (res) => {
          if (Number(res.TTL) <= 0) throw new Error(`etcd lost lease ${res.ID}`);
          onAnswer(1);
        }),
    );
  } finally {
    stream.end();
    client.close();
  }
}

/** Runs `clients` driver processes at once (`node leases.js drive …args`) and sums their renewals/s. */
async function driven(clients: number, args: string[]): Promise<number> {
  const results = await Promise.all(
    Array.from(
      { length: clients },
      () =>
        new Promise<number>((resolve, reject) => {
          const child = spawn(process.execPath, [fileURLToPath(import.meta.url), 'drive', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
          let out = '';
          child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
          child.once('exit', (code) => (code === 0 ? resolve(Number(out.trim())) : reject(new Error(`driver ${args.join(' ')} exited ${code}`))));
        }),
    ),
  );
  return results.reduce((a, b) => a + b, 0);
}

/** etcd with INSTANCES leases granted, their IDs in a file the drivers read. */
async function startEtcdWithLeases(): Promise<{ url: string; idsFile: string; stop(): Promise<void> }> {
  const etcd = await startEtcd();
  const dir = mkdtempSync(join(tmpdir(), 'rollcall-bench-leases-'));
  const client = new Etcd3({ hosts: etcd.url });
  const ids: string[] = [];
  try {
    for (let i = 0; i < INSTANCES; i += 64) {
      const granted = await Promise.all(Array.from({ length: Math.min(64, INSTANCES - i) }, () => client.leaseClient.leaseGrant({ TTL: 3600 })));
      for (const g of granted) ids.push(g.ID);
    }
  } finally {
    client.close();
  }
  const idsFile = join(dir, 'ids.json');
  writeFileSync(idsFile, JSON.stringify(ids));
  return {
    url: etcd.url,
    idsFile,
    async stop() {
      rmSync(dir, { recursive: true, force: true });
      await etcd.stop();
    },
  };
}

/**
 * Renewals acknowledged per second, each way, against 10,000 instances (and 10,000 etcd leases). Both registries
 * run for the whole round and each rollcall stream figure is measured right beside its etcd twin, so a machine
 * whose load drifts weighs on both: the `…_vs_etcd` ratios are steadier than the figures themselves.
 */
export async function runLeaseBench(): Promise<Record<string, number>> {
  const server = await startBenchServer();
  const etcd = haveEtcd() ? await startEtcdWithLeases() : undefined;
  const etcdDriven = async (clients: number) => (etcd ? driven(clients, ['etcd', etcd.url, etcd.idsFile]) : Number.NaN);
  const out: Record<string, number> = {};
  try {
    await registerAll(server.url);
    out.stream_1_per_message_1_client = await driven(1, ['rollcall', server.url, '1']);
    out.etcd_keepalive_1_client = await etcdDriven(1);
    out.stream_1_per_message_2_clients = await driven(2, ['rollcall', server.url, '1']);
    out.etcd_keepalive_2_clients = await etcdDriven(2);
    out.stream_100_per_message_1_client = await driven(1, ['rollcall', server.url, String(PER_MESSAGE)]);
    out.batch_100_per_request_64_connections = await batchRenewals(server.url);
    out.http_heartbeat_64_connections = await httpRenewals(server.url);
    const ratio = (a: number, b: number) => Math.round((a / b) * 100) / 100;
    out.stream_1_per_message_vs_etcd_1_client = ratio(out.stream_1_per_message_1_client, out.etcd_keepalive_1_client);
    out.stream_1_per_message_vs_etcd_2_clients = ratio(out.stream_1_per_message_2_clients, out.etcd_keepalive_2_clients);
    out.stream_100_per_message_vs_etcd_1_client = ratio(out.stream_100_per_message_1_client, out.etcd_keepalive_1_client);
  } finally {
    await server.stop();
    await etcd?.stop();
  }
  return out;
}

export async function runLeaseBenchMedian(runs = 3): Promise<Record<string, number>> {
  if (!haveEtcd()) console.error('!!! etcd is not installed (Debian package etcd-server): the etcd reference is left out (NaN)');
  const results: Record<string, number>[] = [];
  for (let i = 0; i < runs; i++) results.push(await runLeaseBench());
  return Object.fromEntries(Object.keys(results[0]!).map((k) => [k, median(results.map((r) => r[k]!))]));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [mode, kind, target, arg] = process.argv.slice(2);
  if (mode === 'drive') {
    // One client process: prints its renewals/s.
    console.log(kind === 'etcd' ? await etcdStreamRenewals(target!, arg!) : await streamRenewals(target!, Number(arg)));
  } else {
    const runs = Number(mode ?? 1);
    for (let i = 0; i < runs; i++) console.log(await runLeaseBench());
  }
}
