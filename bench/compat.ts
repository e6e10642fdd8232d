// Issue 11 benchmark: Consul blocking-query wakeups (1,000 waiting requests; one change → every answer) and
// Eureka renewals/s, beside rollcall's own REST heartbeats/s measured on the same server in the same run.
import autocannon from 'autocannon';
import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';
import { freePort, median, percentile, startBenchServer } from './server-process.js';

const WAITERS = 1000;
const INSTANCES = 1000;
// Every wake-up change sets a weight the instance did not have, so it is a real change (an equal PATCH is not).
let weights = 1;
const nextWeight = () => (weights = (weights % 255) + 1);

async function send(url: string, method: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
  const res = await fetch(url, { method, headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  if (res.status >= 300) throw new Error(`${method} ${url}: HTTP ${res.status} ${await res.text()}`);
  return res;
}

async function waiting(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(/^rollcall_long_polls_waiting (\d+)/m.exec(text)?.[1] ?? 0);
}

/**
 * 1,000 blocking queries on one service at `path` (index appended); one change; ms from the change being sent
 * to each answer.
 */
async function wakeups(url: string, target: string, index: string, prefix: string): Promise<Record<string, number>> {
  const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
  const answeredAt: number[] = [];
  const answers = Array.from(
    { length: WAITERS },
    () =>
      new Promise<void>((resolve, reject) => {
        const req = request(`${target}index=${index}&wait=2m`, { agent }, (res) => {
          res.resume();
          res.on('end', () => {
            answeredAt.push(performance.now());
            resolve();
          });
        });
        req.on('error', reject);
        req.end();
      }),
  );
  const deadline = Date.now() + 60_000;
  while ((await waiting(url)) < WAITERS) {
    if (Date.now() > deadline) throw new Error('the blocking queries did not all start waiting within 60 s');
    await new Promise((r) => setTimeout(r, 50));
  }
  const sent = performance.now();
  await send(`${url}/v1/namespaces/default/services/wake/instances/w-1`, 'PATCH', { weight: nextWeight() });
  await Promise.all(answers);
  agent.destroy();
  const delays = answeredAt.map((t) => t - sent);
  const round = (v: number) => Math.round(v * 10) / 10;
  return {
    [`${prefix}_answered`]: answeredAt.length,
    [`${prefix}_p50_ms`]: round(percentile(delays, 50)),
    [`${prefix}_p99_ms`]: round(percentile(delays, 99)),
  };
}

/** Consul health blocking queries, and rollcall's own blocking list on the same service as the reference. */
async function consulWakeups(url: string, consulUrl: string): Promise<Record<string, number>> {
  await send(`${url}/v1/namespaces/default/services/wake/instances/w-1`, 'PUT', { address: '10.0.0.1', port: 80, ttlSeconds: 3600 });
  const consulIndex = (await fetch(`${consulUrl}/v1/health/service/wake`)).headers.get('x-consul-index')!;
  const consul = await wakeups(url, `${consulUrl}/v1/health/service/wake?`, consulIndex, 'consul_wakeup');
  const restIndex = (await fetch(`${url}/v1/namespaces/default/services/wake/instances`)).headers.get('x-rollcall-revision')!;
  const rest = await wakeups(url, `${url}/v1/namespaces/default/services/wake/instances?`, restIndex, 'rest_long_poll_wakeup_same_run');
  return { ...consul, ...rest };
}

/** Renewals/s over 1,000 Eureka-registered instances, and REST heartbeats/s over the same instances. */
async function renewals(url: string): Promise<Record<string, number>> {
  for (let i = 0; i < INSTANCES; i++) {
    await send(`${url}/eureka/apps/RENEW`, 'POST', { instance: { instanceId: `r-${i}`, hostName: `10.1.${i >> 8}.${i & 255}`, ipAddr: `10.1.${i >> 8}.${i & 255}`, port: { $: 8080, '@enabled': 'true' }, leaseInfo: { durationInSecs: 3600 } } });
  }
  const pick = () => `r-${Math.floor(Math.random() * INSTANCES)}`;
  const eureka = await autocannon({ url, connections: 64, duration: 8, requests: [{ method: 'PUT', setupRequest: (req) => ({ ...req, path: `/eureka/apps/RENEW/${pick()}` }) }] });
  if (eureka.non2xx > 0) throw new Error(`${eureka.non2xx} renewals failed`);
  const rest = await autocannon({ url, connections: 64, duration: 8, requests: [{ method: 'PUT', setupRequest: (req) => ({ ...req, path: `/v1/namespaces/default/services/renew/instances/${pick()}/heartbeat` }) }] });
  if (rest.non2xx > 0) throw new Error(`${rest.non2xx} heartbeats failed`);
  return {
    eureka_renewals_per_sec: Math.round(eureka.requests.average),
    eureka_renewal_p99_ms: eureka.latency.p99,
    rest_heartbeats_per_sec_same_run: Math.round(rest.requests.average),
    rest_heartbeat_p99_ms_same_run: rest.latency.p99,
  };
}

export async function runCompatBench(): Promise<Record<string, number>> {
  const consulPort = await freePort();
  const server = await startBenchServer(['--consul-listen', `127.0.0.1:${consulPort}`]);
  try {
    return { ...(await consulWakeups(server.url, `http://127.0.0.1:${consulPort}`)), ...(await renewals(server.url)) };
  } finally {
    await server.stop();
  }
}

export async function runCompatBenchMedian(runs = 3): Promise<Record<string, number>> {
  const results: Record<string, number>[] = [];
  for (let i = 0; i < runs; i++) results.push(await runCompatBench());
  return Object.fromEntries(Object.keys(results[0]!).map((k) => [k, median(results.map((r) => r[k]!))]));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(await runCompatBenchMedian(Number(process.argv[2] ?? 1)));
}
