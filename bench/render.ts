// Issue 4 benchmark: render time of a 10,000-instance / 1,000-service namespace for nginx and HAProxy (pure
// generators, median of several runs), and the delay from a registry change to the rewritten file with
// `rollcall render nginx --watch --out FILE` (default 250 ms debounce) against a real server process.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderHaproxy } from '../src/generators/haproxy.js';
import { renderNginx } from '../src/generators/nginx.js';
import { parseGeneratorOptions } from '../src/generators/options.js';
import type { Instance } from '../src/schemas/instance.js';
import { median, startBenchServer } from './server-process.js';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '../src/cli/index.js');
const SERVICES = 1000;
const PER_SERVICE = 10;
const RENDER_RUNS = 9;
const CHANGES = 7;

function syntheticInstances(): Instance[] {
  const out: Instance[] = [];
  for (let s = 0; s < SERVICES; s++) {
    for (let i = 0; i < PER_SERVICE; i++) {
      out.push({
        namespace: 'bench', service: `svc-${s}`, id: `svc-${s}-${i}`,
        address: `10.${s >> 8}.${s & 255}.${i + 1}`, port: 8080,
        // A realistic mix: mostly up, some draining and starting.
        status: i === 8 ? 'draining' : i === 9 ? 'starting' : 'up', weight: 1 + (i % 3),
        zone: null, tags: ['http'], metadata: { version: '1.0.0' }, ttlSeconds: 30,
        registeredAt: '2024-01-01T00:00:00.000Z', lastHeartbeatAt: '2024-01-01T00:00:00.000Z', expiresAt: '2024-01-01T00:00:30.000Z',
        revision: s * PER_SERVICE + i + 1, createRevision: s * PER_SERVICE + i + 1,
      });
    }
  }
  return out;
}

function timeRender(render: () => string): number {
  render(); // warm-up: JIT and the hash cache
  const runs: number[] = [];
  for (let i = 0; i < RENDER_RUNS; i++) {
    const start = performance.now();
    render();
    runs.push(performance.now() - start);
  }
  return Math.round(median(runs) * 100) / 100;
}

async function put(url: string, path: string, method: string, body: unknown): Promise<void> {
  const res = await fetch(`${url}${path}`, { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
}

async function poll(what: string, fn: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await fn())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

async function changeToFile(): Promise<{ median: number; max: number }> {
  const server = await startBenchServer();
  const dir = mkdtempSync(join(tmpdir(), 'rollcall-render-bench-'));
  const out = join(dir, 'rollcall.conf');
  const child = spawn(process.execPath, [CLI, 'render', 'nginx', '--registry', server.url, '--namespace', 'bench', '--listen', '8080', '--watch', '--out', out], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  try {
    // The same 10,000 instances, registered 64 at a time.
    const items = syntheticInstances();
    for (let i = 0; i < items.length; i += 64) {
      await Promise.all(
        items.slice(i, i + 64).map((x) =>
          put(server.url, `/v1/namespaces/bench/services/${x.service}/instances/${x.id}`, 'PUT', {
            address: x.address, port: x.port, status: x.status, weight: x.weight, tags: x.tags, metadata: x.metadata, ttlSeconds: 3600,
          }),
        ),
      );
    }
    await poll('the watcher to write the full namespace', async () => (await readFile(out, 'utf8').catch(() => '')).includes('upstream rc_bench_svc-999 '), 30_000);
    const delays: number[] = [];
    for (let k = 0; k < CHANGES; k++) {
      // Weights 100+ appear nowhere else, so their presence marks this change's render.
      const weight = 100 + k;
      const start = performance.now();
      await put(server.url, '/v1/namespaces/bench/services/svc-500/instances/svc-500-0', 'PATCH', { weight });
      await poll(`weight ${weight} in the file`, async () => (await readFile(out, 'utf8')).includes(`weight=${weight};`), 10_000);
      delays.push(performance.now() - start);
    }
    return { median: Math.round(median(delays)), max: Math.round(Math.max(...delays)) };
  } catch (err) {
    throw new Error(`${(err as Error).message}; watcher said: ${stderr.slice(-500)}`);
  } finally {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function runRenderBench(): Promise<Record<string, number>> {
  const snapshot = { namespace: 'bench', instances: syntheticInstances() };
  const options = parseGeneratorOptions({ listen: '8080' });
  const nginxMs = timeRender(() => renderNginx(snapshot, options));
  const haproxyMs = timeRender(() => renderHaproxy(snapshot, options));
  const watch = await changeToFile();
  return {
    render_nginx_10k_instances_1k_services_ms: nginxMs,
    render_haproxy_10k_instances_1k_services_ms: haproxyMs,
    watch_change_to_file_ms_p50: watch.median,
    watch_change_to_file_ms_max: watch.max,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(await runRenderBench());
}
