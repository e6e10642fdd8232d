// The proof of issue 4: real backends registered in a real registry, real nginx and real HAProxy kept current by
// `rollcall render … --watch` child processes with real checks and reloads, and real traffic through both.
import { once } from 'node:events';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { api, CLI, startServerProcess } from './helper.js';
import { freePort, getVia, idBackend, nginxArgs, nginxPrefix, oldWorkersGone, requireBinary, spawnOwned, waitFor } from './render-proxies.js';

const NS = 'default';
const SERVICE = 'web';
const HOST = `${SERVICE}.${NS}`;

/** Who answered `n` requests: id → count (non-200 answers counted as "<status>"). */
async function spread(port: number, n = 30, host = HOST): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const r = await getVia(port, host);
    const key = r.status === 200 ? r.body : String(r.status);
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

async function lines(file: string): Promise<number> {
  try {
    return (await readFile(file, 'utf8')).split('\n').filter((l) => l !== '').length;
  } catch {
    return 0;
  }
}

t.test('nginx and HAProxy follow the registry with real traffic', async (t) => {
  const nginx = requireBinary(t, 'nginx');
  const haproxy = requireBinary(t, 'haproxy');
  if (!nginx || !haproxy) return;
  const dir = t.testdir();
  const registry = await startServerProcess(t, { dataDir: join(dir, 'registry') });
  const instance = (id: string) => `${registry.url}/v1/namespaces/${NS}/services/${SERVICE}/instances/${id}`;
  const register = async (b: { id: string; port: number }, extra: Record<string, unknown> = {}) => {
    const r = await api(instance(b.id), 'PUT', { address: '127.0.0.1', port: b.port, ttlSeconds: 600, ...extra });
    t.ok(r.status === 200 || r.status === 201, `registered ${b.id}`);
  };

  const [a, b, c, d] = await Promise.all(['a', 'b', 'c', 'd'].map((id) => idBackend(t, id)));
  if (!a || !b || !c || !d) throw new Error('backends');
  await register(a);
  await register(b);
  await register(c, { status: 'starting' });

  // A check that fails while this file exists: lets the test break the check on purpose.
  const breakCheck = join(dir, 'break-check');
  const nginxPort = await freePort();
  const haproxyPort = await freePort();

  // nginx: its own prefix; the first config comes from a one-shot render so nginx starts on a valid file.
  const nginxDir = join(dir, 'nginx');
  const prefix = await nginxPrefix(nginxDir);
  const nginxConf = join(prefix.confD, 'rollcall.conf');
  const nginxReloads = join(dir, 'nginx-reloads');
  const ngx = nginxArgs(nginx, nginxDir, prefix.main).join(' ');
  const common = ['--registry', registry.url, '--namespace', NS, '--service', SERVICE];
  const oneShot = spawnOwned(t, [process.execPath, CLI, 'render', 'nginx', ...common, '--listen', `127.0.0.1:${nginxPort}`, '--out', nginxConf]);
  t.equal((await once(oneShot, 'exit'))[0], 0, `one-shot render: ${oneShot.logs()}`);
  const nginxProc = spawnOwned(t, nginxArgs(nginx, nginxDir, prefix.main));
  await waitFor('nginx to serve', async () => (await getVia(nginxPort, HOST)).status === 200);

  // HAProxy: master-worker in the foreground; USR2 to the master reloads the file.
  const haproxyCfg = join(dir, 'haproxy.cfg');
  const haproxyPid = join(dir, 'haproxy.pid');
  const haproxyReloads = join(dir, 'haproxy-reloads');
  const oneShotH = spawnOwned(t, [process.execPath, CLI, 'render', 'haproxy', ...common, '--listen', `127.0.0.1:${haproxyPort}`, '--out', haproxyCfg]);
  t.equal((await once(oneShotH, 'exit'))[0], 0, `one-shot render: ${oneShotH.logs()}`);
  const haproxyProc = spawnOwned(t, [haproxy, '-W', '-db', '-f', haproxyCfg, '-p', haproxyPid]);
  await waitFor('haproxy to serve', async () => (await getVia(haproxyPort, HOST)).status === 200);

  const watchers = [
    spawnOwned(t, [
      process.execPath, CLI, 'render', 'nginx', ...common, '--listen', `127.0.0.1:${nginxPort}`, '--watch', '--out', nginxConf,
      '--check', `test ! -e ${breakCheck} && ${ngx} -t -q`,
      '--reload', `${ngx} -s reload && echo reload >> ${nginxReloads}`,
    ]),
    spawnOwned(t, [
      process.execPath, CLI, 'render', 'haproxy', ...common, '--listen', `127.0.0.1:${haproxyPort}`, '--watch', '--out', haproxyCfg,
      '--check', `test ! -e ${breakCheck} && ${haproxy} -c -q -f ${haproxyCfg}`,
      '--reload', `kill -USR2 $(cat ${haproxyPid}) && echo reload >> ${haproxyReloads}`,
    ]),
  ] as const;
  for (const w of watchers) await waitFor('watcher to follow', () => w.logs().includes('following namespace'));
  const proxies = [
    { name: 'nginx', port: nginxPort, conf: nginxConf, reloads: nginxReloads, proc: nginxProc },
    { name: 'haproxy', port: haproxyPort, conf: haproxyCfg, reloads: haproxyReloads, proc: haproxyProc },
  ];

  await t.test('traffic spreads over the routable instances only', async (t) => {
    for (const p of proxies) {
      const counts = await spread(p.port, 40);
      t.same(Object.keys(counts).sort(), ['a', 'b'], `${p.name}: a and b answer, starting c does not: ${JSON.stringify(counts)}`);
      t.ok((counts.a ?? 0) >= 10 && (counts.b ?? 0) >= 10, `${p.name}: round robin spreads evenly`);
      t.equal((await getVia(p.port, 'nope.default')).status, 404, `${p.name}: unknown host → 404`);
      t.equal((await getVia(p.port, `${HOST}:${p.port}`)).status, 200, `${p.name}: Host with a port routes too`);
    }
  });

  await t.test('a new instance gets traffic, a draining and a deregistered one stop getting it, within seconds', async (t) => {
    const started = Date.now();
    await api(instance('c'), 'PATCH', { status: 'up' });
    for (const p of proxies) await waitFor(`${p.name} sends traffic to c`, async () => (await spread(p.port, 12)).c !== undefined);
    t.pass(`c got traffic on both proxies after ${Date.now() - started} ms`);

    const drainAt = Date.now();
    await api(instance('a'), 'PATCH', { status: 'draining' });
    for (const p of proxies) await waitFor(`${p.name} stops sending to draining a`, async () => oldWorkersGone(p.proc) && (await spread(p.port, 12)).a === undefined);
    t.pass(`draining a got no new traffic after ${Date.now() - drainAt} ms`);
    for (const p of proxies) t.same(Object.keys(await spread(p.port, 30)).sort(), ['b', 'c'], `${p.name}: only b and c now`);

    const goneAt = Date.now();
    await api(instance('b'), 'DELETE');
    for (const p of proxies) await waitFor(`${p.name} stops sending to deregistered b`, async () => oldWorkersGone(p.proc) && (await spread(p.port, 12)).b === undefined);
    t.pass(`deregistered b got no new traffic after ${Date.now() - goneAt} ms`);
    for (const p of proxies) t.same(Object.keys(await spread(p.port, 20)), ['c'], `${p.name}: only c answers`);
  });

  await t.test('a failing --check leaves the live config and the running proxy untouched', async (t) => {
    const before = await Promise.all(proxies.map(async (p) => ({ conf: await readFile(p.conf, 'utf8'), reloads: await lines(p.reloads) })));
    await writeFile(breakCheck, '');
    await register(d);
    // The check fails for every config (not for one service): the watcher looks for a culprit, finds none, keeps the old file.
    for (const w of watchers) {
      await waitFor('the watcher to report the failed check', () =>
        /check ".*" exited with 1[^\n]*looking for the instance that breaks it\n.*no instance or service explains the failed check; previous config restored, not reloaded/.test(w.logs()),
      );
    }
    for (const [i, p] of proxies.entries()) {
      t.equal(await readFile(p.conf, 'utf8'), before[i]?.conf, `${p.name}: the config file is the previous one`);
      t.equal(await lines(p.reloads), before[i]?.reloads, `${p.name}: no reload`);
      t.same(Object.keys(await spread(p.port, 20)), ['c'], `${p.name}: still serving the old set (no d)`);
      t.equal(p.proc.exitCode, null, `${p.name} still running`);
    }
    // Once the check passes again, the next change brings everything up to date.
    await rm(breakCheck);
    await api(instance('d'), 'PATCH', { weight: 2 });
    for (const p of proxies) await waitFor(`${p.name} sends traffic to d`, async () => (await spread(p.port, 12)).d !== undefined);
    t.pass('recovered after the check passes again');
  });

  await t.test('a burst of 50 changes gives a handful of reloads, not one per change', async (t) => {
    for (const p of proxies) await waitFor(`${p.name} settled`, async () => (await readFile(p.conf, 'utf8')).includes('weight'));
    const before = await Promise.all(proxies.map((p) => lines(p.reloads)));
    const burstStart = Date.now();
    for (let i = 1; i <= 50; i++) await api(instance('c'), 'PATCH', { weight: i });
    const burstMs = Date.now() - burstStart;
    for (const p of proxies) {
      await waitFor(`${p.name} config has the final weight`, async () => /(weight=| weight )50\b/.test(await readFile(p.conf, 'utf8')));
    }
    // The file is written before its reload runs: wait for that reload too.
    for (const [i, p] of proxies.entries()) await waitFor(`${p.name} reloaded`, async () => (await lines(p.reloads)) > (before[i] ?? 0));
    for (const p of proxies) await waitFor(`${p.name} serves the new weights`, async () => ((await spread(p.port, 20)).c ?? 0) > 15);
    for (const [i, p] of proxies.entries()) {
      const reloads = (await lines(p.reloads)) - (before[i] ?? 0);
      // The watcher renders at most once per --max-delay (2000 ms, the default) during a burst, plus once after it
      // and once for a change already pending: that bound holds however long this machine took to send the burst.
      const bound = Math.ceil(burstMs / 2000) + 2;
      t.ok(reloads >= 1 && reloads <= bound, `${p.name}: ${reloads} reload(s) for 50 changes sent over ${burstMs} ms (at most ${bound})`);
    }
  });

  await t.test('the watchers survive a registry restart', async (t) => {
    const port = registry.port;
    await registry.kill('SIGKILL');
    const again = await startServerProcess(t, { dataDir: join(dir, 'registry'), port });
    t.equal(again.url, registry.url, 'same address');
    await api(instance('d'), 'DELETE');
    for (const p of proxies) await waitFor(`${p.name} stops sending to d after the restart`, async () => (await spread(p.port, 12)).d === undefined);
    t.pass('changes after the restart still reach both proxies');
  });

  await t.test('SIGTERM stops the watchers cleanly', async (t) => {
    for (const w of watchers) {
      const exited = once(w, 'exit');
      w.kill('SIGTERM');
      const [code, signal] = await exited;
      t.equal(code, 0, `exit 0 (signal ${String(signal)}): ${w.logs().split('\n').slice(-3).join(' | ')}`);
    }
  });
});
