// Issue 8 benchmark: `rollcall proxy` on the data path and in the control loop.
// - loopback: direct vs through the userspace proxy vs through HAProxy (tcp mode, one thread, the same single
//   core budget as the one Node process): HTTP requests/s over keep-alive, new connections/s (one request per
//   connection), and MB/s on one large stream;
// - in a network namespace (unshare -n; needs root or CAP_NET_ADMIN, and nft): direct vs through nftables DNAT,
//   the same three figures; render + apply time of a 1,000-service × 10-instance ruleset; and change → rule in
//   force (p50/p99) with the proxy following a registry that holds those 10,000 instances.
import autocannon from 'autocannon';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { computeDesiredState, type ServiceRecord } from '../src/dataplane/desired-state.js';
import { createNftApplier, transaction } from '../src/dataplane/nftables/apply.js';
import { createNftRunner } from '../src/dataplane/nftables/nft.js';
import { renderNftables } from '../src/dataplane/nftables/render.js';
import type { Instance } from '../src/schemas/instance.js';
import { median, percentile, startBenchServer, type BenchServer } from './server-process.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const CLI = join(HERE, '../src/cli/index.js');
const SECONDS = Number(process.env.PROXY_BENCH_SECONDS ?? 2);
const CONNECTIONS = 32;
const STREAM_MIB = 256;
const CHANGES = 20;
const ROUNDS = 3;

interface Target {
  host: string;
  httpPort: number;
  /** Defaults to host (the userspace proxy and nftables serve the stream service on a virtual IP of its own). */
  streamHost?: string;
  streamPort: number;
}

// ---------------------------------------------------------------- measurements

async function keepAliveRps(t: Target): Promise<number> {
  // A one-second warm-up first: the JIT of the load generator, the proxy and the backend, and the connections.
  await autocannon({ url: `http://${t.host}:${t.httpPort}/`, connections: CONNECTIONS, duration: 1 });
  const r = await autocannon({ url: `http://${t.host}:${t.httpPort}/`, connections: CONNECTIONS, duration: SECONDS });
  if (r.non2xx > 0 || r.errors > 0) throw new Error(`keep-alive run to ${t.host}:${t.httpPort}: ${r.errors} errors, ${r.non2xx} non-2xx`);
  return Math.round(r.requests.average);
}

/** CONNECTIONS loops, each: connect, one HTTP request with Connection: close, read to the end, again. */
async function newConnectionsPerSecond(t: Target): Promise<number> {
  const deadline = performance.now() + SECONDS * 1000;
  let done = 0;
  let failed = 0;
  const request = `GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n`;
  const one = () =>
    new Promise<void>((resolve) => {
      const s = connect({ host: t.host, port: t.httpPort });
      let got = '';
      s.setEncoding('utf8');
      s.on('connect', () => s.write(request));
      s.on('data', (c: string) => (got += c));
      s.on('error', () => {
        failed++;
        resolve();
      });
      s.on('end', () => {
        if (got.endsWith('hello\n')) done++;
        else failed++;
        s.destroy();
        resolve();
      });
    });
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (performance.now() < deadline) await one();
    }),
  );
  if (failed > done / 100) throw new Error(`new connections to ${t.host}:${t.httpPort}: ${failed} failed of ${done + failed}`);
  return Math.round(done / ((performance.now() - started) / 1000));
}

/** One connection, STREAM_MIB MiB from the backend: MB/s (10^6 bytes) from connect to end. */
function streamMBps(t: Target): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    let bytes = 0;
    const s = connect({ host: t.streamHost ?? t.host, port: t.streamPort });
    s.on('data', (c: Buffer) => (bytes += c.length));
    s.on('error', reject);
    s.on('end', () => {
      if (bytes !== STREAM_MIB * 1024 * 1024) return reject(new Error(`stream: ${bytes} bytes`));
      resolve(Math.round(bytes / 1e6 / ((performance.now() - started) / 1000)));
    });
  });
}

const METRICS = ['http_keepalive_req_per_s', 'new_connections_per_s', 'stream_MB_per_s'] as const;

/**
 * Every target measured in turn, ROUNDS times over (A B C A B C …), so that a machine whose load drifts from one
 * second to the next weighs on all of them alike. Medians per target, and for each pair the median of the
 * per-round ratios (in %), which is steadier than a ratio of medians.
 */
async function compare(targets: Record<string, Target>, pairs: [string, string][]): Promise<Record<string, number>> {
  const samples: Record<string, number[]> = {};
  const add = (k: string, v: number) => (samples[k] ??= []).push(v);
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, t] of Object.entries(targets)) {
      add(`${name}_http_keepalive_req_per_s`, await keepAliveRps(t));
      add(`${name}_new_connections_per_s`, await newConnectionsPerSecond(t));
      add(`${name}_stream_MB_per_s`, await streamMBps(t));
    }
  }
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(samples)) out[k] = median(v);
  for (const [a, b] of pairs) {
    for (const m of METRICS) {
      const xs = samples[`${a}_${m}`]!;
      const ys = samples[`${b}_${m}`]!;
      out[`${a}_vs_${b}_${m}_pct`] = Math.round(median(xs.map((x, i) => (100 * x) / ys[i]!)));
    }
  }
  return out;
}

// ---------------------------------------------------------------- processes

function startChild(args: string[], what: string): ChildProcess {
  const child = spawn(args[0]!, args.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  child.once('exit', (code, signal) => {
    if (code !== 0 && signal === null) process.stderr.write(`bench: ${what} exited with ${code}: ${stderr.slice(-500)}\n`);
  });
  return child;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

async function startBackend(): Promise<{ child: ChildProcess; http: number; stream: number }> {
  const child = startChild([process.execPath, join(HERE, 'proxy-backend.js'), String(STREAM_MIB)], 'backend');
  const ports = await new Promise<{ http: number; stream: number }>((resolve, reject) => {
    child.stdout!.once('data', (d: Buffer) => resolve(JSON.parse(d.toString())));
    child.once('exit', () => reject(new Error('backend exited')));
  });
  return { child, ...ports };
}

const proxyLogs = new WeakMap<ChildProcess, () => string>();

/** `rollcall proxy` as a child; resolves once it logged a state in force holding `ports` service ports. */
async function startProxy(registry: string, mode: string, ports: number): Promise<ChildProcess> {
  const child = startChild([process.execPath, CLI, 'proxy', '--mode', mode, '--registry', registry, '--namespace', 'bench'], 'rollcall proxy');
  let log = '';
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  await poll('the proxy to put the state in force', async () => new RegExp(`in force at revision \\d+: ${ports} service port`).test(log), 120_000);
  proxyLogs.set(child, () => log);
  return child;
}

async function api(url: string, method: string, path: string, body?: unknown): Promise<{ virtualIP: string }> {
  const res = await fetch(`${url}${path}`, { method, ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return (text === '' ? {} : JSON.parse(text)) as { virtualIP: string };
}

async function poll(what: string, fn: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await fn())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Services `http` and `stream` on the backend, with virtual IPs; returns them. */
async function registerBackend(server: BenchServer, backend: { http: number; stream: number }): Promise<{ http: string; stream: string }> {
  const ns = '/v1/namespaces/bench/services';
  const http = (await api(server.url, 'PUT', `${ns}/http`, { ports: [{ port: 8080 }] })).virtualIP;
  const stream = (await api(server.url, 'PUT', `${ns}/stream`, { ports: [{ port: 8081 }] })).virtualIP;
  await api(server.url, 'PUT', `${ns}/http/instances/b`, { address: '127.0.0.1', port: backend.http, ttlSeconds: 3600 });
  await api(server.url, 'PUT', `${ns}/stream/instances/b`, { address: '127.0.0.1', port: backend.stream, ttlSeconds: 3600 });
  return { http, stream };
}

// ---------------------------------------------------------------- loopback: direct, userspace, HAProxy

function haproxyConfig(front: { http: number; stream: number }, back: { http: number; stream: number }): string {
  return `global
  nbthread 1
  maxconn 4000
defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend http
  bind 127.0.0.1:${front.http}
  default_backend http
backend http
  server b 127.0.0.1:${back.http}
frontend stream
  bind 127.0.0.1:${front.stream}
  default_backend stream
backend stream
  server b 127.0.0.1:${back.stream}
`;
}

export async function runProxyLoopbackBench(): Promise<Record<string, number>> {
  const backend = await startBackend();
  const server = await startBenchServer();
  const dir = mkdtempSync(join(tmpdir(), 'rollcall-proxy-bench-'));
  const children: ChildProcess[] = [backend.child];
  try {
    const vips = await registerBackend(server, backend);
    // Two Services, two virtual IPs: the userspace proxy listens on both.
    children.push(await startProxy(server.url, 'userspace', 2));
    const haPorts = { http: 20000 + Math.floor(Math.random() * 20000), stream: 0 };
    haPorts.stream = haPorts.http + 1;
    const cfg = join(dir, 'haproxy.cfg');
    writeFileSync(cfg, haproxyConfig(haPorts, backend));
    const haproxy = startChild(['haproxy', '-db', '-f', cfg], 'haproxy');
    children.push(haproxy);
    await poll('haproxy to listen', () => canConnect('127.0.0.1', haPorts.http), 10_000);

    return await compare(
      {
        direct: { host: '127.0.0.1', httpPort: backend.http, streamPort: backend.stream },
        userspace: { host: vips.http, httpPort: 8080, streamHost: vips.stream, streamPort: 8081 },
        haproxy: { host: '127.0.0.1', httpPort: haPorts.http, streamPort: haPorts.stream },
      },
      [
        ['userspace', 'haproxy'],
        ['userspace', 'direct'],
      ],
    );
  } finally {
    for (const c of children) await stopChild(c);
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    s.on('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

// ---------------------------------------------------------------- in a network namespace: nftables

const SERVICES = 1000;
const PER_SERVICE = 10;

function syntheticCatalog(): { services: ServiceRecord[]; instances: Instance[] } {
  const services: ServiceRecord[] = [];
  const instances: Instance[] = [];
  for (let s = 0; s < SERVICES; s++) {
    services.push({ namespace: 'bench', name: `svc-${s}`, virtualIP: `127.77.${100 + Math.floor(s / 250)}.${(s % 250) + 1}`, ports: [{ name: null, port: 80, targetPort: null, protocol: 'tcp' }] });
    for (let i = 0; i < PER_SERVICE; i++) {
      instances.push({
        namespace: 'bench', service: `svc-${s}`, id: `i-${i}`, address: `10.${s >> 8}.${s & 255}.${i + 1}`, port: 8080,
        status: 'up', weight: 1 + (i % 3), zone: null, tags: [], metadata: {}, ttlSeconds: 3600,
        registeredAt: '2024-01-01T00:00:00.000Z', lastHeartbeatAt: '2024-01-01T00:00:00.000Z', expiresAt: '2024-01-01T01:00:00.000Z',
        revision: 1, createRevision: 1,
      });
    }
  }
  return { services, instances };
}

/** Render and `nft -f` of the full ruleset: a first apply (table created) and applies of a one-instance change. */
async function applyTimes(): Promise<Record<string, number>> {
  const { services, instances } = syntheticCatalog();
  const renders: number[] = [];
  const applies: number[] = [];
  const applier = createNftApplier(createNftRunner());
  let first = 0;
  for (let k = 0; k < 6; k++) {
    const changed = instances.map((i, n) => (n === 5000 ? { ...i, weight: 10 + k } : i));
    const started = performance.now();
    const { ruleset, model } = renderNftables(computeDesiredState(services, changed));
    renders.push(performance.now() - started);
    const outcome = await applier.apply({ ruleset, model });
    if (outcome.status !== 'applied') throw new Error(`apply ${k}: ${JSON.stringify(outcome)}`);
    if (k === 0) first = outcome.ms;
    else applies.push(outcome.ms);
  }
  await applier.remove();
  // On a machine shared with other work the wall time above is mostly waiting for a core; the CPU time nft and the
  // kernel spend (user + sys, from GNU time when installed) is what the apply itself costs.
  const cpu = nftCpuMs(transaction(renderNftables(computeDesiredState(services, instances)).ruleset));
  return {
    ...(cpu === undefined ? {} : { nft_first_apply_1k_services_10k_backends_cpu_ms: cpu }),
    nft_render_1k_services_10k_backends_ms: Math.round(median(renders)),
    nft_first_apply_1k_services_10k_backends_ms: Math.round(first),
    nft_change_apply_1k_services_10k_backends_ms: Math.round(median(applies)),
  };
}

function nftCpuMs(script: string): number | undefined {
  if (spawnSync('/usr/bin/time', ['-f', '%U', 'true']).status !== 0) return undefined;
  const dir = mkdtempSync(join(tmpdir(), 'rollcall-nft-bench-'));
  try {
    writeFileSync(join(dir, 'r.nft'), script);
    const res = spawnSync('/usr/bin/time', ['-f', 'cpu %U %S', 'nft', '-f', join(dir, 'r.nft')], { encoding: 'utf8' });
    const m = /cpu ([\d.]+) ([\d.]+)/.exec(res.stderr);
    spawnSync('nft', ['delete', 'table', 'ip', 'rollcall']);
    return m ? Math.round((Number(m[1]) + Number(m[2])) * 1000) : undefined;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * With the proxy following a registry of 1,000 services × 10 instances: register an instance of the empty
 * service `probe` and time until a connection to its virtual IP succeeds (a rejection before), then deregister it
 * and time until connections are refused again. Each sample includes the watch, the debounce (100 ms) and the
 * apply.
 */
async function changeToRule(server: BenchServer, backendPort: number, mode: string): Promise<Record<string, number>> {
  const proxy = await startProxy(server.url, mode, SERVICES + 3);
  try {
    const vip = (await api(server.url, 'GET', '/v1/namespaces/bench/services/probe')).virtualIP;
    const delays: number[] = [];
    for (let k = 0; k < CHANGES; k++) {
      let started = performance.now();
      await api(server.url, 'PUT', '/v1/namespaces/bench/services/probe/instances/p', { address: '127.0.0.1', port: backendPort, ttlSeconds: 3600 });
      await poll('the probe to be reachable', () => connectsAndAnswers(vip, 9000), 10_000);
      delays.push(performance.now() - started);
      started = performance.now();
      await api(server.url, 'DELETE', '/v1/namespaces/bench/services/probe/instances/p');
      await poll('the probe to be refused', async () => !(await connectsAndAnswers(vip, 9000)), 10_000);
      delays.push(performance.now() - started);
    }
    return { [`${mode}_change_to_rule_ms_p50`]: Math.round(median(delays)), [`${mode}_change_to_rule_ms_p99`]: Math.round(percentile(delays, 99)) };
  } catch (err) {
    throw new Error(`${(err as Error).message}; the proxy said: ${proxyLogs.get(proxy)?.().slice(-1500)}`);
  } finally {
    await stopChild(proxy);
  }
}

/** True when a connection gets the backend's first byte (userspace accepts then resets when nothing is routable). */
function connectsAndAnswers(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    s.on('connect', () => s.write('GET / HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n'));
    s.once('data', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
    s.on('end', () => resolve(false));
  });
}

/** Runs inside the namespace (see runProxyNetnsBench). */
async function netnsMain(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const backend = await startBackend();
  const server = await startBenchServer();
  try {
    const vips = await registerBackend(server, backend);
    await api(server.url, 'PUT', '/v1/namespaces/bench/services/probe', { ports: [{ port: 9000 }] });
    const proxy = await startProxy(server.url, 'nftables', 3);
    try {
      Object.assign(
        out,
        await compare(
          {
            netns_direct: { host: '127.0.0.1', httpPort: backend.http, streamPort: backend.stream },
            nftables: { host: vips.http, httpPort: 8080, streamHost: vips.stream, streamPort: 8081 },
          },
          [['nftables', 'netns_direct']],
        ),
      );
    } finally {
      await stopChild(proxy);
    }
    Object.assign(out, await applyTimes());
    // The registry fills up with the synthetic 1,000 × 10 (instance addresses are never dialled).
    const { services, instances } = syntheticCatalog();
    for (let i = 0; i < services.length; i += 64) {
      await Promise.all(services.slice(i, i + 64).map((s) => api(server.url, 'PUT', `/v1/namespaces/bench/services/${s.name}`, { ports: [{ port: 80 }] })));
    }
    for (let i = 0; i < instances.length; i += 64) {
      await Promise.all(
        instances.slice(i, i + 64).map((x) => api(server.url, 'PUT', `/v1/namespaces/bench/services/${x.service}/instances/${x.id}`, { address: x.address, port: x.port, weight: x.weight, ttlSeconds: 3600 })),
      );
    }
    Object.assign(out, await changeToRule(server, backend.http, 'nftables'));
    Object.assign(out, await changeToRule(server, backend.http, 'userspace'));
    return out;
  } finally {
    await stopChild(backend.child);
    await server.stop();
  }
}

/** Starts this file under `unshare -n` and returns what it measured there; {} (and a note) when it cannot. */
export async function runProxyNetnsBench(): Promise<Record<string, number>> {
  const probe = spawnSync('unshare', ['-n', 'sh', '-c', 'ip link set lo up && nft list tables'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    process.stderr.write(`bench: nftables part skipped (needs unshare -n, ip and nft as root): ${probe.error?.message ?? probe.stderr.trim()}\n`);
    return {};
  }
  const self = fileURLToPath(import.meta.url);
  const child = spawn('unshare', ['-n', 'sh', '-c', 'ip link set lo up && exec "$0" "$@"', process.execPath, self, '--netns-child'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((r) => child.once('exit', r));
  if (code !== 0) throw new Error(`netns bench exited with ${code}`);
  return JSON.parse(out.trim().split('\n').at(-1)!) as Record<string, number>;
}

if (process.argv.includes('--netns-child')) {
  process.stdout.write(`${JSON.stringify(await netnsMain())}\n`);
} else if (import.meta.url === `file://${process.argv[1]}`) {
  console.log({ ...(await runProxyLoopbackBench()), ...(await runProxyNetnsBench()) });
}
