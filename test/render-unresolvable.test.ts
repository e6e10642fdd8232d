// Issue 15's correctness bug, with real nginx: one instance whose hostname nginx cannot resolve must not freeze
// every later update. Three ways in: the default (names resolved at render time, unresolvable ones left out),
// --no-resolve (nginx -t fails; the watcher finds the instance from nginx's message and applies the rest), a check
// that fails without naming a host (bisect by service), and the compose file's own nginx sidecar command line.
import { readFile } from 'node:fs/promises';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { parse } from 'yaml';
import { api, CLI, PATIENCE_MS, startServerProcess, type ServerProcess } from './helper.js';
import { freePort, getVia, idBackend, nginxArgs, nginxPrefix, requireBinary, spawnOwned, waitFor } from './render-proxies.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
// RFC 6761: .invalid never resolves, on any machine.
const BAD_HOST = 'demo-9.invalid';
// The machine is loaded: wait on conditions with a generous bound; the elapsed time is reported, not asserted.
const BOUND_MS = PATIENCE_MS;

interface Proxy {
  port: number;
  conf: string;
  ngx: string;
  logs: () => string;
}

/** A registry, and a running nginx whose conf.d file starts from a one-shot render of `ns`. */
async function setup(t: Test, nginx: string, ns: string): Promise<{ registry: ServerProcess; port: number; conf: string; ngx: string; dir: string }> {
  const dir = t.testdir();
  const registry = await startServerProcess(t, { dataDir: join(dir, 'registry') });
  const port = await freePort();
  const nginxDir = join(dir, 'nginx');
  const prefix = await nginxPrefix(nginxDir);
  const conf = join(prefix.confD, 'rollcall.conf');
  const oneShot = spawnOwned(t, [process.execPath, CLI, 'render', 'nginx', '--registry', registry.url, '-n', ns, '--listen', `127.0.0.1:${port}`, '--out', conf]);
  t.equal((await once(oneShot, 'exit'))[0], 0, `one-shot render: ${oneShot.logs()}`);
  spawnOwned(t, nginxArgs(nginx, nginxDir, prefix.main));
  await waitFor('nginx to answer', async () => (await getVia(port, `none.${ns}`)).status === 404, BOUND_MS);
  return { registry, port, conf, ngx: nginxArgs(nginx, nginxDir, prefix.main).join(' '), dir };
}

function watcher(t: Test, args: string[]): ReturnType<typeof spawnOwned> {
  return spawnOwned(t, [process.execPath, CLI, ...args]);
}

async function put(registry: ServerProcess, ns: string, service: string, id: string, address: string, port: number) {
  const r = await api(`${registry.url}/v1/namespaces/${ns}/services/${service}/instances/${id}`, 'PUT', { address, port, ttlSeconds: 3600 });
  if (r.status !== 200 && r.status !== 201) throw new Error(`register ${service}/${id}: ${r.status} ${JSON.stringify(r.body)}`);
}

/** Registers a healthy instance of another service and waits until nginx routes to it; returns the elapsed ms. */
async function reaches(t: Test, p: Proxy, registry: ServerProcess, ns: string, service: string): Promise<number> {
  const b = await idBackend(t, `${service}-ok`);
  const started = Date.now();
  await put(registry, ns, service, 'ok', '127.0.0.1', b.port);
  await waitFor(`nginx to route ${service}.${ns}`, async () => (await getVia(p.port, `${service}.${ns}`)).body === b.id, BOUND_MS);
  return Date.now() - started;
}

t.test('default: an unresolvable hostname is left out with a warning; other services stay current', async (t) => {
  const nginx = requireBinary(t, 'nginx');
  if (!nginx) return;
  const ns = 'default';
  const { registry, port, conf, ngx } = await setup(t, nginx, ns);
  const w = watcher(t, ['render', 'nginx', '--registry', registry.url, '-n', ns, '--listen', `127.0.0.1:${port}`, '--watch', '--out', conf, '--debounce', '50', '--check', `${ngx} -t -q`, '--reload', `${ngx} -s reload`]);
  await waitFor('the watcher to follow', () => w.logs().includes('following namespace'), BOUND_MS);
  const p: Proxy = { port, conf, ngx, logs: w.logs };

  await put(registry, ns, 'demo', 'demo-9', BAD_HOST, 8000);
  await waitFor('the warning', () => /WARNING: left out 1 instance\(s\) whose hostname does not resolve here .*: demo\/demo-9 \(demo-9\.invalid\)/.test(w.logs()), BOUND_MS);
  const elapsed = await reaches(t, p, registry, ns, 'api');
  t.pass(`a healthy instance of another service reached nginx ${elapsed} ms after it registered`);
  const text = await readFile(conf, 'utf8');
  t.match(text, /# left out demo-9: hostname demo-9\.invalid does not resolve here/, 'the config says what was left out and why');
  t.notMatch(text, /server demo-9\.invalid/, 'and has no server line nginx would refuse');
  t.equal((await getVia(port, `demo.${ns}`)).status, 503, 'the service with only the unresolvable instance answers 503');
  t.match(w.logs(), /wrote .* at revision \d+, reloaded \(1 instance\(s\) left out\)/, 'each write counts the left-out instances');
  t.notMatch(w.logs(), /check ".*" exited/, 'nginx -t never failed');

  // Later changes keep flowing too, and the warning is not repeated on every render.
  const second = await reaches(t, p, registry, ns, 'shop');
  t.pass(`and the next one after ${second} ms`);
  t.equal(w.logs().match(/WARNING: left out/g)?.length, 1, 'said once while the set of left-out instances is the same');
});

t.test('--no-resolve: nginx -t fails on the host; the watcher leaves that instance out and applies the rest', async (t) => {
  const nginx = requireBinary(t, 'nginx');
  if (!nginx) return;
  const ns = 'default';
  const { registry, port, conf, ngx } = await setup(t, nginx, ns);
  const w = watcher(t, ['render', 'nginx', '--no-resolve', '--registry', registry.url, '-n', ns, '--listen', `127.0.0.1:${port}`, '--watch', '--out', conf, '--debounce', '50', '--check', `${ngx} -t -q`, '--reload', `${ngx} -s reload`]);
  await waitFor('the watcher to follow', () => w.logs().includes('following namespace'), BOUND_MS);
  const p: Proxy = { port, conf, ngx, logs: w.logs };

  await put(registry, ns, 'demo', 'demo-9', BAD_HOST, 8000);
  await waitFor('the culprit to be named', () => /the check refused the config because of demo\/demo-9 \(the check failed on host demo-9\.invalid:8000\)/.test(w.logs()), BOUND_MS);
  t.match(w.logs(), /host not found in upstream "demo-9\.invalid:8000"/, 'nginx said why');
  const elapsed = await reaches(t, p, registry, ns, 'api');
  t.pass(`another service reached nginx ${elapsed} ms after it registered, with the bad instance still registered`);
  t.match(await readFile(conf, 'utf8'), /# left out demo-9: the check failed on host demo-9\.invalid:8000/);

  // Once the instance is fixed (re-registered with an address that works), it is routed again.
  const fixed = await idBackend(t, 'demo-fixed');
  await put(registry, ns, 'demo', 'demo-9', '127.0.0.1', fixed.port);
  await waitFor('the fixed instance to be routed', async () => (await getVia(port, `demo.${ns}`)).body === fixed.id, BOUND_MS);
  t.pass('fixed instance routed again');
});

t.test('a check that fails without naming a host: bisect by service, the rest stays current', async (t) => {
  const nginx = requireBinary(t, 'nginx');
  if (!nginx) return;
  const ns = 'default';
  const { registry, port, conf, ngx } = await setup(t, nginx, ns);
  // A site policy check on top of nginx -t: refuses any config that routes the service "poison".
  const check = `${ngx} -t -q && ! grep -q rc_${ns}_poison ${conf}`;
  const w = watcher(t, ['render', 'nginx', '--registry', registry.url, '-n', ns, '--listen', `127.0.0.1:${port}`, '--watch', '--out', conf, '--debounce', '50', '--check', check, '--reload', `${ngx} -s reload`]);
  await waitFor('the watcher to follow', () => w.logs().includes('following namespace'), BOUND_MS);
  const p: Proxy = { port, conf, ngx, logs: w.logs };
  await reaches(t, p, registry, ns, 'api');
  const poison = await idBackend(t, 'poison');
  await put(registry, ns, 'poison', 'p1', '127.0.0.1', poison.port);
  await waitFor('the culprit service to be named', () => /because of poison\/p1 \(the check failed with service poison in the config\)/.test(w.logs()), BOUND_MS);
  const elapsed = await reaches(t, p, registry, ns, 'shop');
  t.pass(`another service reached nginx ${elapsed} ms after it registered`);
  t.equal((await getVia(port, `poison.${ns}`)).status, 503, 'the refused service answers 503');
  t.equal((await getVia(port, `api.${ns}`)).body, 'api-ok', 'services before it still route');
});

interface ComposeService {
  command?: string[];
}

t.test("the compose file's nginx sidecar command line, run with local paths, keeps nginx current", async (t) => {
  const nginx = requireBinary(t, 'nginx');
  if (!nginx) return;
  const doc = parse(await readFile(join(ROOT, 'docker-compose.yml'), 'utf8')) as { services: Record<string, ComposeService> };
  const command = doc.services['nginx-render']?.command ?? [];
  t.same(command.slice(0, 2), ['render', 'nginx']);
  t.ok(command.includes('--watch') && command.includes('--check') && command.includes('--reload'), 'the sidecar follows, checks and reloads');
  t.notOk(command.includes('--no-resolve'), 'and resolves names as nginx would');
  const ns = command[command.indexOf('--namespace') + 1] ?? 'default';
  const { registry, port, conf, ngx } = await setup(t, nginx, ns);
  // Same arguments; only where things are differs: the registry, the file, the port, the nginx binary's prefix.
  const local: Record<string, string> = {
    '--registry': registry.url,
    '--out': conf,
    '--listen': `127.0.0.1:${port}`,
    '--check': `${ngx} -t -q`,
    '--reload': `${ngx} -s reload`,
  };
  const args = command.map((arg, i) => local[command[i - 1] ?? ''] ?? arg);
  t.same(
    args.filter((a, i) => a !== command[i]).length,
    Object.keys(local).length,
    `exactly the five local paths differ: ${args.join(' ')}`,
  );
  const w = watcher(t, args);
  await waitFor('the sidecar to follow', () => w.logs().includes('following namespace'), BOUND_MS);
  const p: Proxy = { port, conf, ngx, logs: w.logs };
  await put(registry, ns, 'demo', 'demo-9', BAD_HOST, 8000);
  const elapsed = await reaches(t, p, registry, ns, 'api');
  t.pass(`another service reached nginx ${elapsed} ms after it registered`);
  t.match(w.logs(), /WARNING: left out 1 instance\(s\) whose hostname does not resolve here/);
});
