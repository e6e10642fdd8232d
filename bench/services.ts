// Services benchmark: durable Service creates/s (each allocating a virtual IP) beside durable instance
// registrations/s measured in the same run, and the in-process cost of virtual IP allocation in a /16 that is
// empty, and one that is full but for scattered holes (the allocator's worst case: the cursor walks past
// held addresses to find them).
import autocannon from 'autocannon';
import { performance } from 'node:perf_hooks';
import { createVirtualIpAllocator, parseCidr, type Cidr } from '../src/registry/virtual-ips.js';
import { median, startBenchServer } from './server-process.js';

const COUNT = 10_000;

async function putMany(url: string, body: string, path: (i: number) => string): Promise<number> {
  let next = 0;
  const result = await autocannon({
    url,
    connections: 64,
    amount: COUNT,
    requests: [{ method: 'PUT', headers: { 'content-type': 'application/json' }, body, setupRequest: (req) => ({ ...req, path: path(next++) }) }],
  });
  if (result['2xx'] !== COUNT) throw new Error(`only ${result['2xx']} of ${COUNT} PUTs answered 2xx`);
  return Math.round(result['2xx'] / (result.duration || 1));
}

async function httpRates(): Promise<{ services: number; instances: number }> {
  const server = await startBenchServer();
  try {
    const instances = await putMany(
      server.url,
      JSON.stringify({ address: '10.0.0.1', port: 8080, ttlSeconds: 3600 }),
      (i) => `/v1/namespaces/bench/services/web-${i % 100}/instances/i-${i}`,
    );
    // Second, so the reference (instances) and not the Services pays for the server's warm-up.
    const services = await putMany(server.url, JSON.stringify({ ports: [{ name: 'http', port: 80, targetPort: 8080 }] }), (i) => `/v1/namespaces/bench/services/s-${i}`);
    return { services, instances };
  } finally {
    await server.stop();
  }
}

/** Microseconds per allocation: filling an empty /16, and refilling 1,000 random holes in a full one. */
function allocationCost(): { fillUs: number; holesUs: number } {
  const cidr = parseCidr('127.77.0.0/16') as Cidr;
  const ips = createVirtualIpAllocator(cidr);
  let start = performance.now();
  const all: string[] = [];
  for (let i = 0; i < 65_534; i++) all.push(ips.allocate()!);
  const fillUs = ((performance.now() - start) * 1000) / all.length;
  // Deterministic scattered holes (every 65th address or so), released, then allocated again one by one.
  const holes = Array.from({ length: 1000 }, (_, i) => all[(i * 65_521) % all.length]!);
  for (const ip of holes) ips.release(ip);
  start = performance.now();
  for (let i = 0; i < holes.length; i++) if (ips.allocate() === undefined) throw new Error('lost a hole');
  const holesUs = ((performance.now() - start) * 1000) / holes.length;
  return { fillUs, holesUs };
}

export async function runServicesBench(runs: number): Promise<Record<string, number>> {
  const http: { services: number; instances: number }[] = [];
  const alloc: { fillUs: number; holesUs: number }[] = [];
  for (let i = 0; i < runs; i++) {
    http.push(await httpRates());
    alloc.push(allocationCost());
  }
  return {
    service_creates_per_sec: median(http.map((r) => r.services)),
    instance_registrations_per_sec_same_run: median(http.map((r) => r.instances)),
    vip_alloc_us_filling_16: Math.round(median(alloc.map((r) => r.fillUs)) * 100) / 100,
    vip_alloc_us_holes_in_full_16: Math.round(median(alloc.map((r) => r.holesUs)) * 100) / 100,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(await runServicesBench(Number(process.argv[2] ?? 1)));
}
