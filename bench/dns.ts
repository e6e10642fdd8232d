// Issue 9 benchmark: DNS queries/s and latency for A and SRV over UDP, measured with Debian's dnsperf against
// rollcall (10,000 instances over 1,000 services, every answer read from the live registry) and, as the
// reference on the same machine, dnsmasq serving the same names from a hosts file and srv-host lines.
import autocannon from 'autocannon';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import dnsPacket from 'dns-packet';
import type { DnsInstance } from '../src/dns/answer.js';
import { respond } from '../src/dns/protocol.js';
import { percentile, startBenchServer } from './server-process.js';

const execFileAsync = promisify(execFile);
const SERVICES = 1000;
const PER_SERVICE = 10;
const THROUGHPUT_SECONDS = 8;
const LATENCY_SECONDS = 5;
/** Latency is measured at a fixed, moderate rate: at full speed dnsperf's 100 outstanding queries would only measure its own queue. */
const LATENCY_QPS = 2000;
const DNSPERF = '/usr/bin/dnsperf';
const DNSMASQ = ['/usr/sbin/dnsmasq', '/usr/bin/dnsmasq'].find((p) => existsSync(p));

const service = (s: number) => `svc-${s}`;
const address = (s: number, i: number) => `10.${(s >> 8) & 255}.${s & 255}.${i + 1}`;

/** A loopback port free for both UDP and TCP right now (DNS servers bind both). */
async function freeDnsPort(): Promise<number> {
  for (;;) {
    const tcp = createServer();
    await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
    const { port } = tcp.address() as AddressInfo;
    const udp = createSocket('udp4');
    const free = await new Promise<boolean>((resolve) => {
      udp.once('error', () => resolve(false));
      udp.bind(port, '127.0.0.1', () => resolve(true));
    });
    if (free) await new Promise<void>((resolve) => udp.close(() => resolve()));
    await new Promise<void>((resolve) => tcp.close(() => resolve()));
    if (free) return port;
  }
}

async function dnsperf(port: number, file: string, extra: string[], seconds: number): Promise<string> {
  const { stdout } = await execFileAsync(DNSPERF, ['-s', '127.0.0.1', '-p', String(port), '-d', file, '-e', '-l', String(seconds), ...extra], {
    maxBuffer: 256 * 1024 * 1024,
    timeout: (seconds + 30) * 1000,
  });
  return stdout;
}

/** Queries/s at full speed (100 outstanding), then p50/p99 of per-query latency at LATENCY_QPS. */
async function measure(port: number, file: string): Promise<{ qps: number; p50: number; p99: number; lost: number }> {
  const full = await dnsperf(port, file, [], THROUGHPUT_SECONDS);
  const qps = Number(/Queries per second:\s+([\d.]+)/.exec(full)?.[1] ?? NaN);
  const lost = Number(/Queries lost:\s+(\d+)/.exec(full)?.[1] ?? NaN);
  const completed = /Response codes:\s+NOERROR \d+ \(100\.00%\)/.test(full);
  if (!completed) throw new Error(`not every answer was NOERROR:\n${full}`);
  const verbose = await dnsperf(port, file, ['-v', '-Q', String(LATENCY_QPS)], LATENCY_SECONDS);
  const latencies = [...verbose.matchAll(/^> NOERROR \S+ \S+ ([\d.]+)$/gm)].map((m) => Number(m[1]) * 1000);
  return { qps: Math.round(qps), p50: round(percentile(latencies, 50)), p99: round(percentile(latencies, 99)), lost };
}

const round = (ms: number) => Math.round(ms * 100) / 100;

async function registerAll(url: string) {
  let next = 0;
  const result = await autocannon({
    url,
    connections: 32,
    amount: SERVICES * PER_SERVICE,
    requests: [
      {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        setupRequest: (req) => {
          const n = next++;
          const s = n % SERVICES;
          const i = Math.floor(n / SERVICES);
          return {
            ...req,
            path: `/v1/namespaces/bench/services/${service(s)}/instances/i-${i}`,
            body: JSON.stringify({ address: address(s, i), port: 8000 + i, ttlSeconds: 3600 }),
          };
        },
      },
    ],
  });
  if (result['2xx'] !== SERVICES * PER_SERVICE) throw new Error(`registrations failed: ${result['2xx']} answered 2xx`);
}

function queryFiles(dir: string, zone: string) {
  const a = join(dir, 'a.txt');
  const srv = join(dir, 'srv.txt');
  writeFileSync(a, Array.from({ length: SERVICES }, (_, s) => `${service(s)}.bench.${zone} A`).join('\n') + '\n');
  writeFileSync(srv, Array.from({ length: SERVICES }, (_, s) => `_${service(s)}._tcp.bench.${zone} SRV`).join('\n') + '\n');
  return { a, srv };
}

/** dnsmasq with the same names: service names with 10 addresses, instance names, and SRV records. */
async function startDnsmasq(dir: string, port: number): Promise<ChildProcess> {
  const hosts: string[] = [];
  const conf: string[] = [];
  for (let s = 0; s < SERVICES; s++) {
    for (let i = 0; i < PER_SERVICE; i++) {
      const ip = address(s, i);
      hosts.push(`${ip} ${service(s)}.bench.rollcall i-${i}.${service(s)}.bench.rollcall`);
      conf.push(`srv-host=_${service(s)}._tcp.bench.rollcall,i-${i}.${service(s)}.bench.rollcall,${8000 + i},0,1`);
    }
  }
  writeFileSync(join(dir, 'hosts'), hosts.join('\n') + '\n');
  writeFileSync(join(dir, 'dnsmasq.conf'), conf.join('\n') + '\n');
  const child = spawn(
    DNSMASQ!,
    [
      '--no-daemon',
      `--port=${port}`,
      '--listen-address=127.0.0.1',
      '--bind-interfaces',
      '--no-resolv',
      '--no-hosts',
      `--addn-hosts=${join(dir, 'hosts')}`,
      `--conf-file=${join(dir, 'dnsmasq.conf')}`,
      '--local=/rollcall/',
      '--local-ttl=5',
      '--user=root',
      '--pid-file=',
      '--log-facility=-',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  // Ready once it answers.
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      const { stdout } = await execFileAsync('dig', ['@127.0.0.1', '-p', String(port), '+short', '+tries=1', '+time=1', `${service(0)}.bench.rollcall`, 'A']);
      if (stdout.trim() !== '') return child;
    } catch {
      // not yet
    }
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`dnsmasq did not start: ${err}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * CPU per answer on the answer path alone (decode, lookup, encode; no sockets), in this process, over a view
 * shaped like the registry's (1,000 services of 10): what bounds queries/s on one core.
 */
function answerPathMicros(): { a: number; srv: number } {
  const services = new Map<string, Map<string, DnsInstance>>();
  for (let s = 0; s < SERVICES; s++) {
    const ids = new Map<string, DnsInstance>();
    for (let i = 0; i < PER_SERVICE; i++) ids.set(`i-${i}`, { id: `i-${i}`, address: address(s, i), port: 8000 + i, status: 'up', weight: 1, metadata: {} });
    services.set(service(s), ids);
  }
  const view = { revision: 1, namespace: (n: string) => (n === 'bench' ? services : undefined) };
  const settings = { zone: 'rollcall', ns: 'ns.rollcall', ttl: 5 };
  const time = (name: string, type: 'A' | 'SRV') => {
    const q = dnsPacket.encode({ type: 'query', id: 1, questions: [{ name, type }], additionals: [{ name: '.', type: 'OPT', udpPayloadSize: 4096, flags: 0 } as never] });
    for (let i = 0; i < 5000; i++) respond(q, 'udp', view, settings);
    const n = 20_000;
    const started = process.hrtime.bigint();
    for (let i = 0; i < n; i++) respond(q, 'udp', view, settings);
    return Math.round(Number(process.hrtime.bigint() - started) / n / 100) / 10;
  };
  return { a: time(`${service(7)}.bench.rollcall`, 'A'), srv: time(`_${service(7)}._tcp.bench.rollcall`, 'SRV') };
}

export async function runDnsBench(): Promise<Record<string, number>> {
  if (!existsSync(DNSPERF) || !DNSMASQ) throw new Error('the DNS bench needs dnsperf and dnsmasq (Debian: dnsperf, dnsmasq-base)');
  const dir = mkdtempSync(join(tmpdir(), 'rollcall-dns-bench-'));
  const files = queryFiles(dir, 'rollcall');
  const micros = answerPathMicros();
  const out: Record<string, number> = { answer_path_a_us: micros.a, answer_path_srv_us: micros.srv };
  try {
    const rollcallPort = await freeDnsPort();
    const server = await startBenchServer(['--dns-listen', `127.0.0.1:${rollcallPort}`]);
    try {
      await registerAll(server.url);
      for (const [kind, file] of [['a', files.a], ['srv', files.srv]] as const) {
        const m = await measure(rollcallPort, file);
        Object.assign(out, { [`rollcall_${kind}_qps`]: m.qps, [`rollcall_${kind}_p50_ms`]: m.p50, [`rollcall_${kind}_p99_ms`]: m.p99, [`rollcall_${kind}_lost`]: m.lost });
      }
    } finally {
      await server.stop();
    }
    const dnsmasqPort = await freeDnsPort();
    const dnsmasq = await startDnsmasq(dir, dnsmasqPort);
    try {
      for (const [kind, file] of [['a', files.a], ['srv', files.srv]] as const) {
        const m = await measure(dnsmasqPort, file);
        Object.assign(out, { [`dnsmasq_${kind}_qps`]: m.qps, [`dnsmasq_${kind}_p50_ms`]: m.p50, [`dnsmasq_${kind}_p99_ms`]: m.p99 });
      }
    } finally {
      const exited = new Promise((r) => dnsmasq.once('exit', r));
      dnsmasq.kill('SIGTERM');
      await exited;
    }
    out.a_qps_ratio_pct = Math.round((100 * out.rollcall_a_qps!) / out.dnsmasq_a_qps!);
    out.srv_qps_ratio_pct = Math.round((100 * out.rollcall_srv_qps!) / out.dnsmasq_srv_qps!);
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(await runDnsBench());
}
