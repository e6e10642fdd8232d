// Issue 2 benchmark: registrations/s (durable), heartbeats/s, and list latency of a 1,000-instance service,
// against a server process holding 10,000 instances, over HTTP keep-alive.
import autocannon from 'autocannon';
import { median, startBenchServer } from './server-process.js';

const BODY = JSON.stringify({ address: '10.0.0.1', port: 8080, ttlSeconds: 3600, tags: ['http'], metadata: { version: '1.0.0' } });

async function cannon(opts: autocannon.Options): Promise<autocannon.Result> {
  return autocannon({ connections: 64, ...opts });
}

/** Instance i of the 10,000: the first 1,000 in service "big", the rest spread over 90 services. */
function instancePath(i: number): string {
  const service = i < 1000 ? 'big' : `svc-${i % 90}`;
  return `/v1/namespaces/bench/services/${service}/instances/i-${i}`;
}

export async function runCoreBench(): Promise<Record<string, number>> {
  const server = await startBenchServer();
  try {
    // Registrations: 10,000 new instances, each a committed (fsynced) transaction before its 201.
    let next = 0;
    const reg = await cannon({
      url: server.url,
      amount: 10_000,
      requests: [
        {
          method: 'PUT',
          headers: { 'content-type': 'application/json' },
          body: BODY,
          setupRequest: (req) => ({ ...req, path: instancePath(next++) }),
        },
      ],
    });
    const registrationsPerSec = Math.round(reg['2xx'] / (reg.duration || 1));
    if (reg['2xx'] !== 10_000) throw new Error(`registrations failed: ${reg['2xx']} of 10000 answered 2xx`);

    const heartbeat = await cannon({
      url: server.url,
      duration: 8,
      requests: [{ method: 'PUT', setupRequest: (req) => ({ ...req, path: `${instancePath(Math.floor(Math.random() * 10_000))}/heartbeat` }) }],
    });
    if (heartbeat.non2xx > 0) throw new Error(`${heartbeat.non2xx} heartbeats failed`);

    // List latency, measured from one client at a time and under 8 concurrent clients.
    const list1 = await autocannon({ url: `${server.url}/v1/namespaces/bench/services/big/instances`, connections: 1, duration: 5 });
    const list8 = await autocannon({ url: `${server.url}/v1/namespaces/bench/services/big/instances`, connections: 8, duration: 5 });
    return {
      registrations_per_sec: registrationsPerSec,
      heartbeats_per_sec: Math.round(heartbeat.requests.average),
      heartbeat_p99_ms: heartbeat.latency.p99,
      list_1000_p50_ms_1conn: list1.latency.p50,
      list_1000_p99_ms_1conn: list1.latency.p99,
      list_1000_p99_ms_8conn: list8.latency.p99,
      list_1000_per_sec_8conn: Math.round(list8.requests.average),
    };
  } finally {
    await server.stop();
  }
}

export async function runCoreBenchMedian(runs = 3): Promise<Record<string, number>> {
  const results: Record<string, number>[] = [];
  for (let i = 0; i < runs; i++) results.push(await runCoreBench());
  return Object.fromEntries(Object.keys(results[0]!).map((k) => [k, median(results.map((r) => r[k]!))]));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(await runCoreBench());
}
