// Issue 13 benchmark: what the token check costs (requests/s with auth on vs off, the auth file holding 100
// principals, the caller's the last) and what TLS costs for heartbeats (HTTPS vs plain HTTP, keep-alive).
// On and off runs alternate, so drifting machine load hits both sides alike.
import autocannon from 'autocannon';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { entryLine } from '../src/auth/auth-file.js';
import { sha256Hex } from '../src/auth/credentials.js';
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

/** Requests/s of `kind` against a fresh server started with `args`, sending `headers`. */
async function measure(args: string[], headers: Record<string, string>, kind: 'heartbeat' | 'get'): Promise<number> {
  const server = await startBenchServer(args);
  try {
    let i = 0;
    await autocannon({
      url: server.url,
      connections: 16,
      amount: INSTANCES,
      requests: [
        {
          method: 'PUT',
          headers: { 'content-type': 'application/json', ...headers },
          body: JSON.stringify({ address: '10.0.0.1', port: 80, ttlSeconds: 3600 }),
          setupRequest: (req) => ({ ...req, path: path(i++) }),
        },
      ],
    });
    const res = await autocannon({
      url: server.url,
      connections: 64,
      duration: 5,
      requests: [
        {
          method: kind === 'heartbeat' ? 'PUT' : 'GET',
          headers,
          setupRequest: (req) => ({ ...req, path: `${path(Math.floor(Math.random() * INSTANCES))}${kind === 'heartbeat' ? '/heartbeat' : ''}` }),
        },
      ],
    });
    if (res.non2xx > 0) throw new Error(`${res.non2xx} of the ${kind} requests failed`);
    return Math.round(res.requests.average);
  } finally {
    await server.stop();
  }
}

export async function runAuthBench(runs = 3): Promise<Record<string, number>> {
  const dir = mkdtempSync(join(tmpdir(), 'rollcall-bench-auth-'));
  try {
    const auth = ['--auth-file', authFile(dir)];
    const tls = certificates(dir);
    const bearer = { authorization: `Bearer ${TOKEN}` };
    const r: Record<string, number[]> = { get_off: [], get_on: [], hb_off: [], hb_on: [], hb_plain: [], hb_tls: [] };
    for (let run = 0; run < runs; run++) {
      r.get_off!.push(await measure([], {}, 'get'));
      r.get_on!.push(await measure(auth, bearer, 'get'));
      r.hb_off!.push(await measure([], {}, 'heartbeat'));
      r.hb_on!.push(await measure(auth, bearer, 'heartbeat'));
      r.hb_plain!.push(await measure([], {}, 'heartbeat'));
      r.hb_tls!.push(await measure(tls, {}, 'heartbeat'));
    }
    const m = (k: string) => median(r[k]!);
    const cost = (off: number, on: number) => Math.round(((off - on) / off) * 1000) / 10;
    return {
      get_per_sec_auth_off: m('get_off'),
      get_per_sec_auth_on: m('get_on'),
      get_auth_cost_pct: cost(m('get_off'), m('get_on')),
      heartbeats_per_sec_auth_off: m('hb_off'),
      heartbeats_per_sec_auth_on: m('hb_on'),
      heartbeat_auth_cost_pct: cost(m('hb_off'), m('hb_on')),
      heartbeats_per_sec_plain: m('hb_plain'),
      heartbeats_per_sec_tls: m('hb_tls'),
      heartbeat_tls_cost_pct: cost(m('hb_plain'), m('hb_tls')),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(await runAuthBench(Number(process.env.BENCH_RUNS ?? 3)));
}
