// Issue 13 benchmark: what the token check costs (requests/s with auth on vs off, the auth file holding 100
// principals, the caller's the last) and what TLS costs for heartbeats (HTTPS vs plain HTTP, keep-alive).
// Both servers run side by side and are measured in alternating slices, so drifting load hits both alike.
import autocannon from 'autocannon';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { entryLine } from '../src/auth/auth-file.js';
import { createCredentials, sha256Hex } from '../src/auth/credentials.js';
import { missingScope } from '../src/auth/rules.js';
import { median, startBenchServer } from './server-process.js';

const INSTANCES = 1000;
const TOKEN = 'bench-token-99';
const path = (i: number) => `/v1/namespaces/bench/services/svc-${i % 10}/instances/i-${i}`;

function authFile(dir: string): string {
  const entries = Array.from({ length: 100 }, (_, i) =>
    entryLine({ name: `p${i}`, role: 'write', namespaces: i === 99 ? ['bench'] : [`team-${i}`], sha256: sha256Hex(`bench-token-${i}`) }),
  );
  const file = join(dir, 'auth.yaml');
  writeFileSync(file, `tokens:\n${entries.join('\n')}\n`);
  return file;
}

function certificates(dir: string): string[] {
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'server.key', '-out', 'server.crt', '-subj', '/CN=127.0.0.1', '-days', '1', '-addext', 'subjectAltName=IP:127.0.0.1']);
  return ['--tls-cert', join(dir, 'server.crt'), '--tls-key', join(dir, 'server.key')];
}

interface Side {
  args: string[];
  headers: Record<string, string>;
}

async function seeded(side: Side) {
  const server = await startBenchServer(side.args);
  let i = 0;
  const seed = await autocannon({
    url: server.url,
    connections: 16,
    amount: INSTANCES,
    requests: [
      {
        method: 'PUT',
        headers: { 'content-type': 'application/json', ...side.headers },
        body: JSON.stringify({ address: '10.0.0.1', port: 80, ttlSeconds: 3600 }),
        setupRequest: (req) => ({ ...req, path: path(i++) }),
      },
    ],
  });
  if (seed['2xx'] !== INSTANCES) throw new Error(`seeding failed: ${seed['2xx']} of ${INSTANCES}`);
  return server;
}

/**
 * Requests/s of `kind` on two servers side by side, in alternating 2-second slices (this machine's load
 * drifts by 2x within a minute: only interleaving keeps the comparison fair). Medians of the slices.
 */
async function compare(a: Side, b: Side, kind: 'heartbeat' | 'get', slices: number): Promise<[number, number]> {
  const servers = [await seeded(a), await seeded(b)];
  try {
    const rates: [number[], number[]] = [[], []];
    for (let s = 0; s < slices; s++) {
      for (const [k, side] of [a, b].entries()) {
        const res = await autocannon({
          url: servers[k]!.url,
          connections: 32,
          duration: 2,
          requests: [
            {
              method: kind === 'heartbeat' ? 'PUT' : 'GET',
              headers: side.headers,
              setupRequest: (req) => ({ ...req, path: `${path(Math.floor(Math.random() * INSTANCES))}${kind === 'heartbeat' ? '/heartbeat' : ''}` }),
            },
          ],
        });
        if (res.non2xx > 0) throw new Error(`${res.non2xx} of the ${kind} requests failed`);
        rates[k]!.push(Math.round(res.requests.average));
      }
    }
    return [median(rates[0]), median(rates[1])];
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
  }
}

/** The auth decision alone, in this process: hash, lookup, scope check, for the 100-principal file. */
function decisionMicros(): number {
  const entries = Array.from({ length: 100 }, (_, i) => ({ name: `p${i}`, role: 'write' as const, namespaces: [i === 99 ? 'bench' : `team-${i}`], sha256: sha256Hex(`bench-token-${i}`) }));
  const credentials = createCredentials(entries);
  const n = 200_000;
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) missingScope(credentials.byToken(TOKEN)!, 'write', 'bench');
  return Math.round(Number(process.hrtime.bigint() - start) / n) / 1000;
}

export async function runAuthBench(runs = 3): Promise<Record<string, number>> {
  const dir = mkdtempSync(join(tmpdir(), 'rollcall-bench-auth-'));
  try {
    const off: Side = { args: [], headers: {} };
    const on: Side = { args: ['--auth-file', authFile(dir)], headers: { authorization: `Bearer ${TOKEN}` } };
    const tls: Side = { args: certificates(dir), headers: {} };
    const slices = 2 * runs + 1;
    const [getOff, getOn] = await compare(off, on, 'get', slices);
    const [hbOff, hbOn] = await compare(off, on, 'heartbeat', slices);
    const [hbPlain, hbTls] = await compare(off, tls, 'heartbeat', slices);
    const cost = (base: number, other: number) => Math.round(((base - other) / base) * 1000) / 10;
    return {
      auth_decision_us: decisionMicros(),
      get_per_sec_auth_off: getOff,
      get_per_sec_auth_on: getOn,
      get_auth_cost_pct: cost(getOff, getOn),
      heartbeats_per_sec_auth_off: hbOff,
      heartbeats_per_sec_auth_on: hbOn,
      heartbeat_auth_cost_pct: cost(hbOff, hbOn),
      heartbeats_per_sec_plain: hbPlain,
      heartbeats_per_sec_tls: hbTls,
      heartbeat_tls_cost_pct: cost(hbPlain, hbTls),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(await runAuthBench(Number(process.env.BENCH_RUNS ?? 3)));
}
